"""Unmodeled-effect wrappers, each on its own, on small MuJoCo envs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from sim2real.randomization import (
    ActionLatency,
    ActionNoise,
    ActuatorFailure,
    MotorStrength,
    ObservationNoise,
    RandomPushes,
)


class RecordActions(gym.Wrapper):
    """Records the actions that reach the inner env."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seen: list[np.ndarray] = []

    def step(self, action: Any):
        self.seen.append(np.array(action, copy=True))
        return self.env.step(action)


def base(env_id: str = "Hopper-v5") -> RecordActions:
    return RecordActions(gym.make(env_id))


@pytest.mark.parametrize("k", [0, 1, 3])
def test_latency_delays_actions_by_k_steps(k: int) -> None:
    inner = base()
    env = ActionLatency(inner, k)
    env.reset(seed=0)
    actions = [np.full(3, 0.1 * (i + 1), dtype=np.float32) for i in range(6)]
    for a in actions:
        env.step(a)
    for i in range(k):
        np.testing.assert_array_equal(inner.seen[i], np.zeros(3))
    for i in range(k, 6):
        np.testing.assert_array_equal(inner.seen[i], actions[i - k])


def test_random_latency_drawn_in_range() -> None:
    env = ActionLatency(base(), 1, 3)
    delays = {env.reset(seed=s)[1]["action_latency"] for s in range(40)}
    assert delays == {1, 2, 3}


@pytest.mark.parametrize("bad", [1.5, -1, "2"])
def test_latency_rejects_non_integers(bad: Any) -> None:
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        ActionLatency(base(), bad)


def test_observation_noise_and_bias() -> None:
    clean = gym.make("InvertedPendulum-v5")
    noisy = ObservationNoise(gym.make("InvertedPendulum-v5"), std=0.0, bias_std=0.5)
    ref, _ = clean.reset(seed=1)
    obs, _ = noisy.reset(seed=1)
    bias = obs - ref
    assert np.abs(bias).max() > 1e-3
    ref2, *_ = clean.step(np.zeros(1))
    obs2, *_ = noisy.step(np.zeros(1))
    np.testing.assert_allclose(obs2 - ref2, bias, atol=1e-6)  # the bias is constant within an episode
    per_step = ObservationNoise(gym.make("InvertedPendulum-v5"), std=0.1)
    per_step.reset(seed=1)
    clean.reset(seed=1)
    samples = np.array([per_step.step(np.zeros(1))[0] - clean.step(np.zeros(1))[0] for _ in range(25)])
    assert samples.std() == pytest.approx(0.1, rel=0.25)


def test_action_noise_stays_in_bounds() -> None:
    inner = base()
    env = ActionNoise(inner, std=2.0)
    env.reset(seed=0)
    for _ in range(50):
        env.step(np.ones(3, dtype=np.float32))
    seen = np.array(inner.seen)
    assert seen.min() >= -1 and seen.max() <= 1
    assert seen.std() > 0.1


def test_motor_strength_scales_actions_per_episode() -> None:
    inner = base()
    env = MotorStrength(inner, 0.5, 0.9)
    _, info = env.reset(seed=0)
    env.step(np.full(3, 0.5, dtype=np.float32))
    np.testing.assert_allclose(inner.seen[-1], 0.5 * info["motor_strength"], rtol=1e-6)
    assert 0.5 <= info["motor_strength"] <= 0.9


def test_actuator_failure_zeroes_commands() -> None:
    inner = base()
    env = ActuatorFailure(inner, (1,))
    env.reset(seed=0)
    env.step(np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(inner.seen[-1], [1, 0, 1])
    with pytest.raises(ValueError, match="out of range"):
        ActuatorFailure(base(), (3,))


def test_pushes_move_the_robot() -> None:
    still = gym.make("InvertedPendulum-v5")
    pushed = RandomPushes(gym.make("InvertedPendulum-v5"), probability=1.0, force=200.0, duration=3)
    a, _ = still.reset(seed=0)
    b, _ = pushed.reset(seed=0)
    np.testing.assert_array_equal(a, b)
    for _ in range(5):
        a, *_ = still.step(np.zeros(1))
        b, *_ = pushed.step(np.zeros(1))
    assert pushed.pushes >= 1
    assert np.abs(a - b).max() > 1e-3
    with pytest.raises(ValueError, match="unknown push body 'nose'"):
        RandomPushes(gym.make("InvertedPendulum-v5"), 0.1, 1.0, body="nose")
