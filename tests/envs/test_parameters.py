"""Parameter handles on compiled MuJoCo models."""

from __future__ import annotations

import functools
from pathlib import Path

import gymnasium as gym
import mujoco
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
        # a length write also scales its body's mass (the mass kind it composes with): that kind reads back changed
        read_back = params.kinds != kind.composes_with
        np.testing.assert_allclose(params.current()[read_back], values[read_back], rtol=1e-12, err_msg=name)
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


def _recompiled(env_id: str, *edits: tuple[str, str]):
    """The env's own MJCF with text edits, compiled by MuJoCo: the reference a runtime write must match."""
    xml = Path(gym.make(env_id).unwrapped.fullpath).read_text()
    for old, new in edits:
        assert old in xml, old
        xml = xml.replace(old, new)
    return mujoco.MjModel.from_xml_string(xml)


_MORPHOLOGY_FIELDS = ("geom_size", "geom_pos", "geom_rbound", "geom_aabb", "body_pos", "body_ipos", "body_iquat",
                      "body_mass", "body_inertia", "body_subtreemass", "site_pos", "dof_invweight0")


@pytest.mark.parametrize(("env_id", "handle", "scale", "edits"), [
    ("InvertedDoublePendulum-v5", "cpole_length", 2.0,
     [('fromto="0 0 0 0 0 0.6" name="cpole" ', 'fromto="0 0 0 0 0 1.2" name="cpole" '),
      ('<body name="pole2" pos="0 0 0.6">', '<body name="pole2" pos="0 0 1.2">')]),
    ("InvertedDoublePendulum-v5", "cpole2_length", 0.5,   # the tip site moves with the pole's end
     [('fromto="0 0 0 0 0 0.6" name="cpole2" ', 'fromto="0 0 0 0 0 0.3" name="cpole2" '),
      ('<site name="tip" pos="0 0 .6"', '<site name="tip" pos="0 0 .3"')]),
    ("Hopper-v5", "thigh_geom_length", 0.5,   # a thigh half as long: the leg hangs from its new end
     [('pos="0 0 -0.22500000000000009" name="thigh_geom" size="0.05 0.22500000000000003"',
       'pos="0 0 -0.11250000000000004" name="thigh_geom" size="0.05 0.11250000000000002"'),
      ('<body name="leg" pos="0 0 -0.70000000000000007">', '<body name="leg" pos="0 0 -0.475">')]),
])
def test_geom_length_matches_the_recompiled_model(env_id: str, handle: str, scale: float, edits) -> None:
    env = gym.make(env_id)
    model = env.unwrapped.model
    params = ParameterSet(model, env.unwrapped.data)
    values = params.nominal.copy()
    values[params.select(handle)] *= scale
    params.apply(values, frozenset({"length"}))
    reference = _recompiled(env_id, *edits)
    for field in _MORPHOLOGY_FIELDS:
        np.testing.assert_allclose(getattr(model, field), getattr(reference, field), atol=1e-12, err_msg=field)


def test_geom_length_composes_with_mass_without_compounding() -> None:
    env, params = hopper_parameters()
    model = env.unwrapped.model
    assert [params.names[i] for i in params.select("lengths")] == ["torso_geom_length", "thigh_geom_length",
                                                                   "leg_geom_length", "foot_geom_length"]
    thigh = model.body("thigh").id
    mass0, inertia0 = model.body_mass[thigh], model.body_inertia[thigh].copy()
    values = params.nominal.copy()
    values[params.select("thigh_geom_length")] *= 2.0
    params.apply(values, frozenset({"length"}))
    doubled = model.body_mass[thigh]
    radius, length = model.geom("thigh_geom").size[0], 0.45  # constant density; the caps do not grow
    assert doubled == pytest.approx(mass0 * (2 * length + 4 * radius / 3) / (length + 4 * radius / 3), rel=1e-12)
    values[params.select("thigh_mass")] *= 1.5
    for kinds in ({"mass"}, {"length"}, {"mass"}, None):  # repeated writes of either kind: the same model
        params.apply(values, None if kinds is None else frozenset(kinds))
        assert model.body_mass[thigh] == pytest.approx(1.5 * doubled, rel=1e-12)
    assert np.all(model.body_inertia[thigh] > 1.5 * inertia0)
    params.restore()
    assert model.body_mass[thigh] == mass0
    np.testing.assert_array_equal(params.current(), params.nominal)


_ARM = """<mujoco><worldbody><body name="upper"><joint name="shoulder" type="hinge" axis="0 1 0"/>
  <geom name="bone" type="{type}" fromto="0 0 0 {tip} 0 0" size="0.05"/>
  <body name="lower" pos="{tip} 0 0"><joint name="elbow" type="hinge" axis="0 1 0"/>
    <geom name="forearm" type="capsule" fromto="0 0 0 0.3 0 0" size="0.04"/><site name="hand" pos="0.3 0 0"/>
  </body></body></worldbody></mujoco>"""


@pytest.mark.parametrize("geom_type", ["capsule", "cylinder"])
def test_geom_length_of_a_horizontal_limb_matches_the_compiler(geom_type: str) -> None:
    model = mujoco.MjModel.from_xml_string(_ARM.format(type=geom_type, tip=0.4))
    params = ParameterSet(model, mujoco.MjData(model))
    assert [params.names[i] for i in params.select("lengths")] == ["bone_length", "forearm_length"]
    values = params.nominal.copy()
    values[params.select("bone_length")] *= 1.5
    params.apply(values, frozenset({"length"}))
    reference = mujoco.MjModel.from_xml_string(_ARM.format(type=geom_type, tip=0.6))
    for field in _MORPHOLOGY_FIELDS:
        np.testing.assert_allclose(getattr(model, field), getattr(reference, field), atol=1e-12, err_msg=field)
