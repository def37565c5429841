"""Fixtures for the export tests: tiny SAC and TD3 runs, and one exported bundle per algorithm."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim2real.export import export_bundle
from sim2real.training import train
from tests.conftest import tiny_train_config


def _tiny_off_policy_run(factory: pytest.TempPathFactory, algo: str) -> Path:
    run_dir = factory.mktemp(f"{algo}_run")
    train(tiny_train_config(algo, timesteps=300), run_dir)  # 100 gradient steps: enough for parity
    return run_dir


@pytest.fixture(scope="session")
def sac_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SAC run on InvertedPendulum (no observation normalization, tanh-squashed actor)."""
    return _tiny_off_policy_run(tmp_path_factory, "sac")


@pytest.fixture(scope="session")
def td3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TD3 run on InvertedPendulum (no observation normalization, tanh output layer)."""
    return _tiny_off_policy_run(tmp_path_factory, "td3")


@pytest.fixture(scope="session")
def trained_ppo_run(request: pytest.FixtureRequest) -> Path:
    """The shared PPO run (VecNormalize on)."""
    return request.getfixturevalue("ppo_run")


def _export(factory: pytest.TempPathFactory, run_dir: Path, algo: str) -> Path:
    out = factory.mktemp(f"{algo}_bundle") / "bundle"
    export_bundle(run_dir, out)
    return out


@pytest.fixture(scope="session")
def ppo_bundle(trained_ppo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of the shared PPO run."""
    return _export(tmp_path_factory, trained_ppo_run, "ppo")


@pytest.fixture(scope="session")
def sac_bundle(sac_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of the SAC run."""
    return _export(tmp_path_factory, sac_run, "sac")


@pytest.fixture(scope="session")
def td3_bundle(td3_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of the TD3 run."""
    return _export(tmp_path_factory, td3_run, "td3")
