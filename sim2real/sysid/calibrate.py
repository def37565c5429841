"""Identification alone, into an output folder: from a dataset file (e.g. a real robot's logs) or from fresh
rollouts on a named simulated target. What ``scripts/calibrate.py`` calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sim2real.envs.registry import EnvSpec
from sim2real.policies import Policy, read_run_info
from sim2real.randomization.factory import make_env, validate_dynamics
from sim2real.randomization.spec import DynamicsSpec
from sim2real.sysid.data import (
    TRAJECTORIES_FILE,
    MeasurementSettings,
    Trajectories,
    env_record,
    load_trajectories,
    measure,
    save_trajectories,
)
from sim2real.sysid.identify import Calibration, IdentifySettings, check_horizon, check_priors, identify
from sim2real.sysid.report import write_calibration


@dataclass(frozen=True)
class CalibrationInputs:
    """Where the data comes from: a dataset, or fresh rollouts on ``target``.

    Attributes:
        env: The simulator to calibrate.
        settings: What to identify.
        dataset: Recorded trajectories (from a file) ...
        measurement: ... or how to record fresh ones on ``target`` (give exactly one).
        target: The simulated system measured (fresh rollouts); its true values are reported beside the fit.
        policy: Run folder of the policy that excites the system (``measurement.excitation='policy'``).
    """

    env: EnvSpec
    settings: IdentifySettings
    dataset: Trajectories | None = None
    measurement: MeasurementSettings | None = None
    target: DynamicsSpec | None = None
    policy: Path | None = None


def prepare_calibration(env: EnvSpec, settings: IdentifySettings, *, dataset: str | Path | None = None,
                        measurement: MeasurementSettings | None = None, target: DynamicsSpec | None = None,
                        policy: str | Path | None = None) -> CalibrationInputs:
    """Checks everything before any work: the parameters against the env, the dataset's env (``dataset``: a
    file, or a folder holding ``trajectories.npz``, as a calibration or sysid run does), the target,
    the policy's env, that a trajectory can hold a replay window, and that exactly one data source is given.

    Raises:
        ValueError: naming the bad value and the valid choices.
    """
    if (dataset is None) == (measurement is None):
        raise ValueError("give exactly one of dataset=FILE (recorded trajectories, or a run folder holding them) and "
                         "steps=N (fresh rollouts)")
    check_priors(env, settings.priors)
    if dataset is not None:
        folder = Path(dataset)
        if folder.is_dir():  # a calibration or sysid run folder: the trajectories it measured
            dataset = folder / TRAJECTORIES_FILE
            if not dataset.is_file():
                raise ValueError(f"dataset={folder} is a folder without {TRAJECTORIES_FILE}: give a trajectories file, "
                                 f"or the folder of a sysid transfer run or of a calibration (they keep their data)")
        data = load_trajectories(dataset, env)
        check_horizon(settings.horizon, data.longest_episode, f"the longest trajectory in '{dataset}'")
        return CalibrationInputs(env, settings, dataset=data)
    assert measurement is not None
    check_horizon(settings.horizon, measurement.trajectory_length, "trajectory_length")
    validate_dynamics(env, target)
    wants_policy = measurement.excitation == "policy"
    if wants_policy != (policy is not None):
        raise ValueError("excitation 'policy' needs a policy run folder (source=RUN_DIR), and a policy needs "
                         f"excitation 'policy' (got excitation={measurement.excitation!r}, policy={policy!r})")
    if policy is not None:
        info = read_run_info(policy)
        if info.env.name != env.name:
            raise ValueError(f"policy run '{policy}' is for env '{info.env.name}', not '{env.name}'")
    return CalibrationInputs(env, settings, measurement=measurement, target=target,
                             policy=Path(policy) if policy is not None else None)


def calibrate(inputs: CalibrationInputs, out_dir: str | Path, seed: int = 0) -> Calibration:
    """Records (fresh rollouts) or uses the dataset, identifies, and writes ``calibration.json``,
    ``calibration.png`` and the data identified from, ``trajectories.npz`` (+ sidecar), into ``out_dir``: a
    calibration keeps its data, also when it replaces (``overwrite``) the folder its dataset came from."""
    out_dir = Path(out_dir)
    data = inputs.dataset
    if data is None:
        assert inputs.measurement is not None
        policy = Policy.load(inputs.policy) if inputs.policy is not None else None
        env = make_env(inputs.env, target=inputs.target)
        try:
            data = measure(env, inputs.measurement, seed=seed, policy=policy.act if policy else None,
                           info={"env": env_record(inputs.env), "target": (inputs.target or DynamicsSpec()).to_dict(),
                                 "policy": str(inputs.policy) if inputs.policy else None})
        finally:
            env.close()
    save_trajectories(data, out_dir / TRAJECTORIES_FILE)
    calibration = identify(inputs.env, data, inputs.settings, truth=inputs.target)
    write_calibration(calibration.to_dict(), out_dir)
    return calibration
