"""Observation history: the last ``k`` observations and actions in every observation.

A memoryless policy cannot see an action latency or a parameter that only shows over time; with the
recent observations and the actions it sent, it can. :class:`HistoryObservation` is the one place that
stacks them, and :class:`HistoryLayout` the one description of the stacked vector, shared by the wrapper
(simulation), the exported graph (which carries the same buffer as an explicit state) and ``bundle.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim2real.validation import require_int


@dataclass(frozen=True)
class HistoryLayout:
    """The stacked observation ``[o_t, o_{t-1}, ..., o_{t-k+1}, a_{t-1}, ..., a_{t-k}]`` (newest first).

    ``o_t`` is the observation the action is chosen from; ``a_{t-1}`` the action sent one step earlier.
    Entries from before the episode start are zeros. The exported graph's state is this vector without
    its first observation: ``stacked = [o_t, state]``.

    Attributes:
        steps: ``k``: observations kept (the current one included) and past actions kept.
        obs_dim: Length of one observation.
        action_dim: Length of one action.
    """

    steps: int
    obs_dim: int
    action_dim: int

    def __post_init__(self) -> None:
        require_int("history steps", self.steps, minimum=1)
        require_int("obs_dim", self.obs_dim, minimum=1)
        require_int("action_dim", self.action_dim, minimum=1)

    @property
    def stacked_dim(self) -> int:
        """Length of the stacked observation."""
        return self.steps * (self.obs_dim + self.action_dim)

    @property
    def state_dim(self) -> int:
        """Length of the state a deployed policy carries between steps (the stack minus ``o_t``)."""
        return self.stacked_dim - self.obs_dim

    @property
    def obs_part(self) -> int:
        """Where the observations end and the actions begin in the stacked vector."""
        return self.steps * self.obs_dim

    def entries(self) -> list[str]:
        """The stacked vector's blocks in order: ``obs[t]``, ``obs[t-1]``, ..., ``action[t-1]``, ..."""
        observations = ["obs[t]"] + [f"obs[t-{i}]" for i in range(1, self.steps)]
        return observations + [f"action[t-{i}]" for i in range(1, self.steps + 1)]

    def to_dict(self) -> dict[str, Any]:
        """The ``history`` entry of ``bundle.json``: how many steps, the layout, what to feed before it is full."""
        return {
            "steps": self.steps,
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "stacked_dim": self.stacked_dim,
            "layout": self.entries(),
            "state_layout": self.entries()[1:],
            "before_full": "zeros: observations and actions from before the episode start are 0 (reset the state "
                           "to zeros at every episode start); the buffer is full after "
                           f"{self.steps} steps",
        }

    def shorter(self, stacked: np.ndarray, steps: int) -> np.ndarray:
        """The stacked observation of a shorter history (``steps`` <= ``self.steps``; 0: ``o_t`` alone) cut
        from ``stacked`` (one or a batch): what a policy with less memory sees at the same moment."""
        require_int("shorter history steps", steps, minimum=0, maximum=self.steps)
        stacked = np.asarray(stacked)
        if steps == 0:
            return stacked[..., :self.obs_dim]
        actions = stacked[..., self.obs_part:self.obs_part + steps * self.action_dim]
        return np.concatenate([stacked[..., :steps * self.obs_dim], actions], axis=-1)

    def push(self, stacked: np.ndarray, obs: np.ndarray, action: np.ndarray) -> None:
        """Shifts ``stacked`` in place by one step: ``action`` was sent, then ``obs`` was observed."""
        n, m, split = self.obs_dim, self.action_dim, self.obs_part
        stacked[n:split] = stacked[:split - n].copy()
        stacked[:n] = obs
        stacked[split + m:] = stacked[split:-m].copy()
        stacked[split:split + m] = action


class HistoryObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replaces each observation by the last ``steps`` observations and actions (:class:`HistoryLayout`).

    Wrap it outermost (outside latency and sensor noise): the policy sees what a robot's controller sees,
    the noisy observations and the actions it sent (before any delay). At every reset the history is
    cleared to zeros, so episodes never leak into each other.

    Args:
        env: An env with 1-D Box observation and action spaces.
        steps: Observations (the current one included) and past actions to keep, >= 1.

    Example:
        >>> env = HistoryObservation(gym.make("InvertedPendulum-v5"), steps=3)
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape, bool((obs[4:] == 0).all())                       # 3 x 4 observations + 3 x 1 actions
        ((15,), True)
        >>> obs2, *_ = env.step(np.array([0.5]))
        >>> bool((obs2[4:8] == obs[:4]).all()), float(obs2[12])         # o_{t-1} moved back; a_{t-1} = 0.5
        (True, 0.5)
    """

    def __init__(self, env: gym.Env, steps: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, steps=steps)
        super().__init__(env)
        obs_space, act_space = env.observation_space, env.action_space
        for name, space in (("observation", obs_space), ("action", act_space)):
            if not isinstance(space, spaces.Box) or len(space.shape) != 1:
                raise ValueError(f"history needs a 1-D Box {name} space, got {space}")
        self.layout = HistoryLayout(require_int("history steps", steps, minimum=1), obs_space.shape[0], act_space.shape[0])
        zero_low, zero_high = np.minimum(act_space.low, 0), np.maximum(act_space.high, 0)  # padding is zeros
        low = np.concatenate([np.tile(np.minimum(obs_space.low, 0), steps), np.tile(zero_low, steps)])
        high = np.concatenate([np.tile(np.maximum(obs_space.high, 0), steps), np.tile(zero_high, steps)])
        self.observation_space = spaces.Box(low.astype(np.float64), high.astype(np.float64), dtype=np.float64)
        self._stacked = np.zeros(self.layout.stacked_dim)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._stacked[:] = 0.0
        self._stacked[:self.layout.obs_dim] = obs
        return self._stacked.copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.layout.push(self._stacked, obs, np.asarray(action, np.float64).reshape(self.layout.action_dim))
        return self._stacked.copy(), reward, terminated, truncated, info


def current_observation(stacked: np.ndarray, layout: HistoryLayout) -> np.ndarray:
    """The newest observation ``o_t`` of a stacked observation (or a batch of them)."""
    return np.asarray(stacked)[..., :layout.obs_dim]


def history_layout(env: gym.Env) -> HistoryLayout | None:
    """The layout of the env's :class:`HistoryObservation` (searched through its wrappers), or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, HistoryObservation):
            return env.layout
        env = env.env
    return None
