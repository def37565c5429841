"""Parameter handles on compiled MuJoCo models."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sim2real.envs import ENVS, ParameterSet, make_base_env, resolve_env


def hopper_parameters() -> tuple[gym.Env, ParameterSet]:
    env = gym.make("Hopper-v5")
    return env, ParameterSet(env.unwrapped.model, env.unwrapped.data)


def test_hopper_handles_and_groups() -> None:
    _, params = hopper_parameters()
    for name in ("torso_mass", "foot_mass", "floor_friction", "foot_geom_friction", "thigh_joint_damping",
                 "foot_joint_armature", "thigh_joint_gain", "gravity"):
        assert name in params.names
    assert [params.names[i] for i in params.select("masses")] == ["torso_mass", "thigh_mass", "leg_mass", "foot_mass"]
    assert params.nominal[params.select("gravity")][0] == pytest.approx(-9.81)
    # free/root joints of the planar hopper are slide/hinge joints, so they get handles too
    assert len(params.select("dampings")) == 6


def test_unknown_parameter_lists_valid_names() -> None:
    _, params = hopper_parameters()
    with pytest.raises(ValueError, match="unknown parameter 'torso_mas'.*torso_mass"):
        params.select("torso_mas")


def test_apply_scales_inertia_with_mass_and_updates_derived_quantities() -> None:
    env, params = hopper_parameters()
    model = env.unwrapped.model
    inertia0 = model.body_inertia.copy()
    subtree0 = model.body_subtreemass.copy()
    values = params.nominal.copy()
    values[params.select("masses")] *= 1.5
    params.apply(values)
    np.testing.assert_allclose(model.body_inertia[1:], inertia0[1:] * 1.5)
    np.testing.assert_allclose(model.body_subtreemass, subtree0 * 1.5)
    params.restore()
    np.testing.assert_array_equal(model.body_inertia, inertia0)
    np.testing.assert_array_equal(params.current(), params.nominal)


def test_friction_scales_all_three_coefficients() -> None:
    env, params = hopper_parameters()
    model = env.unwrapped.model
    friction0 = model.geom_friction.copy()
    values = params.nominal.copy()
    values[params.select("frictions")] *= 0.5
    params.apply(values)
    np.testing.assert_allclose(model.geom_friction, friction0 * 0.5)


@pytest.mark.parametrize("name", ENVS.names())
def test_every_registered_env_has_handles(name: str) -> None:
    env = make_base_env(resolve_env(name))
    params = ParameterSet(env.unwrapped.model, env.unwrapped.data)
    for group in ("masses", "frictions", "gains", "gravity"):
        assert len(params.select(group)) >= 1, group
    assert len(set(params.names)) == len(params.names)
    env.close()


def test_check_values_rejects_nonpositive_mass() -> None:
    _, params = hopper_parameters()
    values = params.nominal.copy()
    values[params.select("torso_mass")] = 0.0
    with pytest.raises(ValueError, match="torso_mass"):
        params.check_values(values)
