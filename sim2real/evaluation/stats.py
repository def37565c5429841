"""Statistics of evaluation returns: interquartile mean and seeded, stratified bootstrap intervals.

Returns are held as a ``(seeds, episodes)`` array: one row per evaluation seed (a stratum), one column
per episode. The bootstrap resamples episodes with replacement *within* each seed, keeping every
stratum's size (the stratified bootstrap of Agarwal et al., 2021, with seeds as strata), and
evaluates the statistic on the pooled resample; the interval is the percentile interval. Differences
between two policies evaluated on the same episode seeds are bootstrapped *paired* (the same indices
for both), which keeps the benefit of the common random numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps an array ``(..., n)`` to its statistic over the last axis, shape ``(...)``."""

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Summary of a set of returns.

    Attributes:
        mean: Mean over all episodes of all seeds.
        std: Standard deviation over all episodes (population, ``ddof=0``).
        iqm: Interquartile mean (mean of the middle 50%), robust to a few failed episodes.
        ci_low: Lower end of the bootstrap confidence interval of the mean.
        ci_high: Upper end of it.
        n: Number of episodes.
    """

    mean: float
    std: float
    iqm: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``{mean, std, iqm, ci_low, ci_high, n}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """Reads the form :meth:`to_dict` writes."""
        return cls(**{key: data[key] for key in ("mean", "std", "iqm", "ci_low", "ci_high", "n")})


@dataclass(frozen=True)
class Difference:
    """A paired difference ``a - b`` of means with its bootstrap interval.

    Attributes:
        mean: Difference of the means.
        ci_low: Lower end of the bootstrap confidence interval.
        ci_high: Upper end of it.
        n: Episodes per side.
    """

    mean: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def reliably_negative(self) -> bool:
        """True when the whole interval lies below zero."""
        return self.ci_high < 0.0

    @property
    def reliably_positive(self) -> bool:
        """True when the whole interval lies above zero."""
        return self.ci_low > 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``{mean, ci_low, ci_high, n}``."""
        return asdict(self)


def interquartile_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of the middle 50% of ``values`` along ``axis`` (25% trimmed from each end)."""
    return np.asarray(scipy_stats.trim_mean(values, 0.25, axis=axis))


def as_strata(returns: np.ndarray | list[list[float]]) -> np.ndarray:
    """Checks and returns ``returns`` as a float array ``(seeds, episodes)`` (a 1-D array is one seed)."""
    array = np.asarray(returns, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"returns must be a non-empty (seeds, episodes) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("returns contain NaN or infinite values")
    return array


def stratified_indices(shape: tuple[int, int], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap indices ``(resamples, seeds, episodes)``: episodes drawn with replacement within each seed."""
    seeds, episodes = shape
    return rng.integers(0, episodes, size=(resamples, seeds, episodes))


def _resample(strata: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Pooled resamples ``(resamples, seeds * episodes)`` of ``strata`` at ``indices``."""
    rows = np.arange(strata.shape[0])[None, :, None]
    picked = strata[rows, indices]
    return picked.reshape(indices.shape[0], -1)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _check_confidence(confidence: float, resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    if resamples < 1:
        raise ValueError(f"resamples={resamples} must be >= 1")


def bootstrap_interval(
    returns: np.ndarray | list[list[float]],
    seed: int,
    statistic: Statistic = lambda x: np.mean(x, axis=-1),
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` under the stratified bootstrap (seeded: same seed, same interval).

    Args:
        returns: ``(seeds, episodes)`` returns.
        seed: Seed of the resampling generator.
        statistic: Vectorized statistic over the last axis (default: the mean).
        confidence: Coverage of the interval.
        resamples: Bootstrap resamples.
    """
    _check_confidence(confidence, resamples)
    strata = as_strata(returns)
    indices = stratified_indices(strata.shape, resamples, np.random.default_rng(seed))
    return _percentile_interval(statistic(_resample(strata, indices)), confidence)


def summarize(returns: np.ndarray | list[list[float]], seed: int, confidence: float = DEFAULT_CONFIDENCE,
              resamples: int = DEFAULT_RESAMPLES) -> Summary:
    """Mean, std, IQM and the stratified-bootstrap interval of the mean of ``(seeds, episodes)`` returns."""
    strata = as_strata(returns)
    flat = strata.ravel()
    low, high = bootstrap_interval(strata, seed, confidence=confidence, resamples=resamples)
    return Summary(mean=float(flat.mean()), std=float(flat.std()), iqm=float(interquartile_mean(flat)),
                   ci_low=low, ci_high=high, n=int(flat.size))


def paired_difference(a: np.ndarray | list[list[float]], b: np.ndarray | list[list[float]], seed: int,
                      confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES) -> Difference:
    """``mean(a) - mean(b)`` with a paired stratified-bootstrap interval.

    ``a`` and ``b`` must have the same ``(seeds, episodes)`` shape, episode ``(k, i)`` of both run with the
    same episode seed (the evaluator guarantees it), so the same resampled indices are used for both.
    """
    _check_confidence(confidence, resamples)
    first, second = as_strata(a), as_strata(b)
    if first.shape != second.shape:
        raise ValueError(f"paired difference needs equal shapes, got {first.shape} and {second.shape}")
    indices = stratified_indices(first.shape, resamples, np.random.default_rng(seed))
    diffs = _resample(first, indices).mean(axis=-1) - _resample(second, indices).mean(axis=-1)
    low, high = _percentile_interval(diffs, confidence)
    return Difference(mean=float(first.mean() - second.mean()), ci_low=low, ci_high=high, n=int(first.size))
