"""The history wrapper's contract: order, zero padding at the episode start, reset; built from the env record."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from sim2real.envs.registry import env_spec_from_record, resolve_env
from sim2real.randomization import DynamicsSpec, make_env
from sim2real.randomization.history import (
    HistoryLayout,
    HistoryObservation,
    current_observation,
    history_layout,
)


class CountingEnv(gym.Env):
    """Observation ``[t, 10 t]``, ``t`` counting the episode's observations from 1; episodes of 6."""

    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self) -> None:
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 1
        return self._obs(), {}

    def step(self, action: Any):
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 6, {}

    def _obs(self) -> np.ndarray:
        return np.array([self.t, 10.0 * self.t])


def unpack(stacked: np.ndarray, layout: HistoryLayout) -> tuple[np.ndarray, np.ndarray]:
    obs = stacked[:layout.obs_part].reshape(layout.steps, layout.obs_dim)
    actions = stacked[layout.obs_part:].reshape(layout.steps, layout.action_dim)
    return obs, actions


def test_newest_first_and_zero_padding_at_episode_start() -> None:
    env = HistoryObservation(CountingEnv(), steps=3)
    stacked, _ = env.reset(seed=0)
    obs, actions = unpack(stacked, env.layout)
    np.testing.assert_array_equal(obs, [[1, 10], [0, 0], [0, 0]])
    np.testing.assert_array_equal(actions, np.zeros((3, 1)))
    stacked, *_ = env.step(np.array([0.5], np.float32))
    obs, actions = unpack(stacked, env.layout)
    np.testing.assert_array_equal(obs, [[2, 20], [1, 10], [0, 0]])
    np.testing.assert_array_equal(actions[:, 0], [0.5, 0, 0])
    for a in (-0.25, 0.75, 1.0):
        stacked, *_ = env.step(np.array([a], np.float32))
    obs, actions = unpack(stacked, env.layout)
    np.testing.assert_array_equal(obs, [[5, 50], [4, 40], [3, 30]])   # full: the oldest fell out
    np.testing.assert_array_equal(actions[:, 0], [1.0, 0.75, -0.25])


def test_reset_clears_the_history() -> None:
    env = HistoryObservation(CountingEnv(), steps=2)
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.array([0.9], np.float32))
    stacked, _ = env.reset(seed=1)
    obs, actions = unpack(stacked, env.layout)
    np.testing.assert_array_equal(obs, [[1, 10], [0, 0]])
    assert not actions.any()


def test_returned_observations_are_copies() -> None:
    env = HistoryObservation(CountingEnv(), steps=2)
    first, _ = env.reset(seed=0)
    kept = first.copy()
    env.step(np.array([0.3], np.float32))
    np.testing.assert_array_equal(first, kept)


def test_layout_and_space() -> None:
    env = HistoryObservation(gym.make("InvertedPendulum-v5"), steps=4)
    layout = env.layout
    assert (layout.stacked_dim, layout.state_dim, layout.obs_part) == (20, 16, 16)
    assert env.observation_space.shape == (20,)
    assert layout.entries()[:2] == ["obs[t]", "obs[t-1]"] and layout.entries()[-1] == "action[t-4]"
    assert layout.to_dict()["state_layout"] == layout.entries()[1:]
    stacked, _ = env.reset(seed=0)
    assert env.observation_space.contains(stacked)
    np.testing.assert_array_equal(current_observation(stacked, layout), env.unwrapped._get_obs())


def test_steps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="history steps=0 must be an integer >= 1"):
        HistoryObservation(CountingEnv(), steps=0)


def test_passes_check_env() -> None:
    env = make_env(replace(resolve_env("hopper"), history=3),
                   randomization=DynamicsSpec.from_dict({"parameters": {"masses": {"low": 0.8, "high": 1.2}},
                                                         "effects": {"action_latency": 0, "action_latency_max": 2}}))
    check_env(env, skip_render_check=True)
    env.close()


def test_make_env_builds_it_outermost_from_the_env_record() -> None:
    spec = replace(resolve_env("inverted_pendulum"), history=2)
    assert env_spec_from_record(spec.to_record()) == spec
    env = make_env(env_spec_from_record(spec.to_record()), target=DynamicsSpec.from_dict({"effects": {"action_latency": 2}}))
    assert isinstance(env, HistoryObservation) and history_layout(env) == HistoryLayout(2, 4, 1)
    assert history_layout(make_env("inverted_pendulum")) is None
    stacked, _ = env.reset(seed=3)
    stacked, *_ = env.step(np.array([0.7]))
    assert stacked[-2] == pytest.approx(0.7)    # the action the policy sent, not the delayed one applied
    env.close()


def test_history_is_validated_in_the_env_record() -> None:
    with pytest.raises(ValueError, match="history=-1 must be an integer >= 0"):
        replace(resolve_env("hopper"), history=-1)


def test_a_shorter_history_is_cut_from_a_longer_one() -> None:
    long_env, short_env = HistoryObservation(CountingEnv(), steps=3), HistoryObservation(CountingEnv(), steps=2)
    long_obs, _ = long_env.reset(seed=0)
    short_obs, _ = short_env.reset(seed=0)
    for action in (0.1, -0.4, 0.8):
        np.testing.assert_array_equal(long_env.layout.shorter(long_obs, 2), short_obs)
        np.testing.assert_array_equal(long_env.layout.shorter(long_obs, 0), long_obs[:2])
        long_obs, *_ = long_env.step(np.array([action], np.float32))
        short_obs, *_ = short_env.step(np.array([action], np.float32))
    np.testing.assert_array_equal(long_env.layout.shorter(long_obs[None], 3), long_obs[None])
