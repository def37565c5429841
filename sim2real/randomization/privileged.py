"""Privileged observation: the episode's randomized parameters appended to the observation.

Only a simulator knows them. A teacher policy (``policy.privileged=actor``) or an asymmetric critic
(``policy.privileged=critic``) reads them during training; a deployed policy never does.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim2real.randomization.wrapper import DomainRandomization


class PrivilegedObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Appends :meth:`DomainRandomization.privileged` (the episode's parameters, in [-1, 1]) to every
    observation: ``[obs, privileged]``.

    Args:
        env: An env with a :class:`DomainRandomization` somewhere inside and a 1-D Box observation space.

    Example:
        >>> from sim2real.randomization import DynamicsSpec, make_env
        >>> spec = DynamicsSpec.from_dict({"parameters": {"masses": {"dist": "uniform", "low": 0.5, "high": 2.5}}})
        >>> env = PrivilegedObservation(make_env("inverted_pendulum", randomization=spec))
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, bool((obs[4:] == info["privileged"]).all())
        ((6,), True)
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.randomization = find_randomization(env)
        if self.randomization is None:
            raise ValueError("privileged observations are the randomized parameters, but this env has no domain "
                             "randomization (give a randomization with parameters)")
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"privileged observations need a 1-D Box observation space, got {space}")
        n = len(self.randomization.privileged_names)
        self.observation_space = spaces.Box(np.concatenate([space.low, np.full(n, -np.inf)]),
                                            np.concatenate([space.high, np.full(n, np.inf)]), dtype=np.float64)

    @property
    def privileged_dim(self) -> int:
        """Length of the privileged part."""
        return len(self.randomization.privileged_names)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(observation, np.float64), self.randomization.privileged()])


def find_randomization(env: gym.Env) -> DomainRandomization | None:
    """The :class:`DomainRandomization` among ``env``'s wrappers, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, DomainRandomization):
            return env
        env = env.env
    return None


def privileged_names(env: gym.Env) -> list[str]:
    """Names of the privileged entries an env with domain randomization would append (empty without one)."""
    randomization = find_randomization(env)
    return randomization.privileged_names if randomization is not None else []


def split_privileged(obs: np.ndarray, privileged_dim: int) -> tuple[np.ndarray, Any]:
    """``(policy part, privileged part)`` of observations ``[obs, privileged]`` (one or a batch)."""
    obs = np.asarray(obs)
    cut = obs.shape[-1] - privileged_dim
    return obs[..., :cut], obs[..., cut:]
