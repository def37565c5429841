"""The reset-time randomization wrapper: seeded, bounded, from the nominal, restorable."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sim2real.randomization import DomainRandomization, DynamicsSpec, make_env

DR = DynamicsSpec.from_dict({
    "name": "test",
    "parameters": {
        "masses": {"dist": "uniform", "low": 0.8, "high": 1.2},
        "frictions": {"dist": "log_uniform", "low": 0.5, "high": 2.0},
        "dampings": {"op": "add", "dist": "uniform", "low": 0.0, "high": 0.5},
        "gains": {"dist": "truncated_normal", "mean": 1.0, "std": 0.2, "low": 0.7, "high": 1.3},
        "gravity": {"dist": "uniform", "low": 0.9, "high": 1.1, "shared": True},
    },
})


def make(spec: DynamicsSpec = DR, env_id: str = "Hopper-v5") -> DomainRandomization:
    return DomainRandomization(gym.make(env_id), spec, env_name=env_id)


def test_same_seed_same_dynamics_and_state() -> None:
    a, b = make(), make()
    obs_a, info_a = a.reset(seed=7)
    obs_b, info_b = b.reset(seed=7)
    assert info_a["dynamics"] == info_b["dynamics"]
    np.testing.assert_array_equal(obs_a, obs_b)
    # later unseeded resets continue the same stream
    assert a.reset()[1]["dynamics"] == b.reset()[1]["dynamics"]


def test_different_seeds_differ() -> None:
    a, b = make(), make()
    assert a.reset(seed=1)[1]["dynamics"] != b.reset(seed=2)[1]["dynamics"]


def test_samples_stay_in_bounds_and_are_written_to_the_model() -> None:
    env = make()
    params = env.parameters
    nominal = params.nominal
    masses, frictions = params.select("masses"), params.select("frictions")
    gains, damping = params.select("gains"), params.select("dampings")
    for seed in range(200):
        _, info = env.reset(seed=seed)
        values = np.array(list(info["dynamics"].values()))
        ratio = values / np.where(nominal == 0, 1, nominal)
        assert np.all((ratio[masses] >= 0.8) & (ratio[masses] <= 1.2))
        assert np.all((ratio[frictions] >= 0.5) & (ratio[frictions] <= 2.0))
        assert np.all((ratio[gains] >= 0.7) & (ratio[gains] <= 1.3))
        assert np.all((values[damping] - nominal[damping] >= 0) & (values[damping] - nominal[damping] <= 0.5))
        np.testing.assert_array_equal(params.current(), values)


def test_group_shared_sample_is_one_value() -> None:
    spec = DynamicsSpec.from_dict({"parameters": {"masses": {"dist": "uniform", "low": 0.5, "high": 1.5, "shared": True}}})
    env = make(spec)
    _, info = env.reset(seed=0)
    idx = env.parameters.select("masses")
    ratios = np.array(list(info["dynamics"].values()))[idx] / env.parameters.nominal[idx]
    np.testing.assert_allclose(ratios, ratios[0])


def test_no_compounding_after_1000_resets() -> None:
    spec = DynamicsSpec.from_dict({"parameters": {"masses": {"op": "scale", "value": 1.5},
                                                  "frictions": {"op": "add", "value": 0.1}}})
    env = make(spec)
    model = env.unwrapped.model
    env.reset(seed=0)
    first_mass, first_inertia, first_friction = model.body_mass.copy(), model.body_inertia.copy(), model.geom_friction.copy()
    for _ in range(1000):
        env.reset()
    np.testing.assert_array_equal(model.body_mass, first_mass)
    np.testing.assert_array_equal(model.body_inertia, first_inertia)
    np.testing.assert_array_equal(model.geom_friction, first_friction)
    idx = env.parameters.select("masses")
    np.testing.assert_allclose(model.body_mass[1:], env.parameters.nominal[idx] * 1.5)


def test_turning_off_restores_nominal_exactly() -> None:
    env = make()
    model = env.unwrapped.model
    fields = ("body_mass", "body_inertia", "geom_friction", "dof_damping", "dof_armature", "actuator_gainprm",
              "actuator_biasprm", "body_subtreemass", "dof_invweight0", "actuator_acc0")
    before = {f: getattr(model, f).copy() for f in fields}
    gravity = model.opt.gravity.copy()
    for seed in range(5):
        env.reset(seed=seed)
    assert not np.array_equal(model.body_mass, before["body_mass"])
    env.set_enabled(False)
    for f in fields:
        np.testing.assert_array_equal(getattr(model, f), before[f], err_msg=f)
    np.testing.assert_array_equal(model.opt.gravity, gravity)
    _, info = env.reset(seed=3)
    assert info["dynamics"] == env.nominal_dict()


def test_first_observation_after_randomized_reset_is_a_normal_start() -> None:
    env = make()
    raw = gym.make("Hopper-v5")
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        ref, _ = raw.reset(seed=seed)
        # same initial-state distribution: the hopper starts upright at z ~ 1.25, not collapsed at 0
        assert obs[0] == pytest.approx(ref[0], abs=0.02)
        _, _, terminated, _, _ = env.step(np.zeros(3))
        assert not terminated


def test_dynamics_reported_at_episode_end() -> None:
    env = make(env_id="InvertedPendulum-v5")
    _, reset_info = env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated or truncated
    assert info["dynamics"] == reset_info["dynamics"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"torso_mas": {"value": 1.0}}, "unknown parameter 'torso_mas'.*torso_mass"),
        ({"masses": {"dist": "uniform", "low": -0.5, "high": 1.2}}, "can set '.*_mass' to .*a mass must be > 0"),
        ({"frictions": {"op": "absolute", "value": 0.0}}, "a friction must be > 0"),
        ({"gains": {"dist": "normal", "mean": 1.0, "std": 0.1}}, "a gain must be > 0.*truncated_normal"),
        ({"masses": {"dist": "uniform", "low": 1.2, "high": 0.8}}, "low=1.2 > high=0.8"),
        ({"masses": {"dist": "gaussian", "mean": 1.0, "std": 0.1}}, "unknown distribution 'gaussian'"),
        ({"masses": {"op": "multiply", "value": 1.0}}, "unknown operation 'multiply'; known: absolute, scale, add"),
        ({"masses": {"value": "heavy"}}, "must be a number"),
    ],
)
def test_bad_specs_rejected_with_valid_choices(parameters: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_env("hopper", randomization=DynamicsSpec.from_dict({"parameters": parameters}))


@pytest.mark.parametrize(
    ("effects", "message"),
    [
        ({"action_latency": 1.5}, "action_latency=1.5 must be an integer"),
        ({"action_latency": -1}, "action_latency=-1 must be an integer >= 0"),
        ({"latency": 2}, "unknown effects \\['latency'\\]"),
        ({"obs_noise_std": -0.1}, "obs_noise_std=-0.1 must be a number >= 0"),
    ],
)
def test_bad_effects_rejected(effects: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DynamicsSpec.from_dict({"effects": effects})


def test_disabled_actuator_out_of_range_rejected() -> None:
    with pytest.raises(ValueError, match="disabled actuators \\[5\\] out of range"):
        make_env("inverted_pendulum", target=DynamicsSpec.from_dict({"effects": {"disabled_actuators": [5]}}))


def test_spec_round_trips_through_dict() -> None:
    assert DynamicsSpec.from_dict(DR.to_dict()) == DR
