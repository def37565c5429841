"""Behaviour cloning: lowers the action error to the expert, charges demonstrations, keeps the budget."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO, SAC

from sim2real.data import collect_demonstrations, record_expert_demonstrations, save_demonstrations
from sim2real.policies import load_policy
from sim2real.presets import target_spec
from sim2real.randomization.factory import make_env
from sim2real.training import train
from sim2real.transfer import METHODS, prepare_transfer, run_transfer
from sim2real.transfer.demonstrations import LR_SCHEDULES, DemonstrationSettings, action_error, fit_regression
from tests.conftest import tiny_train_config
from tests.transfer.conftest import TARGET


@pytest.fixture(scope="module")
def demos(expert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3000 target steps (3 whole episodes) of expert demonstrations on disk."""
    data = record_expert_demonstrations(expert, target_spec(TARGET), episodes=3, seed=7)
    return save_demonstrations(data, tmp_path_factory.mktemp("demos") / "demos.npz")


def bc(source: Path, run_dir: Path, budget: int, **settings: object) -> dict:
    method, setup, info = prepare_transfer(source, target_spec(TARGET), "bc", settings, budget, seed=0)
    return run_transfer(method, setup, info, run_dir)


def held_out_error(run_dir: Path, expert: Path) -> float:
    """Mean squared action error to the expert on expert states of episodes never trained on."""
    held_out = record_expert_demonstrations(expert, target_spec(TARGET), steps=1000, seed=12_345)
    return action_error(load_policy(run_dir), held_out.observations, held_out.actions)


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("init", ["source", "scratch"])
def test_bc_lowers_action_error_to_the_expert(ppo_run: Path, expert: Path, tmp_path: Path, init: str) -> None:
    digest = folder_digest(ppo_run)
    metadata = bc(ppo_run, tmp_path / "bc", budget=1000, expert=str(expert), init=init)
    before, after = held_out_error(ppo_run, expert), held_out_error(tmp_path / "bc", expert)
    assert after < 0.1 * before, (before, after)
    metrics = metadata["metrics"]
    assert metrics["validation_error_after"] < metrics["validation_error_before"]
    assert metadata["budget_ledger"] == {"demonstrations": 1000} and metadata["target_steps_used"] == 1000
    assert metadata["method"] == "bc" and metadata["settings"]["init"] == init
    policy = load_policy(tmp_path / "bc")
    assert isinstance(policy.model, PPO)
    # the source's observation statistics are kept, byte for byte; the source folder is untouched
    assert (tmp_path / "bc" / "vecnormalize.pkl").read_bytes() == (ppo_run / "vecnormalize.pkl").read_bytes()
    assert folder_digest(ppo_run) == digest


def test_a_dataset_larger_than_the_budget_is_cut_to_whole_episodes(ppo_run: Path, demos: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="first 1000 of 3000"):
        metadata = bc(ppo_run, tmp_path / "bc", budget=1500, dataset=str(demos), epochs=2)
    metrics = metadata["metrics"]
    assert metrics["demo_cut_by"] == "budget" and metrics["demo_steps_available"] == 3000
    assert metrics["demo_steps_used"] == 1000 and metrics["demo_episodes_used"] == 1
    assert metrics["demo_target_matches"] is True
    assert metadata["budget_ledger"] == {"demonstrations": 1000}
    assert sum(metadata["budget_ledger"].values()) == metadata["target_steps_used"] <= metadata["budget"]


def test_a_dataset_within_the_budget_is_charged_in_full(ppo_run: Path, demos: Path, tmp_path: Path) -> None:
    metadata = bc(ppo_run, tmp_path / "bc", budget=5000, dataset=str(demos), epochs=2)
    assert metadata["metrics"]["demo_cut_by"] is None
    assert metadata["budget_ledger"] == {"demonstrations": 3000} and metadata["target_steps_used"] == 3000


def test_bc_regresses_sac_in_its_squashed_action_space(expert: Path, tmp_path_factory: pytest.TempPathFactory,
                                                      tmp_path: Path) -> None:
    source = tmp_path_factory.mktemp("sac_run")
    train(tiny_train_config("sac", timesteps=300), source)
    bc(source, tmp_path / "bc", budget=1000, expert=str(expert), epochs=60, learning_rate=3e-3)
    policy = load_policy(tmp_path / "bc")
    assert isinstance(policy.model, SAC)
    held_out = record_expert_demonstrations(expert, target_spec(TARGET), steps=300, seed=99)
    # predict() unscales the tanh output: env-space actions must match the expert's, not a scaled copy
    np.testing.assert_allclose(policy.act(held_out.observations), held_out.actions, atol=0.1)
    assert held_out_error(tmp_path / "bc", expert) < 0.1 * held_out_error(source, expert)


