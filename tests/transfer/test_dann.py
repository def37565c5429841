"""DANN: the gradient-reversal layer, feature alignment toward chance, and a regular SB3 model as output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC, TD3

from sim2real.policies import Policy, RunInfo, load_policy
from sim2real.presets import target_spec
from sim2real.training import build_model, make_vec_env
from sim2real.transfer import prepare_transfer, run_transfer
from sim2real.transfer.dann import reverse_gradient
from tests.conftest import tiny_train_config

# Sensor noise and bias on the target shift the observations themselves: the setting feature alignment
# is built for. A probe classifier tells the two domains apart almost perfectly from the source encoder.
SMALL = {"source_states": 3000, "updates_per_round": 600, "probe_updates": 300}


def test_gradient_reversal_flips_and_scales_the_gradient() -> None:
    x = torch.ones(3, requires_grad=True)
    out = reverse_gradient(x, 2.5)
    assert torch.equal(out, x)
    out.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -2.5))


def test_dann_lowers_domain_classifier_accuracy_toward_chance(ppo_run: Path, tmp_path: Path) -> None:
    source_files = {p.name: p.read_bytes() for p in ppo_run.iterdir() if p.is_file()}
    method, setup, info = prepare_transfer(ppo_run, target_spec("noisy"), "dann", SMALL, 2000, seed=0)
    result = run_transfer(method, setup, info, tmp_path / "dann")
    metrics = result["metrics"]
    assert metrics["domain_accuracy_before"] > 0.85
    assert metrics["domain_accuracy_after"] < metrics["domain_accuracy_before"] - 0.1
    assert metrics["distill_mse_heldout"] < 0.05  # the action head keeps the source behaviour
    assert result["target_steps_used"] == 2000 and result["budget_ledger"] == {"rollouts": 2000}
    adapted = load_policy(tmp_path / "dann")
    assert isinstance(adapted.model, PPO)
    obs = np.zeros((5, 4))
    assert adapted.act(obs).shape == (5, 1)
    assert {p.name: p.read_bytes() for p in ppo_run.iterdir() if p.is_file()} == source_files


def test_dann_rejects_bad_settings(ppo_run: Path) -> None:
    with pytest.raises(ValueError, match=r"holdout_fraction=1.5 must be a number in \(0, 1\)"):
        prepare_transfer(ppo_run, target_spec("noisy"), "dann", {"holdout_fraction": 1.5}, 2000, seed=0)
    with pytest.raises(ValueError, match="rounds=0 must be an integer >= 1"):
        prepare_transfer(ppo_run, target_spec("noisy"), "dann", {"rounds": 0}, 2000, seed=0)


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3"])
def test_the_policy_splits_encoder_and_head(algo: str) -> None:
    config = tiny_train_config(algo)
    venv = make_vec_env(config.env, 2, seed=0)
    model = build_model(config.algo, venv, seed=0, tensorboard_dir=None, device="cpu")
    assert isinstance(model, {"ppo": PPO, "sac": SAC, "td3": TD3}[algo])
    policy = Policy(model, None, RunInfo(run_dir=Path("unsaved"), kind="train", env=config.env, algo=algo))
    assert len(policy.encoder_layers()) == 2 and policy.feature_size == 32
    obs = torch.randn(7, 4)
    with torch.no_grad():
        features = policy.features(obs)
        head = policy.head(features)
        expected = model.policy._predict(obs, deterministic=True)
    assert features.shape == (7, 32)
    assert torch.allclose(torch.tanh(head) if algo == "sac" else head, expected)  # encoder then head is the actor
    assert torch.allclose(policy.network_action(obs), expected)
    venv.close()
