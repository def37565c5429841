"""Parameter handles on compiled MuJoCo models."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest

from sim2real.envs import ENVS, GROUPS, KINDS, ParameterSet, make_base_env, resolve_env
from sim2real.envs.parameters import PARAMETER_KINDS
from sim2real.randomization import DynamicsSpec


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


def _fields(model, kinds) -> dict[str, np.ndarray]:
    return {f: functools.reduce(getattr, f.split("."), model).copy() for kind in kinds for f in kind.fields}


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Ant-v5", "InvertedPendulum-v5"])
def test_each_kind_writes_only_its_declared_fields_and_restores_bit_for_bit(env_id: str) -> None:
    env = gym.make(env_id)
    model = env.unwrapped.model
    params = ParameterSet(model, env.unwrapped.data)
    nominal_fields = _fields(model, PARAMETER_KINDS.values())
    for name, kind in PARAMETER_KINDS.items():
        values = params.nominal.copy()
        values[params.kinds == name] *= 1.3
        params.apply(values, frozenset({name}))
        np.testing.assert_allclose(params.current(), values, rtol=1e-12, err_msg=name)
        changed = {f for f, v in _fields(model, PARAMETER_KINDS.values()).items() if not np.array_equal(v, nominal_fields[f])}
        assert changed <= set(kind.fields), (name, changed)
        params.restore()
    params.apply(params.nominal)  # the nominal vector writes the nominal model back exactly, kind by kind
    for f, value in _fields(model, PARAMETER_KINDS.values()).items():
        np.testing.assert_array_equal(value, nominal_fields[f], err_msg=f)


def test_joint_range_scales_about_the_centre_and_validates() -> None:
    env, params = hopper_parameters()
    model = env.unwrapped.model
    thigh = model.joint("thigh_joint").id
    low, high = model.jnt_range[thigh].copy()
    assert params.nominal[params.select("thigh_joint_range")][0] == high - low
    assert "rootz_range" not in params.names  # unlimited joints have no range handle
    values = params.nominal.copy()
    values[params.select("ranges")] *= 2.0
    params.apply(values, frozenset({"range"}))
    np.testing.assert_allclose(model.jnt_range[thigh], [low - (high - low) / 2, high + (high - low) / 2])
    params.restore()
    np.testing.assert_array_equal(model.jnt_range[thigh], [low, high])
    with pytest.raises(ValueError, match="can set 'thigh_joint_range' to -2.38.*a range must be > 0"):
        DynamicsSpec.from_dict({"name": "hop", "parameters": {"ranges": {"op": "add", "value": -5.0}}}).validate(params)


def test_bounds_and_rules_come_from_the_kind_table() -> None:
    _, params = hopper_parameters()
    idx = params.select("gravity")
    assert not params.below_bounds(idx, np.array([-1e9])).any()
    assert params.below_bounds(params.select("dampings")[:2], np.array([-0.1, 0.0])).tolist() == [True, False]
    assert params.rule(int(params.select("torso_mass")[0])) == "a mass must be > 0"
    assert set(KINDS) == set(params.kinds) and GROUPS["ranges"] == "range"
