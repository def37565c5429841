"""Privileged observation: the episode's randomized parameters, normalized over the randomization's range."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

from sim2real.envs.parameters import ParameterSet
from sim2real.envs.registry import resolve_env
from sim2real.randomization import DomainRandomization, DynamicsSpec, make_env
from sim2real.randomization.privileged import (
    PrivilegedObservation,
    find_randomization,
    privileged_bounds,
    privileged_names,
    privileged_sources,
    split_privileged,
)

WIDE = DynamicsSpec.from_dict({"parameters": {"masses": {"dist": "uniform", "low": 0.5, "high": 2.5},
                                              "gains": {"dist": "uniform", "low": 0.4, "high": 1.2}}})


def test_values_are_the_sample_mapped_onto_minus_one_one() -> None:
    env = DomainRandomization(gym.make("InvertedPendulum-v5"), WIDE)
    nominal = env.nominal_dict()
    assert env.privileged_names == ["cart_mass", "pole_mass", "slide_gain"]
    for seed in range(5):
        _, info = env.reset(seed=seed)
        dynamics = info["dynamics"]
        expected = [2 * (dynamics["cart_mass"] / nominal["cart_mass"] - 0.5) / 2.0 - 1,
                    2 * (dynamics["pole_mass"] / nominal["pole_mass"] - 0.5) / 2.0 - 1,
                    2 * (dynamics["slide_gain"] / nominal["slide_gain"] - 0.4) / 0.8 - 1]
        np.testing.assert_allclose(info["privileged"], expected, atol=1e-12)
        assert np.all(np.abs(info["privileged"]) <= 1.0)
    env.set_enabled(False)  # nominal robot: scale 1 sits at -0.5 of [0.5, 2.5] and +0.5 of [0.4, 1.2]
    np.testing.assert_allclose(env.privileged(), [-0.5, -0.5, 0.5], atol=1e-12)


def test_unbounded_distributions_use_three_std() -> None:
    spec = DynamicsSpec.from_dict({"parameters": {
        "masses": {"dist": "uniform", "low": 0.5, "high": 1.5},
        "gravity": {"dist": "normal", "mean": 1.0, "std": 0.1},
    }})
    env = DomainRandomization(gym.make("InvertedPendulum-v5"), spec)
    env.set_enabled(False)
    assert env.privileged_names == ["cart_mass", "pole_mass", "gravity"]
    np.testing.assert_allclose(env.privileged(), [0.0, 0.0, 0.0], atol=1e-12)   # nominal: the middle of every range
    env.values = env.values.copy()
    env.values[env.parameters.select("gravity")] *= 1.3    # mean + 3 std: the strongest gravity (most negative z)
    np.testing.assert_allclose(env.privileged()[2], -1.0, atol=1e-12)


def test_the_wrapper_appends_it_after_the_history() -> None:
    env = make_env(replace(resolve_env("inverted_pendulum"), history=2), randomization=WIDE, privileged=True)
    assert isinstance(env, PrivilegedObservation) and env.privileged_dim == 3
    obs, info = env.reset(seed=1)
    assert obs.shape == (2 * (4 + 1) + 3,)
    stacked, privileged = split_privileged(obs, 3)
    np.testing.assert_array_equal(privileged, info["privileged"])
    assert stacked.shape == (10,)
    obs, *_ = env.step(np.array([0.2]))
    np.testing.assert_array_equal(obs[-3:], info["privileged"])             # constant within the episode
    assert privileged_names(env) == ["cart_mass", "pole_mass", "slide_gain"]
    env.close()


def test_it_needs_a_randomization() -> None:
    with pytest.raises(ValueError, match="has neither"):
        make_env("inverted_pendulum", privileged=True)


def test_a_later_term_on_the_same_parameter_decides_its_range() -> None:
    spec = DynamicsSpec.from_dict({"parameters": {"masses": {"dist": "uniform", "low": 0.5, "high": 1.5},
                                                  "pole_mass": {"dist": "uniform", "low": 1.0, "high": 3.0}}})
    env = DomainRandomization(gym.make("InvertedPendulum-v5"), spec)
    env.set_enabled(False)
    np.testing.assert_allclose(env.privileged(), [0.0, -1.0], atol=1e-12)


def test_pinned_dynamics_hold_every_episode_on_the_randomization_scale() -> None:
    """A teacher is evaluated on a robot by pinning its dynamics: every reset writes them (kinds the
    randomization does not touch too), the privileged observation reports them on the randomization's scale,
    and unpinning restores the nominal model and sampling."""
    env = DomainRandomization(gym.make("InvertedPendulum-v5"), WIDE)
    nominal = env.nominal_dict()
    target = DynamicsSpec.from_dict({"parameters": {"masses": {"op": "scale", "dist": "constant", "value": 2.0},
                                                    "gains": {"op": "scale", "dist": "constant", "value": 0.5},
                                                    "gravity": {"op": "scale", "dist": "constant", "value": 1.5}}})
    pinned = env.pin(target)
    assert pinned["cart_mass"] == pytest.approx(2 * nominal["cart_mass"])
    for seed in range(3):
        _, info = env.reset(seed=seed)
        np.testing.assert_allclose(info["privileged"], [0.5, 0.5, -0.75], atol=1e-12)
        assert info["dynamics"]["slide_gain"] == pytest.approx(0.5 * nominal["slide_gain"])
        np.testing.assert_allclose(env.unwrapped.model.opt.gravity, 1.5 * np.array([0, 0, -9.81]), atol=1e-12)
    env.pin(None)
    np.testing.assert_allclose(env.unwrapped.model.opt.gravity, [0, 0, -9.81], atol=1e-12)
    _, info = env.reset(seed=0)
    assert info["dynamics"]["cart_mass"] != pytest.approx(2 * nominal["cart_mass"])
    with pytest.raises(ValueError):
        env.pin(DynamicsSpec.from_dict({"parameters": {"masses": {"op": "scale", "dist": "constant", "value": -1.0}}}))


def test_a_target_pins_onto_the_robot_when_the_model_already_holds_another() -> None:
    """A teacher trained on a target has that target written into its model; evaluating it on a target must
    scale the robot's own values (heavy: masses x1.5), not the teacher's target's (x1.5 again: x2.25)."""
    heavy = DynamicsSpec.from_dict({"parameters": {"masses": {"op": "scale", "dist": "constant", "value": 1.5}}})
    robot = gym.make("InvertedPendulum-v5")
    nominal = ParameterSet(robot.unwrapped.model, robot.unwrapped.data)
    env = make_env("inverted_pendulum", randomization=WIDE, target=heavy)
    randomization = find_randomization(env)
    assert randomization.pin(heavy)["cart_mass"] == pytest.approx(2.25 * nominal.as_dict(nominal.nominal)["cart_mass"])
    pinned = randomization.pin(heavy, nominal)
    assert pinned["cart_mass"] == pytest.approx(1.5 * nominal.as_dict(nominal.nominal)["cart_mass"])
    _, info = env.reset(seed=0)
    assert info["dynamics"]["cart_mass"] == pytest.approx(pinned["cart_mass"])
    other = ParameterSet(gym.make("Hopper-v5").unwrapped.model, gym.make("Hopper-v5").unwrapped.data)
    with pytest.raises(ValueError, match="another model"):
        randomization.pin(heavy, other)


