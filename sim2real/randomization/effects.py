"""Unmodeled effects as composable Gymnasium wrappers: one wrapper, one job.

Randomness comes only from ``self.np_random`` (the env's seeded generator).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from sim2real.randomization.spec import EffectsSpec
from sim2real.validation import require_int


class ObservationNoise(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Adds Gaussian noise per step and a Gaussian bias drawn per episode to observations.

    Example:
        >>> env = ObservationNoise(gym.make("InvertedPendulum-v5"), std=0.01, bias_std=0.0)
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape
        (4,)
    """

    def __init__(self, env: gym.Env, std: float = 0.0, bias_std: float = 0.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, std=std, bias_std=bias_std)
        super().__init__(env)
        self.std = float(std)
        self.bias_std = float(bias_std)
        self._bias = np.zeros(env.observation_space.shape)
        self.neutral = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        drawn = self.bias_std > 0 and not self.neutral
        self._bias = self.np_random.normal(0.0, self.bias_std, self._bias.shape) if drawn else self._bias * 0
        return self.observation(obs), info

    @property
    def privileged_names(self) -> list[str]:
        """The per-episode bias, one entry per observation entry (none without a bias)."""
        return [f"obs_bias[{i}]" for i in range(self._bias.size)] if self.bias_std > 0 else []

    def privileged(self) -> np.ndarray:
        """The episode's bias in units of three standard deviations (the privileged scale of an unbounded draw)."""
        return (self._bias / (3.0 * self.bias_std)).ravel() if self.bias_std > 0 else np.zeros(0)

    def privileged_bounds(self) -> np.ndarray:
        """``(entries, 2)``: the biases :meth:`privileged` maps onto -1 and +1 (-+ three standard deviations)."""
        return np.tile([-3.0 * self.bias_std, 3.0 * self.bias_std], (len(self.privileged_names), 1))

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noisy = observation + self._bias
        if self.std > 0:
            noisy = noisy + self.np_random.normal(0.0, self.std, observation.shape)
        return noisy.astype(observation.dtype, copy=False)


