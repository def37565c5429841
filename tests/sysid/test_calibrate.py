"""Identification alone (scripts/calibrate.py and its library function): from a dataset or fresh rollouts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim2real.presets import target_spec
from sim2real.sysid.calibrate import calibrate, prepare_calibration
from sim2real.sysid.data import (
    TRAJECTORIES_FILE,
    MeasurementSettings,
    Trajectories,
    load_trajectories,
    save_trajectories,
)
from sim2real.sysid.identify import IdentifySettings
from sim2real.sysid.report import CALIBRATION_FILE, CALIBRATION_PLOT
from tests.conftest import REPO
from tests.sysid.conftest import ENV_SPEC

SETTINGS = IdentifySettings(parameters={"gravity": (0.25, 4.0)}, evaluations=40, search_windows=150, bootstrap=20)


def test_calibrates_from_a_dataset_file(tmp_path: Path, high_gravity_data: Trajectories) -> None:
    path = save_trajectories(high_gravity_data, tmp_path / "robot.npz")
    calibration = calibrate(prepare_calibration(ENV_SPEC, SETTINGS, dataset=path), tmp_path / "out")
    report = json.loads((tmp_path / "out" / CALIBRATION_FILE).read_text())
    assert (tmp_path / "out" / CALIBRATION_PLOT).stat().st_size > 0
    assert report["parameters"]["gravity"]["value"] == pytest.approx(2.0, rel=0.1) == calibration.scales["gravity"]
    assert report["parameters"]["gravity"]["true_value"] is None  # a robot's truth is unknown
    kept = load_trajectories(tmp_path / "out" / TRAJECTORIES_FILE)  # the calibration keeps the data it used
    assert np.array_equal(kept.qpos, high_gravity_data.qpos) and np.array_equal(kept.actions, high_gravity_data.actions)


def test_a_run_folder_gives_the_trajectories_it_measured(tmp_path: Path, high_gravity_data: Trajectories) -> None:
    save_trajectories(high_gravity_data, tmp_path / "sysid_run" / TRAJECTORIES_FILE)
    inputs = prepare_calibration(ENV_SPEC, SETTINGS, dataset=tmp_path / "sysid_run")
    assert inputs.dataset is not None and len(inputs.dataset) == len(high_gravity_data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"dataset=.*empty is a folder without {TRAJECTORIES_FILE}"):
        prepare_calibration(ENV_SPEC, SETTINGS, dataset=tmp_path / "empty")


def test_fresh_rollouts_on_a_named_target_record_the_data_too(tmp_path: Path) -> None:
    inputs = prepare_calibration(ENV_SPEC, SETTINGS, measurement=MeasurementSettings("chirp", 0.5, 500, 100),
                                 target=target_spec("high_gravity"))
    calibration = calibrate(inputs, tmp_path)
    assert calibration.parameters[0].true_value == pytest.approx(2.0)
    assert (tmp_path / "trajectories.npz").is_file() and (tmp_path / "trajectories.json").is_file()


def test_bad_sources_are_rejected_before_work(tmp_path: Path, high_gravity_data: Trajectories) -> None:
    with pytest.raises(ValueError, match="give exactly one of dataset=FILE"):
        prepare_calibration(ENV_SPEC, SETTINGS)
    with pytest.raises(ValueError, match="excitation 'policy' needs a policy run folder"):
        prepare_calibration(ENV_SPEC, SETTINGS, measurement=MeasurementSettings("policy", 0.3, 500, 100))


def test_a_horizon_no_trajectory_can_hold_is_rejected_before_work(tmp_path: Path, high_gravity_data: Trajectories) -> None:
    path = save_trajectories(high_gravity_data, tmp_path / "robot.npz")
    longest = max(end - start for start, end in high_gravity_data.episode_bounds())
    long = IdentifySettings(parameters={"gravity": (0.25, 4.0)}, horizon=longest + 1)
    with pytest.raises(ValueError, match=f"horizon={longest + 1} is longer than the longest trajectory in .*={longest}"):
        prepare_calibration(ENV_SPEC, long, dataset=path)
    with pytest.raises(ValueError, match="horizon=101 is longer than trajectory_length=100"):
        prepare_calibration(ENV_SPEC, IdentifySettings(parameters={"gravity": (0.25, 4.0)}, horizon=101),
                            measurement=MeasurementSettings("chirp", 0.5, 500, 100), target=target_spec("high_gravity"))


def test_script_ignores_the_transfers_measure_steps_and_checks_the_horizon_first(tmp_path: Path) -> None:
    # steps=3000 holds a trajectory of 2,500 steps; the transfer's measure_steps (2,000) plays no part here.
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate.py"), "env=inverted_pendulum",
                             "target=high_gravity", "steps=3000", "sysid.trajectory_length=2500", "sysid.horizon=2600",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "horizon=2600 is longer than trajectory_length=2500" in result.stderr and "measure_steps" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_script_rejects_a_dataset_of_another_env(tmp_path: Path, high_gravity_data: Trajectories) -> None:
    path = save_trajectories(high_gravity_data, tmp_path / "ip.npz")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate.py"), "env=hopper", f"dataset={path}",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "error: trajectories" in result.stderr and "do not fit env 'hopper'" in result.stderr
    assert not (tmp_path / "run" / CALIBRATION_FILE).exists()


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory, high_gravity_data: Trajectories) -> Path:
    out = tmp_path_factory.mktemp("calibration")
    calibrate(prepare_calibration(ENV_SPEC, SETTINGS, dataset=save_trajectories(high_gravity_data, out / "robot.npz")),
              out)
    return out


def test_calibration_json_rebuilds_the_randomization_the_calibration_gives(calibration_dir: Path) -> None:
    from sim2real.presets import load_preset
    from sim2real.randomization import DynamicsSpec
    from sim2real.sysid.report import calibration_randomization, read_calibration

    report = read_calibration(calibration_dir, env="inverted_pendulum")
    base = DynamicsSpec.from_dict(load_preset("randomization", "default"))
    rebuilt = calibration_randomization(report, base)
    low, high = report["parameters"]["gravity"]["calibrated_range"]
    assert low < 2.0 < high and high / low < 1.2  # narrow around the identified x2
    terms = {t.target: t for t in rebuilt.parameters}
    assert (terms["gravity"].distribution.low, terms["gravity"].distribution.high) == (low, high)
    assert set(terms) == {t.target for t in base.parameters} | {"gravity"}  # what was not identified stays the base's
    assert rebuilt.to_dict() == DynamicsSpec.from_dict(rebuilt.to_dict()).to_dict()
    with pytest.raises(ValueError, match="identifies env 'inverted_pendulum', not 'hopper'"):
        read_calibration(calibration_dir / CALIBRATION_FILE, env="hopper")


def run_train(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "env=inverted_pendulum", "algo=ppo",
                           "algo.hyperparams.n_steps=64", "algo.hyperparams.batch_size=64", "timesteps=64",
                           "eval_episodes=0", "checkpoint_every=0", "progress_bar=false", *overrides],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_train_script_trains_in_the_calibrated_simulator(tmp_path: Path, calibration_dir: Path) -> None:
    from sim2real.runs import load_metadata

    copy = tmp_path / "robot_calibration.json"
    shutil.copy(calibration_dir / CALIBRATION_FILE, copy)
    result = run_train(f"calibration={copy}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    report = json.loads(copy.read_text())
    first = load_metadata(tmp_path / "run")
    recorded = first["randomization"]
    assert recorded["name"] == "calibrated"
    gravity = recorded["parameters"]["gravity"]
    assert [gravity["low"], gravity["high"]] == report["parameters"]["gravity"]["calibrated_range"]
    assert recorded["parameters"]["masses"]["low"] == 0.8  # the default randomization covers the rest
    copy.unlink()  # the run's config holds the calibrated randomization itself: extending it needs no file
    extended = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), f"resume={tmp_path / 'run'}",
                               f"timesteps={2 * first['timesteps_done']}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert extended.returncode == 0, extended.stderr
    meta = load_metadata(tmp_path / "run")
    assert meta["timesteps_done"] == 2 * first["timesteps_done"] and meta["randomization"] == recorded


@pytest.mark.parametrize(("make", "message"), [
    (lambda cal, tmp: [f"calibration={tmp / 'none'}"], "no calibration.json there"),
    (lambda cal, tmp: [f"calibration={cal}", "env=hopper"], "identifies env 'inverted_pendulum', not 'hopper'"),
    (lambda cal, tmp: [f"calibration={cal / 'robot.json'}"], "is not a calibration (no parameters, latency)"),
    (lambda cal, tmp: [f"calibration={cal}", "randomization=adr"], "cannot be their base"),
])
def test_train_script_rejects_a_bad_calibration_before_training(tmp_path: Path, calibration_dir: Path, make: Any,
                                                                message: str) -> None:
    result = run_train(*make(calibration_dir, tmp_path), f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_script_continues_a_trained_run_in_the_calibrated_simulator(tmp_path: Path, calibration_dir: Path,
                                                                          script_source: Path) -> None:
    """init= with calibration=: the source continued under the calibrated ranges, with the source's robot (no env=
    given: the default robot is another), algorithm and settings, its steps counted from 0."""
    from sim2real.runs import load_metadata

    result = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), f"init={script_source}",
                             f"calibration={calibration_dir}", "timesteps=64", "eval_episodes=0", "progress_bar=false",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    source, run = load_metadata(script_source), load_metadata(tmp_path / "run")
    assert run["init"] == str(script_source) and run["env"] == source["env"]
    assert run["algo_config"] == source["algo_config"] and run["randomization"]["name"] == "calibrated"
    assert run["complete"] and run["timesteps_done"] == source["timesteps_done"]  # 64 steps: one rollout, from 0


@pytest.fixture(scope="module")
def script_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 64-step PPO run of scripts/train.py on InvertedPendulum."""
    folder = tmp_path_factory.mktemp("script_source") / "src"
    result = run_train(f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.parametrize(("make", "message"), [
    (lambda src, tmp: [f"init={tmp / 'none'}"], "run folder '{tmp}/none' does not exist"),
    (lambda src, tmp: [f"init={src}", "env=hopper"], "these overrides would change them: env=hopper"),
    (lambda src, tmp: [f"init={src}", "algo=sac"], "these overrides would change them: algo=sac"),
    (lambda src, tmp: [f"init={src}", "algo.hyperparams.learning_rate=0.1"],
     "these overrides would change them: algo.hyperparams.learning_rate"),
    (lambda src, tmp: [f"init={src}", "policy.history=2"], "these overrides would change them: policy.history"),
])
def test_train_script_rejects_a_bad_init_before_training(tmp_path: Path, script_source: Path, make: Any,
                                                        message: str) -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *make(script_source, tmp_path),
                             "timesteps=64", f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert message.format(tmp=tmp_path) in result.stderr
    assert not (tmp_path / "run").exists()
