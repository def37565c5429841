"""The one episode loop: every rollout in the package (evaluation, demonstrations, similarity, parity,
state collection) steps an env through :func:`run_steps` and keeps what it needs from each step.

Episode ``i`` resets with the ``i``-th seed of ``seeds`` (``seed + i`` for an int), and a policy that
carries state across steps (history, recurrent) is reset at every episode start through ``reset``.

Example:
    >>> from sim2real.randomization import make_env
    >>> env = make_env("inverted_pendulum")
    >>> steps = list(run_steps(env, lambda obs: env.action_space.low * 0, seeds=0, episodes=1))
    >>> steps[0].episode_start, steps[-1].done
    (True, True)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

ActFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Step:
    """One env step.

    Attributes:
        obs: The observation the action was chosen from.
        action: The action taken (as the policy gave it).
        reward: The reward received.
        next_obs: The observation after the step.
        terminated: The episode ended in a terminal state.
        truncated: The episode was cut (time limit, physics guard).
        info: The step's info dict.
        episode: Index of the episode (0-based).
        episode_start: This is the first step of its episode.
        cut: The loop ended the episode here (``max_episode_steps``), neither terminated nor truncated.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    episode: int
    episode_start: bool
    cut: bool = False

    @property
    def done(self) -> bool:
        """The episode ended with this step (a cut included)."""
        return self.terminated or self.truncated or self.cut


def episode_seeds(seeds: int | Iterable[int]) -> Iterator[int]:
    """``seed, seed + 1, ...`` for an int; the given seeds otherwise."""
    return itertools.count(seeds) if isinstance(seeds, (int, np.integer)) else iter(seeds)


def run_steps(env: gym.Env, act: ActFn, seeds: int | Iterable[int], *, episodes: int | None = None,
              steps: int | None = None, max_episode_steps: int | None = None,
              reset: Callable[[], None] | None = None) -> Iterator[Step]:
    """Steps ``act`` in ``env`` until ``episodes`` whole episodes or ``steps`` steps are done.

    Args:
        env: The env (not closed here).
        act: Maps one raw observation to an action.
        seeds: Reset seed of episode 0 (then ``+1`` per episode), or an iterable of reset seeds.
        episodes: Stop after this many whole episodes.
        steps: Stop after this many steps (the last episode may stay unfinished). Give ``episodes``,
            ``steps`` or both (whichever comes first).
        max_episode_steps: Cut every episode after this many steps (without marking it truncated).
        reset: Called at every episode start before the first action (a stateful policy's ``reset``).

    Yields:
        Each :class:`Step`, in order.
    """
    if episodes is None and steps is None:
        raise ValueError("give episodes, steps or both: the loop needs an end")
    seed_iter = episode_seeds(seeds)
    taken, episode = 0, 0
    while (episodes is None or episode < episodes) and (steps is None or taken < steps):
        obs, _ = env.reset(seed=int(next(seed_iter)))
        if reset is not None:
            reset()
        length, done = 0, False
        while not done and (steps is None or taken < steps):
            action = act(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            length += 1
            taken += 1
            cut = max_episode_steps is not None and length >= max_episode_steps and not (terminated or truncated)
            step = Step(obs, action, float(reward), next_obs, bool(terminated), bool(truncated), info, episode,
                        length == 1, cut)
            yield step
            done, obs = step.done, next_obs
        episode += 1