def test_bad_input_fails_before_any_work(ppo_run: Path, expert: Path, tmp_path: Path) -> None:
    env = make_env("hopper")
    hopper_data = collect_demonstrations(lambda obs: np.zeros(3, np.float32), env, steps=20,
                                         info={"env": {"name": "hopper", "id": "Hopper-v5"}})
    hopper = save_demonstrations(hopper_data, tmp_path / "hopper.npz")
    with pytest.raises(ValueError, match="recorded on Hopper-v5.*InvertedPendulum-v5"):
        bc(ppo_run, tmp_path / "run", budget=1000, dataset=str(hopper))
    with pytest.raises(ValueError, match="exactly one of dataset"):
        bc(ppo_run, tmp_path / "run", budget=1000)
    with pytest.raises(ValueError, match="exactly one of dataset"):
        bc(ppo_run, tmp_path / "run", budget=1000, dataset=str(hopper), expert=str(expert))
    with pytest.raises(ValueError, match="init='best'.*valid: source, scratch"):
        bc(ppo_run, tmp_path / "run", budget=1000, expert=str(expert), init="best")
    with pytest.raises(ValueError, match="demo_steps=5000 exceeds the budget"):
        bc(ppo_run, tmp_path / "run", budget=1000, expert=str(expert), demo_steps=5000)
    other = tmp_path / "other_env_expert"
    other.mkdir()
    for name in ("model.zip", "metadata.json"):
        (other / name).write_bytes((expert / name).read_bytes())
    metadata = json.loads((other / "metadata.json").read_text())
    metadata["env"] = {"name": "hopper", "id": "Hopper-v5", "kwargs": {}, "max_episode_steps": None}
    (other / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="is for env 'hopper'"):
        bc(ppo_run, tmp_path / "run", budget=1000, expert=str(other))
    assert not (tmp_path / "run").exists()


def test_settings_are_registered_and_documented() -> None:
    method = METHODS.get("bc")
    settings = method.settings_from_dict({"expert": "x", "learning_rate": 1})
    assert settings.learning_rate == 1.0 and isinstance(settings.learning_rate, float) and settings.init == "source"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.epochs = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="method 'bc': expert=5 must be a path or null"):
        method.settings_from_dict({"expert": 5})
    doc = method.Settings.__doc__ or ""
    assert all(f"{name}:" in doc for name in method.Settings.__dataclass_fields__)


def test_a_cosine_schedule_settles_where_a_constant_rate_keeps_moving() -> None:
    """Noisy linear regression at a high rate: the constant rate ends wherever its last mini-batches left it,
    the annealed one at the least-squares fit (the fit's own seed fixes the batches, so only the rate differs)."""
    rng = np.random.default_rng(0)
    inputs = th.as_tensor(rng.normal(size=(2048, 8)), dtype=th.float32)
    targets = inputs @ th.as_tensor(rng.normal(size=(8, 1)), dtype=th.float32) + th.as_tensor(
        rng.normal(scale=0.5, size=(2048, 1)), dtype=th.float32)
    solution = th.linalg.lstsq(inputs, targets).solution
    best = float(th.nn.functional.mse_loss(inputs @ solution, targets))
    errors = {}
    for schedule in LR_SCHEDULES:
        th.manual_seed(0)
        layer = th.nn.Linear(8, 1, bias=False)
        settings = DemonstrationSettings(expert="x", epochs=5, batch_size=8, learning_rate=0.05, lr_schedule=schedule,
                                         validation_split=0.0, keep_best=False)
        errors[schedule] = fit_regression(layer, list(layer.parameters()), layer, inputs, targets, settings,
                                          seed=0)["train_error_after"]
    assert errors["cosine"] < best * 1.002 < best * 1.02 < errors["constant"]
    with pytest.raises(ValueError, match="lr_schedule='linear'.*valid: constant, cosine"):
        DemonstrationSettings(expert="x", lr_schedule="linear")
