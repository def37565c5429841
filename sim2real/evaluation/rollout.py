"""Deterministic, seeded rollouts of a policy on given dynamics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.envs.registry import EnvSpec
from sim2real.episodes import ActFn, run_steps
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.validation import require_int


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
        act: Maps one raw observation to an action: a :class:`~sim2real.policies.Policy` (reset at every
            episode start) or any function.
        env: The robot.
        episodes: How many episodes (>= 1).
        seed: Seed of the first episode.
        target: Dynamics to evaluate on (None: nominal).
        randomization: Optional randomization on top (to evaluate on the training distribution).
    """
    require_int("episodes", episodes, minimum=1)
    environment = make_env(env, randomization=randomization, target=target)
    returns, lengths, blowups = np.zeros(episodes), np.zeros(episodes, dtype=int), 0
    try:
        for step in run_steps(environment, act, seed, episodes=episodes, reset=getattr(act, "reset", None)):
            returns[step.episode] += step.reward
            lengths[step.episode] += 1
            blowups += int(bool(step.info.get("physics_unstable")))
    finally:
        environment.close()
    return RolloutResult(returns, lengths, blowups)
