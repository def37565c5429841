"""Deterministic, seeded rollouts of a policy on given dynamics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim2real.envs.registry import EnvSpec
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec

ActFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RolloutResult:
    """Per-episode outcome of :func:`rollout_returns`.

    Attributes:
        returns: Undiscounted return of each episode.
        lengths: Steps of each episode.
        blowups: Episodes cut short by a physics instability.
    """

    returns: np.ndarray
    lengths: np.ndarray
    blowups: int

    @property
    def steps(self) -> int:
        """Total environment steps taken."""
        return int(self.lengths.sum())


def rollout_returns(
    act: ActFn,
    env: str | EnvSpec,
    episodes: int,
    seed: int,
    target: DynamicsSpec | None = None,
    randomization: DynamicsSpec | None = None,
) -> RolloutResult:
    """Runs ``episodes`` episodes; episode ``i`` resets with seed ``seed + i`` (same seeds, same episodes).

    Args:
        act: Maps one raw observation to an action (e.g. ``Policy.act``).
        env: The robot.
        episodes: How many episodes (>= 1).
        seed: Seed of the first episode.
        target: Dynamics to evaluate on (None: nominal).
        randomization: Optional randomization on top (to evaluate on the training distribution).
    """
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    environment = make_env(env, randomization=randomization, target=target)
    returns, lengths, blowups = [], [], 0
    try:
        for i in range(episodes):
            obs, _ = environment.reset(seed=seed + i)
            total, steps, done = 0.0, 0, False
            while not done:
                obs, reward, terminated, truncated, info = environment.step(act(obs))
                total += float(reward)
                steps += 1
                done = terminated or truncated
                blowups += int(bool(info.get("physics_unstable")))
            returns.append(total)
            lengths.append(steps)
    finally:
        environment.close()
    return RolloutResult(np.array(returns), np.array(lengths), blowups)
