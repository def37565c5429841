"""Privileged observation: what the simulator drew for the episode, appended to the observation.

The randomized parameters (:meth:`DomainRandomization.privileged`) and the effects drawn per episode
(an action latency range, a sensor bias, a motor strength range: each effect wrapper's ``privileged()``),
each normalized to about [-1, 1]. Only a simulator knows them. A teacher policy (``policy.privileged=actor``) or an asymmetric critic
(``policy.privileged=critic``) reads them during training; a deployed policy never does.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim2real.randomization.wrapper import DomainRandomization
from sim2real.validation import require_float


class PrivilegedObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Appends the episode's privileged values to every observation: ``[obs, privileged]``, the randomized
    parameters first (:meth:`DomainRandomization.privileged`, in [-1, 1]), then the per-episode effects,
    innermost wrapper first (:func:`privileged_sources`).

    Args:
        env: An env with a :class:`DomainRandomization` or a per-episode effect inside and a 1-D Box
            observation space.
        noise_std: Std of a Gaussian offset drawn per episode and added to the privileged part (0: exact).
            A teacher trained with it learns to act well when told its robot only roughly, as a student's
            estimate from history will tell it.

    Example:
        >>> from sim2real.randomization import DynamicsSpec, make_env
        >>> spec = DynamicsSpec.from_dict({"parameters": {"masses": {"dist": "uniform", "low": 0.5, "high": 2.5}}})
        >>> env = PrivilegedObservation(make_env("inverted_pendulum", randomization=spec))
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, bool((obs[4:] == info["privileged"]).all())
        ((6,), True)
    """

    def __init__(self, env: gym.Env, noise_std: float = 0.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, noise_std=noise_std)
        super().__init__(env)
        self.noise_std = require_float("privileged noise_std", noise_std, low=0.0)
        self.sources = privileged_sources(env)
        if not self.sources:
            raise ValueError("privileged observations are the randomized parameters and per-episode effects, but this "
                             "env has neither (give a randomization with parameters, a latency range or a sensor bias)")
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"privileged observations need a 1-D Box observation space, got {space}")
        n = self.privileged_dim
        self.observation_space = spaces.Box(np.concatenate([space.low, np.full(n, -np.inf)]),
                                            np.concatenate([space.high, np.full(n, np.inf)]), dtype=np.float64)
        self._offset = np.zeros(n)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.noise_std > 0:
            self._offset = self.np_random.normal(0.0, self.noise_std, self.privileged_dim)
        return self.observation(obs), info

    @property
    def privileged_dim(self) -> int:
        """Length of the privileged part."""
        return sum(len(source.privileged_names) for source in self.sources)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        privileged = np.concatenate([source.privileged() for source in self.sources])
        return np.concatenate([np.asarray(observation, np.float64), privileged + self._offset])


def privileged_sources(env: gym.Env) -> list[Any]:
    """The wrappers inside ``env`` with privileged values this episode (non-empty ``privileged_names``),
    innermost first: the domain randomization, then each per-episode effect."""
    sources = []
    while isinstance(env, gym.Wrapper):
        if hasattr(type(env), "privileged_names") and env.privileged_names:  # its own, never a forwarded one
            sources.append(env)
        env = env.env
    return sources[::-1]


def find_randomization(env: gym.Env) -> DomainRandomization | None:
    """The :class:`DomainRandomization` among ``env``'s wrappers, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, DomainRandomization):
            return env
        env = env.env
    return None


def privileged_names(env: gym.Env) -> list[str]:
    """Names of the privileged entries :class:`PrivilegedObservation` appends to ``env`` (empty: none)."""
    return [name for source in privileged_sources(env) for name in source.privileged_names]


def privileged_bounds(env: gym.Env) -> dict[str, tuple[float, float]]:
    """Each privileged entry of ``env`` -> the raw values its normalization maps onto -1 and +1: the scale a
    teacher learned its privileged input on (the same robot reads differently under other ranges)."""
    return {name: (float(low), float(high)) for source in privileged_sources(env)
            for name, (low, high) in zip(source.privileged_names, source.privileged_bounds(), strict=True)}


def split_privileged(obs: np.ndarray, privileged_dim: int) -> tuple[np.ndarray, Any]:
    """``(policy part, privileged part)`` of observations ``[obs, privileged]`` (one or a batch)."""
    obs = np.asarray(obs)
    cut = obs.shape[-1] - privileged_dim
    return obs[..., :cut], obs[..., cut:]
