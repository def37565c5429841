"""method=sysid: budget accounting, the calibration it reports, settings and bad input before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim2real.evaluation.rollout import rollout_returns
from sim2real.policies import load_policy
from sim2real.presets import target_spec
from sim2real.sysid.report import CALIBRATION_FILE, CALIBRATION_PLOT
from sim2real.transfer import prepare_transfer, run_transfer
from sim2real.transfer.sysid import Sysid  # registers method=sysid

FAST = {"parameters": {"gravity": [0.25, 4.0]}, "latency_max": 0, "measure_steps": 1000, "trajectory_length": 100,
        "evaluations": 40, "search_windows": 150, "bootstrap": 20, "sim_timesteps": 512, "selection_episodes": 2}


def transfer(source: Path, run_dir: Path, budget: int = 1000, target: str = "high_gravity", **settings):  # noqa: ANN201
    method, setup, info = prepare_transfer(source, target_spec(target), Sysid.name, {**FAST, **settings}, budget, seed=0)
    return method, run_transfer(method, setup, info, run_dir)


def test_every_target_step_is_measurement_and_in_the_ledger(ppo_run: Path, tmp_path: Path) -> None:
    method, metadata = transfer(ppo_run, tmp_path / "sysid", budget=1200)
    assert metadata["target_steps_used"] == 1000 == metadata["budget_ledger"]["measurement"]  # measure_steps
    metrics = metadata["metrics"]
    assert metrics["measurement"]["steps"] == 1000 == metrics["calibration"]["data"]["steps"]
    assert metrics["sim_steps"]["training"] >= 512 and metrics["init"] == "scratch"  # free, reported apart
    gravity = metrics["calibration"]["parameters"]["gravity"]
    assert gravity["value"] == pytest.approx(2.0, rel=0.1) and gravity["true_value"] == pytest.approx(2.0)
    assert metrics["calibrated_randomization"]["parameters"]["gravity"]["dist"] == "log_uniform"
    assert load_policy(tmp_path / "sysid").info.is_transfer
    written = method.write_artifacts(_adapted(metrics), tmp_path / "sysid")
    assert [p.name for p in written] == [CALIBRATION_FILE, CALIBRATION_PLOT]
    assert json.loads((tmp_path / "sysid" / CALIBRATION_FILE).read_text())["parameters"]["gravity"]["identifiable"]


def test_both_inits_and_finetuning_the_rest_stay_within_the_budget(ppo_run: Path, tmp_path: Path) -> None:
    _, metadata = transfer(ppo_run, tmp_path / "both", budget=3000, init="both", finetune_remaining=True)
    ledger = metadata["budget_ledger"]
    assert ledger["measurement"] == 1000 and 0 < ledger["finetune"] <= 2000
    assert metadata["target_steps_used"] == sum(ledger.values()) <= 3000
    metrics = metadata["metrics"]
    assert set(metrics["selection_returns"]) == {"scratch", "source"} and metrics["sim_steps"]["selection"] > 0
    assert metrics["init"] == max(metrics["selection_returns"], key=metrics["selection_returns"].get)


@pytest.mark.parametrize(("settings", "budget", "message"), [
    ({"parameters": {"torso_mass": [0.5, 2.0]}}, 1000, "unknown parameter 'torso_mass'.*parameters: cart_mass"),
    ({"parameters": {"masses": [0.0, 2.0]}}, 1000, "must be > 0"),
    ({"parameters": {"masses": [2.0, 1.0]}}, 1000, "needs low < high"),
    ({"trajectory_length": 1500, "measure_steps": 2000}, 1000, "budget=1000 is too small for one trajectory of "
                                                               "trajectory_length=1500 steps"),
    ({"finetune_remaining": True, "measure_steps": 1000}, 1000, "finetune_remaining needs budget > measure_steps"),
    ({"init": "best"}, 1000, "init='best' is not valid; valid: scratch, source, both"),
    ({"excitation": "sine"}, 1000, "excitation='sine' is not valid; valid: policy, random, chirp"),
    ({"measure_steps": 50}, 1000, "measure_steps=50 is less than one trajectory"),
])
def test_bad_input_fails_before_any_work(ppo_run: Path, settings: dict, budget: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_transfer(ppo_run, target_spec("high_gravity"), "sysid", {**FAST, **settings}, budget, seed=0)


@pytest.mark.slow
def test_policy_trained_in_the_calibrated_simulator_balances_on_the_target(ppo_run: Path, tmp_path: Path) -> None:
    _, metadata = transfer(ppo_run, tmp_path / "learn", target="weak_motors", parameters={"gains": [0.25, 4.0]},
                           sim_timesteps=40_000)
    assert metadata["metrics"]["calibration"]["parameters"]["gains"]["value"] == pytest.approx(0.7, rel=0.1)
    result = rollout_returns(load_policy(tmp_path / "learn"), "inverted_pendulum", 5, seed=100,
                             target=target_spec("weak_motors"))
    assert result.returns.mean() > 500  # a random policy balances for ~5-10 steps


def _adapted(metrics: dict):  # noqa: ANN202
    from sim2real.transfer.base import AdaptedPolicy

    return AdaptedPolicy(model=None, normalizer=None, metrics=metrics)  # type: ignore[arg-type]
