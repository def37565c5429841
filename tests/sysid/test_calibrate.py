"""Identification alone (scripts/calibrate.py and its library function): from a dataset or fresh rollouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim2real.presets import target_spec
from sim2real.sysid.calibrate import calibrate, prepare_calibration
from sim2real.sysid.data import MeasurementSettings, Trajectories, save_trajectories
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
