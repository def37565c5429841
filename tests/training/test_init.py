"""``init=``: a run that starts from a finished run's policy (weights, optimizer state, observation statistics),
counts its own steps from 0, and checkpoints and resumes as any run."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from sim2real.policies import Policy
from sim2real.runs import load_metadata
from sim2real.training import train
from sim2real.training.callbacks import latest_checkpoint
from sim2real.training.trainer import check_init
from tests.conftest import tiny_train_config
from tests.training.test_train import StopAt


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class FirstStep(BaseCallback):
    """The actor's weights and the model's update count at the run's first step, then the update count and
    whether the action was the actor's own, at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.first_weights: list[torch.Tensor] | None = None
        self.updates: list[int] = []
        self.own_actions: list[bool] = []

    def _on_training_start(self) -> None:
        self.model.action_noise = None  # the actor's own action, exactly

    def _on_step(self) -> bool:
        if self.first_weights is None:
            self.first_weights = [p.detach().clone() for p in actor_of(self.model).parameters()]
        self.updates.append(int(self.model._n_updates))
        if hasattr(self.model, "replay_buffer"):
            predicted, _ = self.model.predict(self.model._last_obs, deterministic=True)
            self.own_actions.append(bool(np.allclose(predicted, self.locals["actions"], atol=1e-6)))
        return True


def actor_of(model) -> torch.nn.Module:  # noqa: ANN001
    return getattr(model, "actor", None) or model.policy.mlp_extractor.policy_net


def test_a_td3_run_continues_the_source_actor_and_fills_its_buffer_with_its_own_actions(tmp_path: Path) -> None:
    """SB3 counting afresh would act uniformly at random for learning_starts steps and train the actor on them."""
    train(tiny_train_config("td3", timesteps=300), tmp_path / "src")  # learning_starts 200
    before = digest(tmp_path / "src")
    source = Policy.load(tmp_path / "src")
    check = FirstStep()
    config = replace(tiny_train_config("td3", timesteps=260, randomization="wide"), init=tmp_path / "src")
    model = train(config, tmp_path / "run", callbacks=[check])
    for ours, theirs in zip(check.first_weights, actor_of(source.model).parameters()):
        assert torch.equal(ours, theirs)  # the source's actor, not a fresh one
    start_updates = check.updates[0]
    assert check.updates[:200] == [start_updates] * 200  # no update while the buffer fills ...
    assert len(check.own_actions) == 260 and all(check.own_actions[:200])  # ... with the actor's own actions
    assert check.updates[-1] > start_updates  # then updates
    assert model.num_timesteps == 260 == model.replay_buffer.size()  # counted from 0
    meta = load_metadata(tmp_path / "run")
    assert meta["complete"] and meta["timesteps_done"] == 260 and meta["init"] == str(tmp_path / "src")
    assert meta["randomization"]["name"] == "wide"
    assert digest(tmp_path / "src") == before  # the init run is never modified


def test_a_ppo_run_from_a_source_resumes_from_its_own_checkpoint(tmp_path: Path, ppo_run: Path) -> None:
    init = shutil.copytree(ppo_run, tmp_path / "init")
    config = replace(tiny_train_config("ppo", timesteps=1024, randomization="wide"), init=init, checkpoint_every=256)
    check = FirstStep()
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", callbacks=[check, StopAt(600)])
    source = Policy.load(ppo_run)
    for ours, theirs in zip(check.first_weights, actor_of(source.model).parameters()):
        assert torch.equal(ours, theirs)
    stopped = load_metadata(tmp_path / "run")["timesteps_done"]
    assert 600 <= stopped < 1024 and latest_checkpoint(tmp_path / "run").name == f"step_{stopped}"
    shutil.rmtree(init)  # resuming reads the run's own checkpoint, not the init run
    model = train(config, tmp_path / "run", resume=True)
    assert 1024 <= model.num_timesteps < 1024 + 128  # whole PPO rollouts, counted from 0 across both segments
    assert load_metadata(tmp_path / "run")["complete"]
    continued = Policy.load(tmp_path / "run")
    assert not torch.equal(next(actor_of(continued.model).parameters()), next(actor_of(source.model).parameters()))


@pytest.mark.parametrize(("change", "message"), [
    (lambda meta: meta.update(complete=False), "not a finished trained run (complete: False"),
    (lambda meta: meta["policy"].update(privileged="actor"), "privileged=actor (this run: none)"),
    (lambda meta: meta.update(algo="sac"), "was trained with sac; this run's algo=ppo cannot continue it"),
    (lambda meta: meta["env"].update(history=3), "is a policy for {'name': 'inverted_pendulum'"),
])
def test_a_run_this_one_cannot_continue_is_refused_before_anything_is_written(tmp_path: Path, ppo_run: Path,
                                                                             change, message: str) -> None:  # noqa: ANN001
    init = tmp_path / "init"
    shutil.copytree(ppo_run, init)
    meta = json.loads((init / "metadata.json").read_text())
    change(meta)
    (init / "metadata.json").write_text(json.dumps(meta))
    config = replace(tiny_train_config("ppo", timesteps=256), init=init)
    with pytest.raises(ValueError, match="init=") as error:
        check_init(config)
    assert message in str(error.value)
    with pytest.raises(ValueError, match="init="):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
