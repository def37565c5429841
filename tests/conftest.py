"""Shared fixtures: small, fast training runs on InvertedPendulum reused across test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sim2real.presets import load_preset
from sim2real.training import train, train_config_from_dict

REPO = Path(__file__).resolve().parent.parent
# Small networks train fastest on one thread, and several test processes may share the cores.
torch.set_num_threads(1)


def tiny_train_config(algo: str = "ppo", timesteps: int = 8000, seed: int = 0, env: str = "inverted_pendulum",
                      randomization: str = "default", target: str = "nominal", **algo_overrides):
    """A validated TrainConfig for a short run (few steps, small network)."""
    algo_cfg = load_preset("algo", algo)
    algo_cfg["network"]["pi"] = [32, 32]
    algo_cfg["network"]["vf"] = [32, 32]
    for key, value in algo_overrides.items():
        algo_cfg["hyperparams"][key] = value
    if algo in ("sac", "td3"):
        algo_cfg["hyperparams"].update(learning_starts=200, buffer_size=20_000)
        algo_cfg["env_overrides"] = {}
    return train_config_from_dict({
        "env": {"name": env},
        "algo": algo_cfg,
        "randomization": load_preset("randomization", randomization),
        "target": load_preset("target", target),
        "timesteps": timesteps,
        "seed": seed,
        "checkpoint_every": 0,
        "eval_episodes": 0,
        "progress_bar": False,
    })


@pytest.fixture(scope="session")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PPO policy with domain randomization on InvertedPendulum (VecNormalize on); ~10 s."""
    run_dir = tmp_path_factory.mktemp("ppo_run")
    train(tiny_train_config("ppo", timesteps=12_000), run_dir)
    return run_dir