def test_privileged_bounds_are_the_values_mapped_onto_minus_one_and_one() -> None:
    spec = replace(WIDE, effects=replace(WIDE.effects, action_latency=1, action_latency_max=3, obs_bias_std=0.1))
    env = make_env("inverted_pendulum", randomization=spec, privileged=True)
    bounds = privileged_bounds(env)
    assert list(bounds) == privileged_names(env)
    nominal = find_randomization(env).nominal_dict()
    assert bounds["cart_mass"] == pytest.approx((0.5 * nominal["cart_mass"], 2.5 * nominal["cart_mass"]))
    assert bounds["slide_gain"] == pytest.approx((0.4 * nominal["slide_gain"], 1.2 * nominal["slide_gain"]))
    assert bounds["action_latency"] == (1.0, 3.0) and bounds["obs_bias[3]"] == pytest.approx((-0.3, 0.3))
    for seed in range(3):  # each entry: (value - low) / (high - low) mapped onto [-1, 1]
        _, info = env.reset(seed=seed)
        value = info["dynamics"]["pole_mass"]
        low, high = bounds["pole_mass"]
        assert info["privileged"][1] == pytest.approx(2 * (value - low) / (high - low) - 1)


def test_per_episode_effects_join_the_privileged_observation() -> None:
    """A latency range and a sensor bias are drawn per episode: the privileged observation reports them
    after the parameters (latency mapped onto [-1, 1], the bias in units of 3 std); fixed effects are not in it."""
    spec = DynamicsSpec.from_dict({"parameters": {"masses": {"dist": "uniform", "low": 0.5, "high": 2.5}},
                                   "effects": {"action_latency": 0, "action_latency_max": 2, "obs_bias_std": 0.1}})
    env = make_env("inverted_pendulum", randomization=spec, privileged=True)
    assert privileged_names(env.env) == ["cart_mass", "pole_mass", "action_latency"] + [f"obs_bias[{i}]" for i in range(4)]
    seen = set()
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        latency = info["action_latency"]
        seen.add(latency)
        assert obs[6] == pytest.approx(latency - 1.0)  # 0, 1, 2 -> -1, 0, 1
        bias = obs[7:] * 0.3
        raw = env.unwrapped._get_obs()
        np.testing.assert_allclose(obs[:4], raw + bias, atol=1e-12)  # the reported bias is the one added
        np.testing.assert_allclose(env.step(np.zeros(1))[0][7:], obs[7:])  # constant within the episode
    assert seen == {0, 1, 2}
    fixed = DynamicsSpec.from_dict({"parameters": {}, "effects": {"action_latency": 2}})
    assert not fixed.effects.per_episode
    with pytest.raises(ValueError, match="neither"):
        make_env("inverted_pendulum", randomization=fixed, privileged=True)


