"""Statements across tasks (envs x targets) and runs (seeds), after the rliable protocol (Agarwal et al., 2021).

Scores are normalized so that tasks can be pooled (here: the reference-normalized score as a fraction,
0 = random, 1 = the env's expert reference). A method's scores are a list with one 1-D array of run
scores per task; tasks may hold different run counts. With equal counts every estimator equals rliable's
on the ``(runs, tasks)`` matrix (a test checks this against rliable):

* mean: the mean over tasks of each task's mean score;
* median: the median over tasks of each task's mean score;
* IQM: the interquartile (25% trimmed) mean of all run scores pooled;
* optimality gap: ``gamma - mean(min(score, gamma))`` over all run scores (``gamma = 1``: the expert);
* probability of improvement ``P(X > Y)``: per task the Mann-Whitney ``U / (m n)`` (ties count one
  half), averaged over the tasks both methods were run on;
* performance profile: the fraction of run scores above each threshold ``tau``.

Intervals are percentile intervals of the stratified bootstrap: runs are resampled with replacement
within each task (and, for the probability of improvement, independently for both methods), seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from sim2real.evaluation.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

TaskScores = Sequence[np.ndarray]
"""One 1-D array of run scores per task."""
Batched = list[np.ndarray]
"""One ``(replicates, runs)`` array per task: bootstrap replicates of a :data:`TaskScores`."""


def _batched(scores: TaskScores) -> Batched:
    """The scores as one replicate: ``(1, runs)`` per task; rejects empty or non-finite input."""
    tasks = [np.asarray(task, dtype=np.float64).reshape(-1) for task in scores]
    if not tasks or any(task.size == 0 for task in tasks):
        raise ValueError("every task needs at least one run score, and there must be at least one task")
    if not all(np.all(np.isfinite(task)) for task in tasks):
        raise ValueError("scores contain NaN or infinite values")
    return [task[None, :] for task in tasks]


def _task_means(batch: Batched) -> np.ndarray:
    return np.stack([task.mean(axis=1) for task in batch], axis=1)


def _pooled(batch: Batched) -> np.ndarray:
    return np.concatenate(batch, axis=1)


def mean_of(batch: Batched) -> np.ndarray:
    """Mean over tasks of the per-task mean, per replicate."""
    return _task_means(batch).mean(axis=1)


def median_of(batch: Batched) -> np.ndarray:
    """Median over tasks of the per-task mean, per replicate."""
    return np.median(_task_means(batch), axis=1)


def iqm_of(batch: Batched) -> np.ndarray:
    """Interquartile mean of all run scores pooled, per replicate."""
    return np.asarray(scipy_stats.trim_mean(_pooled(batch), 0.25, axis=1))


def optimality_gap_of(batch: Batched, gamma: float = 1.0) -> np.ndarray:
    """``gamma - mean(min(score, gamma))`` over all run scores, per replicate."""
    return gamma - np.minimum(_pooled(batch), gamma).mean(axis=1)


ESTIMATORS: dict[str, Callable[[Batched], np.ndarray]] = {
    "iqm": iqm_of, "median": median_of, "mean": mean_of, "optimality_gap": optimality_gap_of,
}
"""The aggregate estimators by name, in the order reports show them."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its stratified-bootstrap interval.

    Attributes:
        value: The estimate on the data.
        ci_low: Lower end of the percentile interval.
        ci_high: Upper end of it.
    """

    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        """``{value, ci_low, ci_high}``."""
        return asdict(self)


def stratified_resample(scores: TaskScores, resamples: int, rng: np.random.Generator) -> Batched:
    """Bootstrap replicates: each task's runs drawn with replacement within the task."""
    batch = _batched(scores)
    return [task[0, rng.integers(0, task.shape[1], size=(resamples, task.shape[1]))] for task in batch]


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def aggregate_estimates(scores: TaskScores, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE,
                        resamples: int = DEFAULT_RESAMPLES) -> dict[str, Estimate]:
    """IQM, median, mean and optimality gap of one method's scores, each with its bootstrap interval."""
    point = _batched(scores)
    replicates = stratified_resample(scores, resamples, np.random.default_rng(seed))
    out = {}
    for name, estimator in ESTIMATORS.items():
        out[name] = Estimate(float(estimator(point)[0]), *_interval(estimator(replicates), confidence))
    return out


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mann-Whitney ``U / (m n)`` of ``x`` over ``y`` per replicate (``(R, m)`` and ``(R, n)`` arrays)."""
    greater = (x[:, :, None] > y[:, None, :]).mean(axis=(1, 2))
    ties = (x[:, :, None] == y[:, None, :]).mean(axis=(1, 2))
    return greater + 0.5 * ties


def probability_of_improvement(x: TaskScores, y: TaskScores, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE,
                               resamples: int = DEFAULT_RESAMPLES) -> Estimate:
    """``P(X > Y)``: the chance that a run of X on a task beats a run of Y on it, averaged over the tasks.

    ``x`` and ``y`` list the same tasks in the same order.
    """
    if len(x) != len(y):
        raise ValueError(f"probability of improvement needs the same tasks for both methods, got {len(x)} and {len(y)}")
    point_x, point_y = _batched(x), _batched(y)
    value = float(np.mean([_improvement(a, b)[0] for a, b in zip(point_x, point_y)]))
    rng = np.random.default_rng(seed)
    boot_x, boot_y = stratified_resample(x, resamples, rng), stratified_resample(y, resamples, rng)
    replicates = np.mean([_improvement(a, b) for a, b in zip(boot_x, boot_y)], axis=0)
    return Estimate(value, *_interval(replicates, confidence))


def performance_profile(scores: TaskScores, taus: np.ndarray, seed: int = 0, confidence: float = DEFAULT_CONFIDENCE,
                        resamples: int = DEFAULT_RESAMPLES) -> dict[str, list[float]]:
    """Fraction of run scores above each ``tau`` (the score distribution), with bootstrap bands.

    Returns ``{"fraction": [...], "ci_low": [...], "ci_high": [...]}``, one entry per ``tau``.
    """
    taus = np.asarray(taus, dtype=np.float64)
    point = _pooled(_batched(scores))[0]
    pooled = _pooled(stratified_resample(scores, resamples, np.random.default_rng(seed)))
    above = (pooled[:, :, None] > taus[None, None, :]).mean(axis=1)
    bands = [_interval(above[:, i], confidence) for i in range(len(taus))]
    return {"fraction": [float(np.mean(point > tau)) for tau in taus],
            "ci_low": [low for low, _ in bands], "ci_high": [high for _, high in bands]}


def profile_thresholds(scores: Sequence[TaskScores], points: int = 101) -> np.ndarray:
    """A threshold grid from 0 (or the lowest score) to 1 (or the highest), for every method's profile."""
    pooled = np.concatenate([np.concatenate([np.ravel(t) for t in method]) for method in scores])
    return np.linspace(min(0.0, float(pooled.min())), max(1.0, float(pooled.max())), points)


def to_jsonable(value: Any) -> Any:
    """Estimates (and dicts and lists of them) as plain JSON values."""
    if isinstance(value, Estimate):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    return value
