"""Recorded trajectories on InvertedPendulum targets, shared by the system-identification tests."""

from __future__ import annotations

import pytest

from sim2real.envs.registry import resolve_env
from sim2real.presets import target_spec
from sim2real.randomization import make_env
from sim2real.sysid.data import MeasurementSettings, Trajectories, env_record, measure

ENV = "inverted_pendulum"
ENV_SPEC = resolve_env(ENV)


def record(target: str, steps: int = 1000, seed: int = 0, excitation: str = "random") -> Trajectories:
    """``steps`` steps of random (or chirp) actions on ``target``, as the encoders see them."""
    env = make_env(ENV, target=target_spec(target))
    try:
        return measure(env, MeasurementSettings(excitation, 0.5, steps, trajectory_length=100), seed=seed,
                       info={"env": env_record(ENV_SPEC), "target": target_spec(target).to_dict()})
    finally:
        env.close()


@pytest.fixture(scope="package")
def high_gravity_data() -> Trajectories:
    return record("high_gravity")


@pytest.fixture(scope="package")
def nominal_data() -> Trajectories:
    return record("nominal", steps=400)
