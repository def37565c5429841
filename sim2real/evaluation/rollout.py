"""Deterministic, seeded rollouts of a policy on given dynamics."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from sim2real.envs.parameters import ParameterSet
from sim2real.envs.registry import EnvSpec
from sim2real.episodes import ActFn, run_steps
from sim2real.policies.policy import Policy
from sim2real.randomization.factory import make_env
from sim2real.randomization.privileged import privileged_sources
from sim2real.randomization.spec import DynamicsSpec
from sim2real.randomization.wrapper import DomainRandomization
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
    return _run_episodes(act, make_env(env, randomization=randomization, target=target), episodes, seed)


def privileged_rollout_returns(teacher: Policy, episodes: int, seed: int, target: DynamicsSpec | None = None,
                               randomization: DynamicsSpec | None = None) -> RolloutResult:
    """A privileged teacher's returns (it acts on ``[observation, privileged]``, which only a simulator has).

    Args:
        teacher: A policy trained with ``policy.privileged=actor``.
        episodes: How many episodes (>= 1); episode ``i`` resets with seed ``seed + i``.
        seed: Seed of the first episode.
        target: Fixed dynamics to act on: every episode holds ``target``'s parameters and the neutral value
            of each per-episode effect (the smallest latency, no sensor bias, motor strength 1), and the
            privileged observation reports them on the randomization's scale (what the teacher would be told
            on that robot). None: samples of the randomization. A target with effects of its own (latency,
            noise, pushes) is refused.
        randomization: The randomization whose scale the privileged observation uses (default: the
            teacher's own).
    """
    require_int("episodes", episodes, minimum=1)
    if teacher.info.privileged != "actor":
        raise ValueError(f"'{teacher.run_dir}' is not a privileged teacher (policy.privileged={teacher.info.privileged})")
    if target is not None and target.effects.active:
        raise ValueError(f"target '{target.name}' has effects (latency, noise or pushes) that a teacher's privileged "
                         "observation does not hold; evaluate a teacher on parameter targets only")
    environment = make_env(teacher.info.env, randomization=teacher.info.randomization if randomization is None else randomization,
                           target=teacher.info.target, privileged=True)
    if target is not None:
        robot = make_env(teacher.info.env)  # the target applies to the robot, not on top of the teacher's own target
        nominal = ParameterSet(robot.unwrapped.model, robot.unwrapped.data)
        robot.close()
        for source in privileged_sources(environment):
            if isinstance(source, DomainRandomization):
                source.pin(target, nominal)
            else:
                source.neutral = True
    return _run_episodes(teacher, environment, episodes, seed)


def _run_episodes(act: ActFn, environment: gym.Env, episodes: int, seed: int) -> RolloutResult:
    returns, lengths, blowups = np.zeros(episodes), np.zeros(episodes, dtype=int), 0
    try:
        for step in run_steps(environment, act, seed, episodes=episodes, reset=getattr(act, "reset", None)):
            returns[step.episode] += step.reward
            lengths[step.episode] += 1
            blowups += int(bool(step.info.get("physics_unstable")))
    finally:
        environment.close()
    return RolloutResult(returns, lengths, blowups)
