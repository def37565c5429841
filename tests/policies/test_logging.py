"""Models trained without a TensorBoard folder leave nothing in the system's temp directory."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from sim2real.policies import Policy, RunInfo
from sim2real.training import build_model, make_vec_env
from tests.conftest import tiny_train_config


@pytest.mark.parametrize("algo", ["ppo", "td3"])
def test_learning_without_tensorboard_writes_no_temp_folder(algo: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where SB3 would put its SB3-<date> folder
    config = tiny_train_config(algo)
    venv = make_vec_env(config.env, 1, seed=0)
    model = build_model(config.algo, venv, seed=0, tensorboard_dir=None, device="cpu")
    model.learn(total_timesteps=64)
    copy = Policy(model, None, RunInfo(run_dir=Path("unsaved"), kind="train", env=config.env, algo=algo))
    copy.trainable_copy(env=venv).model.learn(total_timesteps=64)  # what the transfer methods train
    venv.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("SB3")] == []
