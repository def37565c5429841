"""DARC: the domain classifiers learn where the dynamics differ, the correction follows, the budget holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim2real.policies import Policy
from sim2real.presets import target_spec
from sim2real.transfer import METHODS, prepare_transfer, run_transfer

FAST = {"source_ratio": 10, "warmup_steps": 1000, "train_every": 250}


def darc(source: Path, run_dir: Path, target: str, budget: int = 1000, **settings: object) -> dict:
    method, setup, info = prepare_transfer(source, target_spec(target), "darc", {**FAST, **settings}, budget, seed=0)
    return run_transfer(method, setup, info, run_dir)


def test_classifiers_learn_a_dynamics_shift_and_the_correction_follows(ppo_run: Path, tmp_path: Path) -> None:
    shifted = darc(ppo_run, tmp_path / "overloaded", "overloaded")
    metrics = shifted["metrics"]
    # Held-out transitions never trained on; chance is 0.5.
    assert metrics["sas_accuracy"] > 0.8 and metrics["held_out"] >= 200
    # delta_r = log p_target(s'|s,a) - log p_source(s'|s,a): low on source transitions, high on target ones.
    assert metrics["mean_correction_source"] < -1.0 < metrics["mean_correction_target"]
    assert shifted["target_steps_used"] == 1000 and shifted["budget_ledger"] == {"rollouts": 1000}
    assert metrics["source_steps"] >= 10 * 1000
    policy = Policy.load(tmp_path / "overloaded")  # the adapted run loads like any other
    assert policy.act(np.zeros(policy.obs_dim, dtype=np.float32)).shape == (1,)


def test_no_dynamics_shift_gives_no_correction(ppo_run: Path, tmp_path: Path) -> None:
    metrics = darc(ppo_run, tmp_path / "nominal", "nominal")["metrics"]
    # The visited states may differ (the source randomizes), the transitions given them do not.
    assert abs(metrics["mean_correction_source"]) < 0.5 and abs(metrics["mean_correction_target"]) < 0.5


def test_settings_are_checked() -> None:
    assert METHODS.get("darc").needs_expert is False
    with pytest.raises(ValueError, match="source_ratio=0 must be an integer >= 1"):
        METHODS.get("darc").settings_from_dict({"source_ratio": 0})
    with pytest.raises(ValueError, match="unknown keys \\['ratio'\\]"):
        METHODS.get("darc").settings_from_dict({"ratio": 5})
