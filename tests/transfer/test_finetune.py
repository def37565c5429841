"""Fine-tuning: raises target return within the budget; freezing, L2-SP and normalization options work."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC

from sim2real.evaluation import rollout_returns
from sim2real.policies import load_policy
from sim2real.presets import target_spec
from sim2real.training import train
from sim2real.transfer import prepare_transfer, run_transfer
from sim2real.transfer.finetune import ppo_rollout_plan
from tests.conftest import tiny_train_config

# A briefly trained InvertedPendulum policy balances ~130 steps at nominal gravity and ~70 at double
# gravity: a real gap on the target that a few thousand target steps of fine-tuning close in part.
TARGET = "high_gravity"


def finetune(source: Path, run_dir: Path, budget: int, **settings: object) -> dict:
    method, setup, info = prepare_transfer(source, target_spec(TARGET), "finetune", settings, budget, seed=0)
    return run_transfer(method, setup, info, run_dir)


def target_return(run_dir: Path) -> float:
    """Report-only evaluation on the simulated target (outside any budget)."""
    policy = load_policy(run_dir)
    return float(rollout_returns(policy.act, "inverted_pendulum", 5, seed=500, target=target_spec(TARGET)).returns.mean())


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def encoder_weights(run_dir: Path) -> list[torch.Tensor]:
    return [layer.weight.detach().clone() for layer in load_policy(run_dir).encoder_layers()]


def test_finetuning_raises_target_return_within_budget(ppo_run: Path, tmp_path: Path) -> None:
    digest = folder_digest(ppo_run)
    metadata = finetune(ppo_run, tmp_path / "ft", budget=5000)
    before, after = target_return(ppo_run), target_return(tmp_path / "ft")
    assert after > 1.5 * before, (before, after)
    assert metadata["target_steps_used"] <= 5000 and metadata["target_steps_used"] >= 4500
    assert metadata["budget_ledger"] == {"rollouts": metadata["target_steps_used"]}
    assert metadata["method"] == "finetune" and metadata["kind"] == "transfer" and metadata["complete"]
    assert metadata["source_run"] == str(ppo_run)
    assert isinstance(load_policy(tmp_path / "ft").model, PPO)
    assert (tmp_path / "ft" / "vecnormalize.pkl").is_file()
    assert folder_digest(ppo_run) == digest  # the source run is never modified


def test_freezing_keeps_the_chosen_encoder_layers(ppo_run: Path, tmp_path: Path) -> None:
    source = encoder_weights(ppo_run)
    finetune(ppo_run, tmp_path / "first", budget=1000, freeze_layers=1)
    first = encoder_weights(tmp_path / "first")
    assert torch.equal(first[0], source[0]) and not torch.equal(first[1], source[1])
    finetune(ppo_run, tmp_path / "all", budget=1000, freeze_layers=-1)
    assert all(torch.equal(a, b) for a, b in zip(encoder_weights(tmp_path / "all"), source, strict=True))
    assert all(p.requires_grad for p in load_policy(tmp_path / "all").model.policy.parameters())


def test_l2sp_keeps_weights_near_the_source(ppo_run: Path, tmp_path: Path) -> None:
    source = torch.nn.utils.parameters_to_vector(load_policy(ppo_run).model.policy.parameters()).detach()

    def drift(run_dir: Path) -> float:
        weights = torch.nn.utils.parameters_to_vector(load_policy(run_dir).model.policy.parameters()).detach()
        return float((weights - source).norm())

    finetune(ppo_run, tmp_path / "plain", budget=1000, learning_rate=1e-3)
    finetune(ppo_run, tmp_path / "l2sp", budget=1000, learning_rate=1e-3, l2sp=50.0)
    assert drift(tmp_path / "l2sp") < 0.5 * drift(tmp_path / "plain")


def test_normalization_kept_or_reestimated(ppo_run: Path, tmp_path: Path) -> None:
    def obs_mean(run_dir: Path) -> np.ndarray:
        with open(run_dir / "vecnormalize.pkl", "rb") as handle:
            return pickle.load(handle).obs_rms.mean

    finetune(ppo_run, tmp_path / "keep", budget=1000, normalization="keep")
    finetune(ppo_run, tmp_path / "update", budget=1000, normalization="update")
    np.testing.assert_array_equal(obs_mean(tmp_path / "keep"), obs_mean(ppo_run))
    assert not np.allclose(obs_mean(tmp_path / "update"), obs_mean(ppo_run))


def test_ppo_rollouts_fit_the_budget() -> None:
    for budget, n_envs, n_steps, batch in [(20_000, 4, 512, 64), (1000, 4, 32, 64), (1001, 1, 2048, 64), (5, 4, 8, 64)]:
        steps, rollouts = ppo_rollout_plan(budget, n_envs, n_steps, batch)
        assert 0 < steps * n_envs * rollouts <= budget
    assert ppo_rollout_plan(20_000, 4, 512, 64) == (544, 9)
    with pytest.raises(ValueError, match="smaller than one step"):
        ppo_rollout_plan(3, 4, 32)


@pytest.mark.parametrize(("settings", "message"), [
    ({"normalization": "reset"}, "valid: keep, update"),
    ({"freeze_layers": 3}, "encoder has 2 layers"),
    ({"learning_rate": 0.0}, "learning_rate=0.0 must be a number > 0 or null"),
    ({"l2sp": -1.0}, "l2sp=-1.0 must be a number >= 0"),
])
def test_bad_settings_fail_before_work(ppo_run: Path, settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_transfer(ppo_run, target_spec(TARGET), "finetune", settings, 2000, seed=0)


def test_sac_finetuning_stays_within_budget(tmp_path: Path) -> None:
    source = tmp_path / "sac"
    train(tiny_train_config("sac", timesteps=300), source)
    metadata = finetune(source, tmp_path / "ft", budget=1000, warmup_steps=700, freeze_layers=1)
    assert metadata["target_steps_used"] == 1000
    adapted = load_policy(tmp_path / "ft")
    assert isinstance(adapted.model, SAC)
    assert torch.equal(adapted.encoder_layers()[0].weight, load_policy(source).encoder_layers()[0].weight)


def test_an_off_policy_source_that_collects_in_blocks_is_refused(tmp_path: Path) -> None:
    """With train_freq=64 SB3 collects whole blocks past the step it is asked to stop at: the run hit the
    budget's hard cap (BudgetExhausted) after spending the whole budget, and wrote nothing."""
    source = tmp_path / "sac"
    train(tiny_train_config("sac", timesteps=300, train_freq=64), source)
    with pytest.raises(ValueError, match="train_freq=64"):
        prepare_transfer(source, target_spec(TARGET), "finetune", {}, 2000, seed=0)


def test_a_given_log_follows_the_training_across_warmup_and_updates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """scripts/transfer.py passes ``print``: one line per tenth of the target steps, counted across the off-policy
    warm-up and the updates (two ``learn`` calls), the last at the budget; without a log, nothing is printed."""
    source = tmp_path / "sac"
    train(tiny_train_config("sac", timesteps=300), source)
    capsys.readouterr()
    lines: list[str] = []
    method, setup, info = prepare_transfer(source, target_spec(TARGET), "finetune", {"warmup_steps": 700}, 1000,
                                           seed=0, log=lines.append)
    run_transfer(method, setup, info, tmp_path / "ft")
    steps = [int(line.split(": ", 1)[1].split("/")[0]) for line in lines]
    assert all(line.startswith("finetune on the target: ") for line in lines), lines
    assert steps == list(range(100, 1001, 100)), lines
    assert lines[-1].split(": ", 1)[1].startswith("1000/1000 steps")
    method, setup, info = prepare_transfer(source, target_spec(TARGET), "finetune", {"warmup_steps": 700}, 1000, seed=0)
    run_transfer(method, setup, info, tmp_path / "quiet")
    assert "finetune on the target" not in capsys.readouterr().out
