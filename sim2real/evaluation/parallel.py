"""Seeded rollout jobs run across CPU cores, with results independent of the worker count.

A :class:`RolloutJob` names a policy by its run folder (or :data:`RANDOM_POLICY`), the env, the
dynamics and one evaluation seed; :func:`run_jobs` runs a list of them in-process (``workers=1``) or in
a pool of spawned processes, and returns the results in the order of the jobs. :func:`run_keyed` runs
jobs keyed by what they are (:class:`RolloutKey`: policy, dynamics, seed) and returns results under the
same keys, so no caller depends on the order of a list. Each job seeds everything it uses itself
(episode seeds, the random policy's generator), so the outcome of a job does not depend on which
process ran it or on what ran before.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import multiprocessing
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from sim2real.envs.registry import EnvSpec, env_spec_from_record, trust_entry_points, trusted_references
from sim2real.evaluation.rollout import ActFn, RolloutResult, rollout_returns
from sim2real.policies import Policy, RunInfo
from sim2real.policies.deploy import BUNDLE_FILE, DeployedPolicy
from sim2real.processes import exit_with_parent
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.seeding import child_seeds
from sim2real.validation import require_int

RANDOM_POLICY = "random"
"""Policy name of the uniform-random baseline in a :class:`RolloutJob`."""


def default_workers() -> int:
    """``min(2, cpu count)``: parallel without crowding a small shared machine."""
    return max(1, min(2, os.cpu_count() or 1))


def episode_seed_bases(eval_seed: int, seeds: int) -> list[int]:
    """The first episode seed of each evaluation seed; episode ``i`` of seed ``k`` resets with ``bases[k] + i``."""
    return [base % 2**31 for base in child_seeds(eval_seed, require_int("seeds", seeds, minimum=1))]


@dataclass(frozen=True)
class RolloutJob:
    """Episodes of one policy, on one dynamics, from one evaluation seed.

    Attributes:
        policy: A run folder path, or :data:`RANDOM_POLICY` for uniform random actions.
        env: The robot.
        seed: Episode ``i`` resets with ``seed + i``; the random policy's actions are seeded from it too.
        episodes: Episodes to run.
        target: Fixed dynamics (None: nominal).
        randomization: Randomization on top (None: none).
    """

    policy: str
    env: EnvSpec
    seed: int
    episodes: int
    target: DynamicsSpec | None = None
    randomization: DynamicsSpec | None = None


@dataclass(frozen=True)
class RolloutKey:
    """What a rollout result is of.

    Attributes:
        policy: The policy's display name.
        dynamics: ``source`` (nominal), ``target``, or a sweep cell's label (``masses=1.5,gains=0.8``).
        seed: Index of the evaluation seed (0-based).
    """

    policy: str
    dynamics: str
    seed: int


Results = dict[RolloutKey, RolloutResult]
"""Rollout results by what they are of."""


class RandomActor:
    """Uniform random actions from a seeded generator (the random-policy baseline)."""

    def __init__(self, action_space: gym.spaces.Box, seed: int) -> None:
        self.low = np.asarray(action_space.low, dtype=np.float64)
        self.high = np.asarray(action_space.high, dtype=np.float64)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is an exported policy bundle (``bundle.json``) rather than a run folder."""
    return (Path(path) / BUNDLE_FILE).is_file()


def bundle_run_info(path: str | Path) -> RunInfo:
    """What the evaluator needs to know of an exported bundle, read from its ``bundle.json`` (checksums and
    fields verified, nothing unpickled): a policy from elsewhere is evaluated without trusting a run folder.

    The env comes back without its observation history: a bundle carries that history as its own state and
    takes the env's raw observations.
    """
    manifest = DeployedPolicy.load(path).manifest
    env = dataclasses.replace(env_spec_from_record(manifest["env"]), history=0)
    provenance = manifest.get("source_run") or {}
    return RunInfo(run_dir=Path(path), kind="bundle", env=env, algo=str(manifest.get("algo")),
                   seed=provenance.get("seed"), record=manifest)


@functools.lru_cache(maxsize=16)
def load_actor(path: str) -> Policy | DeployedPolicy:
    """The policy of a run folder (:class:`Policy`) or of an exported bundle (:class:`DeployedPolicy`)."""
    return DeployedPolicy.load(path) if is_bundle(path) else Policy.load(path)


def actor_for(job: RolloutJob) -> ActFn:
    """A job's policy: the random actor, or the run folder's or bundle's policy (loaded once per process)."""
    if job.policy == RANDOM_POLICY:
        probe = make_env(job.env)
        try:
            return RandomActor(probe.action_space, job.seed)
        finally:
            probe.close()
    return load_actor(job.policy)


def run_job(job: RolloutJob) -> RolloutResult:
    """Runs one job."""
    return rollout_returns(actor_for(job), job.env, job.episodes, job.seed,
                           target=job.target, randomization=job.randomization)


def _init_worker(parent: int | None = None, trusted: tuple[str, ...] = ()) -> None:
    """Worker set-up: one torch thread; the parent's trusted entry points; with ``parent``, exit as soon as
    that process is gone (a pool's workers otherwise run on after a kill -9 of the evaluator until their
    current job ends)."""
    import torch

    torch.set_num_threads(1)
    trust_entry_points(trusted)
    if parent is not None:
        exit_with_parent(parent)


def _nested_in_foreign_pool() -> bool:
    """True inside a worker of another process pool whose start method the standard library does not know
    (e.g. a joblib/loky worker of a Hydra sweep): spawning from there fails, and the sweep is parallel already."""
    return multiprocessing.get_start_method(allow_none=True) not in (None, "fork", "spawn", "forkserver")


def run_jobs(jobs: list[RolloutJob], workers: int | None = None) -> list[RolloutResult]:
    """Runs ``jobs`` (in-process when ``workers == 1``, else in a process pool); results in job order.

    Args:
        jobs: What to run.
        workers: Processes; None for :func:`default_workers`.
    """
    workers = default_workers() if workers is None else require_int("workers", workers, minimum=1)
    if workers == 1 or len(jobs) <= 1 or _nested_in_foreign_pool():
        return [run_job(job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                                                initializer=_init_worker, initargs=(os.getpid(), tuple(trusted_references()))) as pool:
        return list(pool.map(run_job, jobs))


def run_keyed(jobs: Mapping[RolloutKey, RolloutJob], workers: int | None = None) -> Results:
    """Runs keyed jobs (as :func:`run_jobs`); each result under its job's key."""
    return dict(zip(jobs, run_jobs(list(jobs.values()), workers)))
