"""Catches physics blow-ups so an extreme dynamics sample truncates an episode instead of crashing training."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

_BADQPOS, _BADQVEL, _BADQACC = (int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                                                 mujoco.mjtWarning.mjWARN_BADQACC))


MAX_ABS_REWARD = 1.0e4
"""Largest per-step reward magnitude taken as physics (MuJoCo-suite rewards are O(1-10) per step); beyond it,
e.g. a forward-velocity reward of a body flung at 10 km/s, the step counts as a blow-up."""


class PhysicsGuard(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Truncates the episode when MuJoCo reports an instability (bad qpos/qvel/qacc) or the reward is not
    finite or larger in magnitude than ``max_abs_reward`` (a finite but absurd reward, such as -242,140 from a
    diverged simulation, would otherwise pass as a return).

    The offending step returns the last finite observation, reward 0, ``truncated=True`` and
    ``info["physics_unstable"] = True``; :attr:`blowups` counts such episodes.
    """

    def __init__(self, env: gym.Env, max_abs_reward: float = MAX_ABS_REWARD) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, max_abs_reward=max_abs_reward)
        super().__init__(env)
        self.max_abs_reward = float(max_abs_reward)
        self.blowups = 0
        self._data = env.unwrapped.data
        self._counts = self._data.warning.number  # a live view of MuJoCo's warning counters
        self._last_obs: np.ndarray | None = None
        self._warnings = self._warning_count()

    def _warning_count(self) -> int:
        counts = self._counts
        return int(counts[_BADQPOS]) + int(counts[_BADQVEL]) + int(counts[_BADQACC])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._warnings = self._warning_count()
        self._last_obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        warnings = self._warning_count()
        # MuJoCo flags non-finite or huge qpos/qvel/qacc itself (and resets the state); a reward check covers the rest.
        if warnings == self._warnings and math.isfinite(reward) and abs(reward) <= self.max_abs_reward:
            self._last_obs = obs
            return obs, reward, terminated, truncated, info
        self._warnings = warnings
        self.blowups += 1
        info["physics_unstable"] = True
        safe_obs = self._last_obs if self._last_obs is not None else np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
        return safe_obs, 0.0, terminated, True, info
