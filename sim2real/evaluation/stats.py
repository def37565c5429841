"""Statistics of evaluation returns: interquartile mean and seeded bootstrap intervals.

Returns are held as a ``(seeds, episodes)`` array: one row per evaluation seed, one column per episode.
Evaluation seeds are blocks of episode reset seeds for the same policy on the same dynamics, so every
episode is a draw from one distribution: the bootstrap resamples all ``seeds * episodes`` episodes
together, with replacement. (Resampling within each seed instead, as a stratified bootstrap does, treats
the seeds' differences as fixed and gives too narrow an interval: zero width with one episode per seed.)

The interval is Hesterberg's *expanded percentile* interval (Hesterberg 2015, "What teachers should know
about the bootstrap"): the percentile interval undercovers with few episodes (its width is that of a
normal interval with the population standard deviation), so its tail probability is taken at
``sqrt(n / (n - 1)) * t[n - 1]`` instead of the normal quantile; for the mean of normal returns this is the
Student interval, and it tends to the percentile interval as ``n`` grows. For statistics other than the
mean (the IQM) the same expansion is a heuristic. A bootstrap cannot reach beyond the data, so the mean of
fewer than :data:`MIN_BOOTSTRAP` values (and :func:`t_interval`, for runs) gets the Student interval
itself. One value has no interval: it is the value itself, and a difference of one pair is never called
reliable.

Differences between two policies evaluated on the same episode seeds are bootstrapped *paired* (the same
indices for both), which keeps the benefit of the common random numbers.
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
MIN_BOOTSTRAP = 8
"""Fewer values than this get the Student interval of the mean: a bootstrap of a few values cannot reach past
their range (false alarms of a "reliably worse" call at 95% under the expanded percentile bootstrap, two
policies with the same normal returns, nominal 2.5%: about 23% with 2 pairs, 15% with 3, 5% with 4, 4% with
5, 3% with 8)."""


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
        """True when the whole interval lies below zero (never from a single pair)."""
        return self.n >= 2 and self.ci_high < 0.0

    @property
    def reliably_positive(self) -> bool:
        """True when the whole interval lies above zero (never from a single pair)."""
        return self.n >= 2 and self.ci_low > 0.0

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


def bootstrap_indices(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap indices ``(resamples, n)``: ``n`` values drawn with replacement from ``n``."""
    return rng.integers(0, n, size=(resamples, n))


def expanded_tail(n: int, confidence: float) -> float:
    """Probability in each tail of the expanded percentile interval of ``n`` values (see the module docstring)."""
    if n < 2:
        return (1.0 - confidence) / 2.0
    quantile = np.sqrt(n / (n - 1.0)) * scipy_stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)
    return float(scipy_stats.norm.sf(quantile))


def _percentile_interval(values: np.ndarray, n: int, confidence: float) -> tuple[float, float]:
    tail = 100.0 * expanded_tail(n, confidence)
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
    """Expanded percentile interval of ``statistic`` over all episodes (seeded: same seed, same interval).

    Args:
        returns: ``(seeds, episodes)`` returns, resampled together (see the module docstring).
        seed: Seed of the resampling generator.
        statistic: Vectorized statistic over the last axis (default: the mean).
        confidence: Coverage of the interval.
        resamples: Bootstrap resamples.
    """
    _check_confidence(confidence, resamples)
    flat = as_strata(returns).ravel()
    indices = bootstrap_indices(flat.size, resamples, np.random.default_rng(seed))
    return _percentile_interval(statistic(flat[indices]), flat.size, confidence)


def _mean_interval(values: np.ndarray, seed: int, confidence: float, resamples: int) -> tuple[float, float]:
    """Interval of the mean of ``values``: Student-t below :data:`MIN_BOOTSTRAP` values, else the bootstrap."""
    if values.size < MIN_BOOTSTRAP:
        return _student(values, confidence)
    return bootstrap_interval(values, seed, confidence=confidence, resamples=resamples)


def _student(values: np.ndarray, confidence: float) -> tuple[float, float]:
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df=values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return mean - half, mean + half


def _summary(flat: np.ndarray, interval: tuple[float, float]) -> Summary:
    return Summary(mean=float(flat.mean()), std=float(flat.std()), iqm=float(interquartile_mean(flat)),
                   ci_low=interval[0], ci_high=interval[1], n=int(flat.size))


def summarize(returns: np.ndarray | list[list[float]], seed: int, confidence: float = DEFAULT_CONFIDENCE,
              resamples: int = DEFAULT_RESAMPLES) -> Summary:
    """Mean, std, IQM and the interval of the mean of ``(seeds, episodes)`` returns (see the module docstring)."""
    _check_confidence(confidence, resamples)
    flat = as_strata(returns).ravel()
    return _summary(flat, _mean_interval(flat, seed, confidence, resamples))


def paired_difference(a: np.ndarray | list[list[float]], b: np.ndarray | list[list[float]], seed: int,
                      confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES) -> Difference:
    """``mean(a) - mean(b)`` with a paired bootstrap interval.

    ``a`` and ``b`` must have the same ``(seeds, episodes)`` shape, episode ``(k, i)`` of both run with the
    same episode seed (the evaluator guarantees it), so the same resampled indices are used for both.
    """
    _check_confidence(confidence, resamples)
    first, second = as_strata(a), as_strata(b)
    if first.shape != second.shape:
        raise ValueError(f"paired difference needs equal shapes, got {first.shape} and {second.shape}")
    pairs = (first - second).ravel()
    low, high = _mean_interval(pairs, seed, confidence, resamples)
    return Difference(mean=float(first.mean() - second.mean()), ci_low=low, ci_high=high, n=int(pairs.size))


def t_interval(values: np.ndarray | list[float], confidence: float = DEFAULT_CONFIDENCE) -> Summary:
    """Mean with the Student-t interval ``mean +- t[n-1] * s / sqrt(n)``: for a handful of values (runs).

    A percentile bootstrap of two or three values cannot reach beyond them (its "95%" interval of three
    runs covers the mean about 75% of the time); the t interval assumes normal values and keeps its level.
    One value has no interval (``ci_low == ci_high == value``).
    """
    _check_confidence(confidence, 1)
    flat = as_strata(values).ravel()
    return _summary(flat, _student(flat, confidence))
