"""Catches physics blow-ups so an extreme dynamics sample truncates an episode instead of crashing training."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

_UNSTABLE = (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL)


class PhysicsGuard(gym.Wrapper):
    """Truncates the episode when the state goes non-finite or MuJoCo reports an instability.

    The offending step returns the last finite observation, reward 0, ``truncated=True`` and
    ``info["physics_unstable"] = True``; :attr:`blowups` counts such episodes.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.blowups = 0
        self._data = env.unwrapped.data
        self._last_obs: np.ndarray | None = None
        self._warnings = self._warning_count()

    def _warning_count(self) -> int:
        warning = self._data.warning
        return sum(int(warning[w].number) for w in _UNSTABLE)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._warnings = self._warning_count()
        self._last_obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        warnings = self._warning_count()
        if warnings == self._warnings and math.isfinite(reward) and math.isfinite(float(np.sum(obs))):
            self._last_obs = obs
            return obs, reward, terminated, truncated, info
        self._warnings = warnings
        self.blowups += 1
        info["physics_unstable"] = True
        safe_obs = self._last_obs if self._last_obs is not None else np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
        return safe_obs, 0.0, terminated, True, info
