"""Domain similarity before transfer: how far a target moves the transitions of the source's domain.

Short rollouts of the source policy collect transitions ``(s, a, s' - s)`` in the source's domain (its
training randomization) and in the same domain with the target applied (the target's values become the
centre of the randomization, as in :func:`sim2real.randomization.make_env`). Both sides use the same
episode seeds, hence the same randomization draws and initial states, so step ``t`` of episode ``i`` on
one side pairs with step ``t`` of episode ``i`` on the other (up to the shorter of the two episodes).

The score is the unbiased squared maximum mean discrepancy (MMD²) of the two samples with a Gaussian
kernel, on features standardized with the pooled statistics and a bandwidth from the median heuristic.
Its p-value comes from a paired permutation test (swapping the two members of random pairs). An
unpaired test on independent episodes is not valid here: transitions of one episode share one draw of
the randomization, and the test would read those clusters as a difference between the domains.
``s' - s`` is used instead of ``s'`` (the same information) because after standardization the state
change shows the dynamics more clearly than the next state, which is dominated by ``s``.

A target that changes nothing gives identical samples: MMD² at or just below 0 and p = 1. Such a target
is a no-op for this env (e.g. friction on a robot without contacts), and a zero transfer gap is then no
evidence that transfer works: the report warns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sim2real.envs.registry import EnvSpec
from sim2real.episodes import ActFn, run_steps
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.validation import require_float, require_int


@dataclass(frozen=True)
class SimilaritySettings:
    """How the domain-similarity score is estimated.

    Attributes:
        episodes: Rollout episodes per side.
        max_steps: Steps per episode at most (short rollouts suffice).
        max_samples: Transition pairs used in the test (a seeded random subset; the cost is quadratic).
        permutations: Permutations of the test's null distribution.
        level: Significance level: a p-value at or above it counts as indistinguishable (and is warned about).
        seed: Seed of the rollouts, the subsampling and the permutations.
    """

    episodes: int = 4
    max_steps: int = 250
    max_samples: int = 500
    permutations: int = 200
    level: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("episodes", "max_steps", "max_samples", "permutations"):
            require_int(f"similarity.{name}", getattr(self, name), minimum=1)
        require_float("similarity.level", self.level, low=0.0, high=1.0, low_open=True, high_open=True)


@dataclass(frozen=True)
class SimilarityResult:
    """The domain-similarity score of one target.

    Attributes:
        target: Target name.
        mmd2: Unbiased squared MMD between source-domain and target transitions (0 when alike; can dip below 0).
        p_value: Paired permutation-test p-value of "the target changes nothing".
        bandwidth: Gaussian kernel bandwidth (median heuristic, in standardized units).
        n_pairs: Transition pairs used.
        distinguishable: True when ``p_value < level``, or when the target made the simulation blow up.
        warning: A message when the target looks like the source, or blows the simulation up, else None.
        physics_blowups: Target-side episodes cut by a physics blow-up (their transitions are too few to
            test, so a large p-value there says nothing about similarity).
    """

    target: str
    mmd2: float
    p_value: float
    bandwidth: float
    n_pairs: int
    distinguishable: bool
    warning: str | None
    physics_blowups: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


def collect_transitions(act: ActFn, env: str | EnvSpec, episodes: int, seed: int, max_steps: int,
                        target: DynamicsSpec | None = None, randomization: DynamicsSpec | None = None) -> list[np.ndarray]:
    """Per episode, rows ``[s, a, s' - s]``; episode ``i`` seeded ``seed + i``, at most ``max_steps`` steps."""
    return _transitions(act, env, episodes, seed, max_steps, target, randomization)[0]


def _transitions(act: ActFn, env: str | EnvSpec, episodes: int, seed: int, max_steps: int,
                 target: DynamicsSpec | None, randomization: DynamicsSpec | None) -> tuple[list[np.ndarray], int]:
    """:func:`collect_transitions` and the number of episodes cut by a physics blow-up."""
    environment = make_env(env, randomization=randomization, target=target)
    per_episode: list[list[np.ndarray]] = [[] for _ in range(episodes)]
    blown: set[int] = set()
    try:
        for step in run_steps(environment, lambda obs: np.asarray(act(obs), dtype=np.float64).ravel(), seed,
                              episodes=episodes, max_episode_steps=max_steps, reset=getattr(act, "reset", None)):
            if step.info.get("physics_unstable"):
                blown.add(step.episode)
                continue  # the guard's replacement observation is no transition of the dynamics
            obs = np.ravel(step.obs)
            per_episode[step.episode].append(np.concatenate([obs, step.action, np.ravel(step.next_obs) - obs]))
    finally:
        environment.close()
    return [np.asarray(rows, dtype=np.float64) for rows in per_episode], len(blown)


def paired_rows(source: list[np.ndarray], shifted: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Aligns step ``t`` of episode ``i`` of both sides, up to the shorter episode; two equal-length arrays."""
    lengths = [min(len(a), len(b)) for a, b in zip(source, shifted)]
    return (np.concatenate([a[:n] for a, n in zip(source, lengths)]),
            np.concatenate([b[:n] for b, n in zip(shifted, lengths)]))


def _squared_distances(x: np.ndarray) -> np.ndarray:
    norms = np.sum(x * x, axis=1)
    return np.maximum(norms[:, None] + norms[None, :] - 2.0 * x @ x.T, 0.0)


def _mmd2_unbiased(kernel: np.ndarray, masks: np.ndarray, paired: bool = False) -> np.ndarray:
    """Unbiased MMD² for each row of ``masks`` (True: the sample is in the first group).

    ``kernel`` is the pooled kernel matrix with its diagonal set to zero, and with ``paired`` also each pair's
    own cross entry (a pair's two members are dependent: their similarity would pull the cross term up and
    the statistic down by about 2 (E k(x_i, y_i) - E k(x, y')) / n).
    """
    first = masks.astype(np.float64)
    second = 1.0 - first
    n, m = first.sum(axis=1), second.sum(axis=1)
    k_first = first @ kernel
    within_x = np.sum(k_first * first, axis=1) / (n * (n - 1))
    cross = np.sum(k_first * second, axis=1) / (n * (m - 1) if paired else n * m)
    within_y = np.sum((second @ kernel) * second, axis=1) / (m * (m - 1))
    return within_x + within_y - 2.0 * cross


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int, rng: np.random.Generator,
             paired: bool = False) -> tuple[float, float, float]:
    """Unbiased MMD² of samples ``x`` and ``y`` (rows), its permutation p-value and the kernel bandwidth
    (paired: the U-statistic over pairs ``i != j`` of k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i)).

    Features are standardized with the pooled mean and std (constant features dropped); the Gaussian
    kernel's bandwidth is the median pairwise distance of the pooled sample. With ``paired`` (row ``i`` of
    ``x`` pairs with row ``i`` of ``y``) the permutations swap the members of random pairs; otherwise they
    shuffle all labels.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs at least 2 samples per side, got {len(x)} and {len(y)}")
    if paired and len(x) != len(y):
        raise ValueError(f"a paired test needs equal sample sizes, got {len(x)} and {len(y)}")
    pooled = np.vstack([x, y])
    std = pooled.std(axis=0)
    keep = std > 1e-12
    if not np.any(keep):
        return 0.0, 1.0, 0.0
    pooled = (pooled[:, keep] - pooled[:, keep].mean(axis=0)) / std[keep]
    sq = _squared_distances(pooled)
    median = float(np.median(sq[np.triu_indices(len(pooled), k=1)]))
    bandwidth = float(np.sqrt(median)) if median > 0 else 1.0
    kernel = np.exp(-sq / (2.0 * bandwidth**2))
    np.fill_diagonal(kernel, 0.0)
    if paired:  # a swap keeps each pair split between the groups: its own cross entry never counts
        pairs = np.arange(len(x))
        kernel[pairs, pairs + len(x)] = kernel[pairs + len(x), pairs] = 0.0
    is_x = np.zeros(len(pooled), dtype=bool)
    is_x[: len(x)] = True
    observed = float(_mmd2_unbiased(kernel, is_x[None, :], paired)[0])
    if paired:
        swaps = rng.random((permutations, len(x))) < 0.5
        shuffled = np.concatenate([~swaps, swaps], axis=1)
    else:
        shuffled = np.stack([rng.permutation(is_x) for _ in range(permutations)])
    exceed = int(np.sum(_mmd2_unbiased(kernel, shuffled, paired) >= observed - 1e-12))
    return observed, (exceed + 1) / (permutations + 1), bandwidth


def domain_similarity(act: ActFn, env: str | EnvSpec, source_randomization: DynamicsSpec | None, target: DynamicsSpec,
                      settings: SimilaritySettings | None = None) -> SimilarityResult:
    """Scores how far ``target`` moves the transitions of the source's randomized domain.

    Args:
        act: The source policy (a :class:`~sim2real.policies.Policy`, reset every episode) or an action function.
        env: The robot.
        source_randomization: The randomization the source was trained with (None: nominal).
        target: The target dynamics.
        settings: Rollout and test settings.
    """
    settings = settings or SimilaritySettings()
    rng = np.random.default_rng(settings.seed)
    source, _ = _transitions(act, env, settings.episodes, settings.seed, settings.max_steps, None, source_randomization)
    shifted, blowups = _transitions(act, env, settings.episodes, settings.seed, settings.max_steps, target,
                                    source_randomization)
    if blowups:
        return SimilarityResult(
            target=target.name, mmd2=float("nan"), p_value=0.0, bandwidth=0.0, n_pairs=0, distinguishable=True,
            warning=f"target '{target.name}' makes the simulation blow up in {blowups} of {settings.episodes} "
                    "episodes: it is far from the source domain (not a no-op), and returns on it measure instability",
            physics_blowups=blowups)
    source_rows, shifted_rows = paired_rows(source, shifted)
    if len(source_rows) > settings.max_samples:
        keep = np.sort(rng.choice(len(source_rows), size=settings.max_samples, replace=False))
        source_rows, shifted_rows = source_rows[keep], shifted_rows[keep]
    mmd2, p_value, bandwidth = mmd_test(source_rows, shifted_rows, settings.permutations, rng, paired=True)
    distinguishable = p_value < settings.level
    warning = None if distinguishable else (
        f"target '{target.name}' does not change the source domain's transitions measurably (MMD²={mmd2:.4f}, "
        f"p={p_value:.2f}): it may be a no-op for this env, so a small gap is no evidence of successful transfer")
    return SimilarityResult(target=target.name, mmd2=mmd2, p_value=float(p_value), bandwidth=bandwidth,
                            n_pairs=len(source_rows), distinguishable=distinguishable, warning=warning)
