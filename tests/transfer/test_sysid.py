"""method=sysid: budget accounting, the calibration it reports, settings and bad input before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from sim2real.envs.registry import resolve_env
from sim2real.evaluation.rollout import rollout_returns
from sim2real.policies import Policy, load_policy
from sim2real.presets import target_spec
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.sysid.calibrate import calibrate, prepare_calibration
from sim2real.sysid.data import TRAJECTORIES_FILE, load_trajectories
from sim2real.sysid.report import CALIBRATION_FILE, CALIBRATION_PLOT
from sim2real.training import train
from sim2real.training.callbacks import SimulationScore
from sim2real.transfer import prepare_transfer, run_transfer
from sim2real.transfer import sysid as sysid_module
from sim2real.transfer.base import continue_off_policy
from sim2real.transfer.sysid import Sysid  # registers method=sysid
from tests.conftest import tiny_train_config

FAST = {"parameters": {"gravity": [0.25, 4.0]}, "latency_max": 0, "measure_steps": 1000, "trajectory_length": 100,
        "evaluations": 40, "search_windows": 150, "bootstrap": 20, "sim_timesteps": 512, "selection_episodes": 2}


def transfer(source: Path, run_dir: Path, budget: int = 1000, target: str = "high_gravity", log=None, **settings):  # noqa: ANN001, ANN201
    method, setup, info = prepare_transfer(source, target_spec(target), Sysid.name, {**FAST, **settings}, budget, seed=0,
                                           log=log)
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
    assert metrics["measurement"]["file"] == TRAJECTORIES_FILE  # the measurement, in the dataset format
    kept = load_trajectories(tmp_path / "sysid" / TRAJECTORIES_FILE, env="inverted_pendulum")
    assert len(kept) == 1000 and kept.info["target"]["name"] == "high_gravity"
    written = method.write_artifacts(_adapted(metrics), tmp_path / "sysid")
    assert [p.name for p in written] == [CALIBRATION_FILE, CALIBRATION_PLOT]
    assert json.loads((tmp_path / "sysid" / CALIBRATION_FILE).read_text())["parameters"]["gravity"]["identifiable"]


def test_both_inits_and_finetuning_the_rest_stay_within_the_budget(ppo_run: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    _, metadata = transfer(ppo_run, tmp_path / "both", budget=3000, init="both", finetune_remaining=True, log=lines.append)
    ledger = metadata["budget_ledger"]
    assert ledger["measurement"] == 1000 and 0 < ledger["finetune"] <= 2000
    assert metadata["target_steps_used"] == sum(ledger.values()) <= 3000
    metrics = metadata["metrics"]
    assert set(metrics["selection_returns"]) == {"scratch", "source"} and metrics["sim_steps"]["selection"] > 0
    assert metrics["init"] == max(metrics["selection_returns"], key=metrics["selection_returns"].get)
    labels = ("sysid: training in the calibrated simulation (init=scratch)",
              "sysid: training in the calibrated simulation (init=source)", "finetune on the target")
    last = {label: int(line.removeprefix(label + ": ").split("/")[0])  # each training's progress reached the log
            for line in lines for label in labels if line.startswith(label + ": ")}
    assert last[labels[0]] >= 512 and last[labels[1]] >= 512 and last[labels[2]] == ledger["finetune"], lines


def test_select_every_keeps_the_checkpoint_scoring_best_in_the_calibrated_simulation(
        ppo_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real, measured = SimulationScore.__call__, []

    def earliest_is_best(self: SimulationScore, model) -> float:  # noqa: ANN001
        measured.append(real(self, model))  # the real return in the calibrated simulation ...
        return -float(model.num_timesteps)  # ... and a score that makes the first checkpoint, not the last, best

    monkeypatch.setattr(SimulationScore, "__call__", earliest_is_best)
    _, metadata = transfer(ppo_run, tmp_path / "best", sim_timesteps=6144, select_every=2048, selection_episodes=3)
    metrics = metadata["metrics"]
    selection = metrics["selection"]["scratch"]  # PPO rollouts of 4 x 512 steps
    assert list(selection["returns"]) == ["2048", "4096", "6144"] and selection["kept_step"] == 2048
    assert metadata["target_steps_used"] == 1000 and metrics["sim_steps"]["selection"] >= 3 * 3  # free
    # the saved policy is the kept checkpoint, not the end model: it returns what that checkpoint returned
    calibrated = DynamicsSpec.from_dict(metrics["calibrated_randomization"])
    again = rollout_returns(load_policy(tmp_path / "best"), "inverted_pendulum", 3, seed=10_000, randomization=calibrated)
    assert again.returns.mean() == pytest.approx(measured[0], rel=1e-6) and measured[0] != pytest.approx(measured[-1])


def test_a_run_failing_after_its_measurement_keeps_the_measured_trajectories(
        ppo_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Target steps are what a robot makes scarce: the data they bought survives a failure in the simulation
    training that follows, and identifies the same dynamics again (as ``scripts/calibrate.py dataset=`` does)."""
    def fail(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("stopped during the simulation training")

    monkeypatch.setattr(sysid_module, "train_in_simulation", fail)
    with pytest.raises(RuntimeError, match="stopped during the simulation training"):
        transfer(ppo_run, tmp_path / "failed")
    settings = Sysid.settings_from_dict(FAST).identify_settings(seed=0)
    inputs = prepare_calibration(resolve_env("inverted_pendulum"), settings, dataset=tmp_path / "failed")
    assert inputs.dataset is not None and len(inputs.dataset) == 1000
    assert calibrate(inputs, tmp_path / "again").scales["gravity"] == pytest.approx(2.0, rel=0.1)


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
    ({"select_every": 1024, "sim_timesteps": 512}, 1000, "select_every=1024 is more than sim_timesteps=512"),
    ({"trajectory_length": 100, "measure_steps": 500, "horizon": 150}, 1000,
     "horizon=150 is longer than trajectory_length=100"),
])
def test_bad_input_fails_before_any_work(ppo_run: Path, settings: dict, budget: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_transfer(ppo_run, target_spec("high_gravity"), "sysid", {**FAST, **settings}, budget, seed=0)


def test_recurrent_runs_are_refused_as_sources_and_dagger_experts(ppo_run: Path, tmp_path: Path) -> None:
    """No method can adapt an LSTM source (each would run it without its state): refused before any target
    step; bc and dagger used to spend their demonstration budget first, finetune and dann to crash."""
    recurrent = tmp_path / "lstm"
    train(tiny_train_config("recurrent_ppo", timesteps=256), recurrent)
    for method, settings in (("sysid", FAST), ("finetune", {}), ("dann", {}), ("bc", {"expert": str(ppo_run)}),
                             ("dagger", {"expert": str(ppo_run)})):
        with pytest.raises(ValueError, match=f"method '{method}' cannot adapt a recurrent"):
            prepare_transfer(recurrent, target_spec("high_gravity"), method, settings, 1000, seed=0)
    with pytest.raises(ValueError, match=f"expert '{recurrent}' is recurrent"):
        prepare_transfer(ppo_run, target_spec("high_gravity"), "dagger", {"expert": str(recurrent)}, 1000, seed=0)


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


class _ActorCheck(BaseCallback):
    """Records, for every collected step before the first gradient update, whether the action taken is the
    actor's own (TD3 without action noise acts deterministically with its actor)."""

    def __init__(self) -> None:
        super().__init__()
        self.own_actions: list[bool] = []

    def _on_step(self) -> bool:
        if self.model.gradient_steps == 0:
            predicted, _ = self.model.predict(self.model._last_obs, deterministic=True)
            self.own_actions.append(bool(np.allclose(predicted, self.locals["actions"], atol=1e-6)))
        return True


def test_continuing_an_off_policy_source_collects_with_its_actor_not_uniform_actions(tmp_path: Path) -> None:
    """A fresh step count would make SB3 draw uniform random actions for the first learning_starts steps and
    train the trained actor on them; the continuation keeps the count and warms the new buffer up with the
    actor's own actions."""
    train(tiny_train_config("td3", timesteps=300), tmp_path / "td3")  # learning_starts 200
    policy = Policy.load(tmp_path / "td3")
    model = policy.trainable_copy(env=DummyVecEnv([lambda: Monitor(make_env(policy.info.env))])).model
    model.action_noise = None
    start, check = model.num_timesteps, _ActorCheck()
    continue_off_policy(model, 150, warmup=100, callback=check)
    assert model.num_timesteps - start == 150 == model.replay_buffer.size()
    assert len(check.own_actions) == 100 and all(check.own_actions)


def test_sysid_continuing_a_td3_source_reports_the_simulation_steps_it_took(tmp_path: Path) -> None:
    train(tiny_train_config("td3", timesteps=300), tmp_path / "td3")
    _, metadata = transfer(tmp_path / "td3", tmp_path / "sysid", init="source", select_every=256)
    assert metadata["metrics"]["sim_steps"]["training"] == FAST["sim_timesteps"]  # not the source's 300 on top
    assert metadata["target_steps_used"] == 1000
    # its checkpoints are counted from where the continued training started, as its steps are
    assert list(metadata["metrics"]["selection"]["source"]["returns"]) == ["256", "512"]


class _RateLog(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def _on_step(self) -> bool:
        self.rates.append(self.model.actor.optimizer.param_groups[0]["lr"])
        return True


def test_continuing_restarts_a_linear_schedule_over_the_new_steps(tmp_path: Path) -> None:
    """Like PPO's fine-tuning (which counts its steps afresh), a lin_ schedule runs again over the continued steps;
    read against the kept step count it stayed in the source run's tail, near 0."""
    train(tiny_train_config("td3", timesteps=300, learning_rate="lin_1e-3"), tmp_path / "td3")
    policy = Policy.load(tmp_path / "td3")
    model = policy.trainable_copy(env=DummyVecEnv([lambda: Monitor(make_env(policy.info.env))])).model
    schedule, log = model.lr_schedule, _RateLog()
    continue_off_policy(model, 200, warmup=50, callback=log)
    updated = log.rates[51:]  # rates set by the updates after the warm-up
    assert updated[0] == pytest.approx(1e-3 * (1 - 51 / 200), rel=0.05) and updated[-1] < 0.05e-3
    assert all(a >= b for a, b in zip(updated, updated[1:])) and model.lr_schedule is schedule