class ActionNoise(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Adds Gaussian noise (std relative to half the action range) to actions, then clips to the bounds."""

    def __init__(self, env: gym.Env, std: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, std=std)
        super().__init__(env)
        self.std = float(std)
        space = env.action_space
        self._half_range = (space.high - space.low) / 2.0

    def action(self, action: np.ndarray) -> np.ndarray:
        space = self.action_space
        noisy = action + self.np_random.normal(0.0, self.std, space.shape) * self._half_range
        return np.clip(noisy, space.low, space.high).astype(space.dtype)


class ActionLatency(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Delays actions by ``k`` control steps (the first ``k`` steps of an episode apply a zero action).

    With ``max_steps`` set, ``k`` is drawn per episode uniformly from ``[steps, max_steps]``. With
    ``episode_key``, an inner wrapper decides ``k``: the reset ``info[episode_key]`` (automatic domain
    randomization's ``adr_latency``), clipped to ``[steps, max_steps]``.
    """

    def __init__(self, env: gym.Env, steps: int, max_steps: int | None = None, episode_key: str | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, steps=steps, max_steps=max_steps, episode_key=episode_key)
        super().__init__(env)
        for name, value in (("steps", steps), ("max_steps", steps if max_steps is None else max_steps)):
            require_int(f"action latency {name}", value, minimum=0)
        self.min_steps = int(steps)
        self.max_steps = int(steps if max_steps is None else max_steps)
        if self.max_steps < self.min_steps:
            raise ValueError(f"action latency max_steps={max_steps} < steps={steps}")
        self.delay = self.min_steps
        self.episode_key = episode_key
        self.neutral = False
        self._queue: deque[np.ndarray] = deque()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.neutral:
            self.delay = self.min_steps
        elif self.episode_key is not None and self.episode_key in info:
            self.delay = int(np.clip(info[self.episode_key], self.min_steps, self.max_steps))
        elif self.max_steps > self.min_steps:
            self.delay = int(self.np_random.integers(self.min_steps, self.max_steps + 1))
        zero = np.clip(np.zeros(self.action_space.shape), self.action_space.low, self.action_space.high)
        self._queue = deque([zero.astype(self.action_space.dtype)] * self.delay)
        info["action_latency"] = self.delay
        return obs, info

    @property
    def privileged_names(self) -> list[str]:
        """``action_latency`` when it is drawn per episode (none for a fixed latency)."""
        return ["action_latency"] if self.max_steps > self.min_steps else []

    def privileged(self) -> np.ndarray:
        """The episode's latency mapped from ``[steps, max_steps]`` onto [-1, 1]."""
        if self.max_steps == self.min_steps:
            return np.zeros(0)
        return np.array([2.0 * (self.delay - self.min_steps) / (self.max_steps - self.min_steps) - 1.0])

    def privileged_bounds(self) -> np.ndarray:
        """``(entries, 2)``: the latencies :meth:`privileged` maps onto -1 and +1."""
        return np.array([[self.min_steps, self.max_steps]] * len(self.privileged_names), dtype=float).reshape(-1, 2)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self._queue.append(np.asarray(action))
        return self.env.step(self._queue.popleft())


class MotorStrength(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Multiplies actions by a factor drawn per episode from ``[low, high]`` (weak or strong motors).

    The env still clips to its control range, so factors above 1 only matter below saturation.
    """

    def __init__(self, env: gym.Env, low: float, high: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, low=low, high=high)
        super().__init__(env)
        if not 0 <= low <= high:
            raise ValueError(f"motor strength range [{low}, {high}] must satisfy 0 <= low <= high")
        self.low, self.high = float(low), float(high)
        self.factor = 1.0
        self.neutral = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.neutral:
            self.factor = float(np.clip(1.0, self.low, self.high))
        else:
            self.factor = float(self.np_random.uniform(self.low, self.high)) if self.high > self.low else self.low
        info["motor_strength"] = self.factor
        return obs, info

    @property
    def privileged_names(self) -> list[str]:
        """``motor_strength`` when it is drawn per episode."""
        return ["motor_strength"] if self.high > self.low else []

    def privileged(self) -> np.ndarray:
        """The episode's factor mapped from ``[low, high]`` onto [-1, 1]."""
        return np.array([2.0 * (self.factor - self.low) / (self.high - self.low) - 1.0]) if self.high > self.low else np.zeros(0)

    def privileged_bounds(self) -> np.ndarray:
        """``(entries, 2)``: the strength factors :meth:`privileged` maps onto -1 and +1."""
        return np.array([[self.low, self.high]] * len(self.privileged_names), dtype=float).reshape(-1, 2)

    def action(self, action: np.ndarray) -> np.ndarray:
        return (np.asarray(action) * self.factor).astype(self.action_space.dtype)


class ActuatorFailure(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Forces the commands of the given actuators to zero (a broken joint)."""

    def __init__(self, env: gym.Env, disabled: tuple[int, ...]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, disabled=disabled)
        super().__init__(env)
        n = env.action_space.shape[0]
        bad = [i for i in disabled if not 0 <= i < n]
        if bad:
            raise ValueError(f"disabled actuators {bad} out of range; this env has {n} (0..{n - 1})")
        self.mask = np.ones(n, dtype=env.action_space.dtype)
        self.mask[list(disabled)] = 0

    def action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action) * self.mask


class RandomPushes(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Starts a push on a body with probability ``probability`` per step: a horizontal force of random
    direction and magnitude up to ``force`` newtons, held for ``duration`` steps."""

    def __init__(self, env: gym.Env, probability: float, force: float, duration: int = 1, body: str | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, probability=probability, force=force, duration=duration, body=body)
        super().__init__(env)
        model = env.unwrapped.model
        if body is None:
            self.body_id = int(np.flatnonzero(model.body_mass > 0)[0])
        else:
            self.body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
            if self.body_id < 0:
                names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(model.nbody)]
                raise ValueError(f"unknown push body '{body}'; known: {', '.join(n for n in names if n)}")
        self.probability, self.force, self.duration = float(probability), float(force), int(duration)
        self._remaining = 0
        self.pushes = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._clear()
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        data = self.env.unwrapped.data
        if self._remaining == 0 and self.np_random.random() < self.probability:
            angle = self.np_random.uniform(0, 2 * np.pi)
            magnitude = self.np_random.uniform(0, self.force)
            data.xfrc_applied[self.body_id, :3] = (magnitude * np.cos(angle), magnitude * np.sin(angle), 0.0)
            self._remaining = self.duration
            self.pushes += 1
        result = self.env.step(action)
        if self._remaining > 0:
            self._remaining -= 1
            if self._remaining == 0:
                self._clear()
        return result

    def _clear(self) -> None:
        self.env.unwrapped.data.xfrc_applied[self.body_id] = 0.0
        self._remaining = 0


def apply_effects(env: gym.Env, effects: EffectsSpec, latency_key: str | None = None) -> gym.Env:
    """Wraps ``env`` with every active effect of ``effects``, innermost first: actuator failure, motor
    strength, latency (per episode from the reset ``info[latency_key]`` when given), action noise, pushes,
    observation noise."""
    if effects.disabled_actuators:
        env = ActuatorFailure(env, effects.disabled_actuators)
    if effects.motor_strength is not None and effects.motor_strength != (1.0, 1.0):
        env = MotorStrength(env, *effects.motor_strength)
    if effects.action_latency > 0 or (effects.action_latency_max or 0) > 0:
        env = ActionLatency(env, effects.action_latency, effects.action_latency_max, episode_key=latency_key)
    if effects.action_noise_std > 0:
        env = ActionNoise(env, effects.action_noise_std)
    if effects.push_probability > 0 and effects.push_force > 0:
        env = RandomPushes(env, effects.push_probability, effects.push_force, effects.push_duration, effects.push_body)
    if effects.obs_noise_std > 0 or effects.obs_bias_std > 0:
        env = ObservationNoise(env, effects.obs_noise_std, effects.obs_bias_std)
    return env
