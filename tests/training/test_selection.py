"""Keeping the best-scoring policy of a training (KeepBest; train's select_every), across resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sim2real.evaluation.rollout import rollout_returns
from sim2real.policies import Policy
from sim2real.runs import load_metadata
from sim2real.training import train
from sim2real.training.callbacks import KeepBest, SimulationScore, latest_checkpoint
from sim2real.training.trainer import SELECTION_SEED
from tests.conftest import tiny_train_config


class _Scripted:
    """Scores in a given order, recording the policy parameters and observation means it was shown."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)
        self.seen: list[tuple[dict, list]] = []

    def __call__(self, model) -> float:  # noqa: ANN001
        parameters = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}
        self.seen.append((parameters, model.get_vec_normalize_env().obs_rms.mean.copy()))
        return self.scores[len(self.seen) - 1]


def test_keep_best_puts_the_best_scoring_checkpoint_back(tmp_path: Path) -> None:
    score = _Scripted([1.0, 7.0, 3.0, 2.0])  # the second scoring (after 512 steps) is best
    keeper = KeepBest(score, every=256)
    model = train(tiny_train_config("ppo", timesteps=1024, n_steps=64), tmp_path / "run", callbacks=[keeper])
    assert sorted(keeper.scores) == [256, 512, 768] and keeper.best_step == 512  # rollouts of 4 x 64 steps
    end = {k: v.clone() for k, v in model.policy.state_dict().items()}
    assert keeper.finish() == 512 and keeper.scores[1024] == 2.0  # the end model is scored too
    best, best_mean = score.seen[1]
    restored = model.policy.state_dict()
    assert all(torch.equal(restored[k], best[k]) for k in best)
    assert any(not torch.equal(end[k], best[k]) for k in best)  # training went on after the kept point
    assert (model.get_vec_normalize_env().obs_rms.mean == best_mean).all()


def test_keep_best_scores_only_the_end_model_without_a_period(tmp_path: Path) -> None:
    score = _Scripted([4.0])
    keeper = KeepBest(score)
    train(tiny_train_config("ppo", timesteps=512, n_steps=64), tmp_path / "run", callbacks=[keeper])
    assert keeper.scores == {} and keeper.finish() == 512 and keeper.scores == {512: 4.0}
    with pytest.raises(ValueError, match="every=-1"):
        KeepBest(score, every=-1)


def _earliest_is_best(monkeypatch: pytest.MonkeyPatch) -> dict[int, float]:
    """Makes every scoring prefer the earliest policy, recording each one's real return by its step."""
    real, measured = SimulationScore.__call__, {}

    def score(self: SimulationScore, model) -> float:  # noqa: ANN001
        measured[int(model.num_timesteps)] = real(self, model)
        return -float(model.num_timesteps)

    monkeypatch.setattr(SimulationScore, "__call__", score)
    return measured


def _real_return(run_dir: Path, config) -> float:  # noqa: ANN001
    policy = Policy.load(run_dir)
    return float(rollout_returns(policy, policy.info.env, config.select_episodes, seed=SELECTION_SEED + config.seed,
                                 target=config.target, randomization=config.randomization).returns.mean())


def test_select_every_makes_the_best_scoring_policy_the_run_s_final_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    measured = _earliest_is_best(monkeypatch)
    config = replace(tiny_train_config("ppo", timesteps=1024, n_steps=64, target="high_gravity"), select_every=256,
                     select_episodes=2, checkpoint_every=512)  # scored on the run's own dynamics: its target too
    train(config, tmp_path / "run")
    selection = load_metadata(tmp_path / "run")["selection"]
    assert selection["kept_step"] == 256 and list(selection["returns"]) == ["256", "512", "768", "1024"]
    assert _real_return(tmp_path / "run", config) == pytest.approx(measured[256], rel=1e-6)
    assert measured[256] != pytest.approx(measured[1024])  # the kept policy is not the last one
    # the end checkpoint keeps the last policy, so that extending the run continues its training
    assert latest_checkpoint(tmp_path / "run").name == "step_1024"


def test_resumed_run_continues_the_selection_from_its_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measured = _earliest_is_best(monkeypatch)
    config = replace(tiny_train_config("ppo", timesteps=512, n_steps=64), select_every=256, select_episodes=2,
                     checkpoint_every=0)  # a run with a selection writes its end checkpoint all the same
    train(config, tmp_path / "run")
    extended = replace(config, timesteps=1024)
    train(extended, tmp_path / "run", resume=True)
    selection = load_metadata(tmp_path / "run")["selection"]
    assert list(selection["returns"]) == ["256", "512", "768", "1024"] and selection["kept_step"] == 256
    # step 256's policy lived only in the end checkpoint's selection file when the second segment started
    assert _real_return(tmp_path / "run", extended) == pytest.approx(measured[256], rel=1e-6)


@pytest.mark.parametrize(("randomization", "changes", "message"), [
    ("default", {"select_every": 2048}, "select_every=2048 is more than timesteps=1024"),
    ("default", {"select_every": -1}, "select_every"),
    ("default", {"select_every": 256, "select_episodes": 0}, "select_episodes"),
    ("adr", {"select_every": 256}, "ADR's ranges move during the run"),
])
def test_bad_selection_settings_are_refused(randomization: str, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(tiny_train_config("ppo", timesteps=1024, randomization=randomization), **changes)


def test_keep_best_puts_back_sac_s_entropy_weight_with_its_networks(tmp_path: Path) -> None:
    seen: list[tuple[dict, torch.Tensor]] = []

    def earliest_is_best(model) -> float:  # noqa: ANN001
        seen.append(({k: v.detach().clone() for k, v in model.policy.state_dict().items()},
                     model.log_ent_coef.detach().clone()))
        return -float(model.num_timesteps)

    keeper = KeepBest(earliest_is_best, every=200)
    model = train(tiny_train_config("sac", timesteps=600), tmp_path / "sac", callbacks=[keeper])
    end = model.log_ent_coef.detach().clone()
    assert keeper.finish() == 200 and sorted(keeper.scores) == [200, 400, 600]
    parameters, log_ent_coef = seen[0]
    assert torch.equal(model.log_ent_coef, log_ent_coef) and not torch.equal(end, log_ent_coef)
    assert all(torch.equal(model.policy.state_dict()[k], v) for k, v in parameters.items())  # targets included