def test_privileged_noise_is_one_offset_per_episode() -> None:
    """A teacher trained on rough values: the offset holds through an episode, changes at reset, and
    the values beneath it are the exact ones."""
    env = make_env("inverted_pendulum", randomization=WIDE, privileged=True, privileged_noise=0.3)
    exact = find_randomization(env)
    offsets = []
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        offset = obs[4:] - exact.privileged()
        step_obs = env.step(np.zeros(1))[0]
        np.testing.assert_allclose(step_obs[4:] - exact.privileged(), offset, atol=1e-12)
        offsets.append(offset)
    offsets = np.array(offsets)
    assert 0.2 < offsets.std() < 0.4 and abs(offsets.mean()) < 0.1
    clean = make_env("inverted_pendulum", randomization=WIDE, privileged=True)
    obs, _ = clean.reset(seed=0)
    np.testing.assert_array_equal(obs[4:], find_randomization(clean).privileged())
    with pytest.raises(ValueError, match="noise_std"):
        make_env("inverted_pendulum", randomization=WIDE, privileged=True, privileged_noise=-0.1)


def test_neutral_effects_hold_their_neutral_value_on_the_same_scale() -> None:
    """How a teacher trained with per-episode effects is evaluated on a robot without them."""
    spec = DynamicsSpec.from_dict({"parameters": {}, "effects": {"action_latency": 0, "action_latency_max": 2,
                                                                 "obs_bias_std": 0.1, "motor_strength": [0.5, 1.5]}})
    env = make_env("inverted_pendulum", randomization=spec, privileged=True)
    for source in privileged_sources(env):
        source.neutral = True
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert info["action_latency"] == 0 and info["motor_strength"] == 1.0
        np.testing.assert_allclose(obs[4:], [0.0, -1.0, 0.0, 0.0, 0.0, 0.0])  # strength 1 of [0.5, 1.5]; latency 0 of [0, 2]
        np.testing.assert_allclose(obs[:4], env.unwrapped._get_obs())  # no bias
