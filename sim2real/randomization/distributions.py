"""Sampling distributions for domain randomization, as small frozen dataclasses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri


def log_uniform(rng: np.random.Generator, low: float, high: float, size: int) -> np.ndarray:
    """``size`` draws uniform in the log on ``[low, high]`` (``0 < low <= high``, not checked here)."""
    # exp(log(x)) can miss x by a rounding error: clip so the draws stay inside [low, high] (a collapsed
    # range gives exactly low).
    return np.clip(np.exp(rng.uniform(math.log(low), math.log(high), size)), low, high)


def _check_finite(**values: float) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name}={value!r} must be a finite number")


def _check_order(low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"low={low:g} > high={high:g}: low must not exceed high")


class Distribution:
    """A scalar distribution. Subclasses implement :meth:`sample` and :meth:`support`."""

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draws ``size`` values from ``rng``."""
        raise NotImplementedError

    def support(self) -> tuple[float, float]:
        """The smallest and largest value a sample can take (may be infinite)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Distribution):
    """Always ``value``; what targets use for fixed perturbed dynamics."""

    value: float

    def __post_init__(self) -> None:
        _check_finite(value=self.value)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, float(self.value))

    def support(self) -> tuple[float, float]:
        return (self.value, self.value)


@dataclass(frozen=True)
class Uniform(Distribution):
    """Uniform on ``[low, high]``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_finite(low=self.low, high=self.high)
        _check_order(self.low, self.high)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size)

    def support(self) -> tuple[float, float]:
        return (self.low, self.high)


@dataclass(frozen=True)
class LogUniform(Distribution):
    """Log-uniform on ``[low, high]`` (``0 < low``): scale factors spread evenly in ratio."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_finite(low=self.low, high=self.high)
        _check_order(self.low, self.high)
        if self.low <= 0:
            raise ValueError(f"log_uniform needs low > 0, got low={self.low:g}")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return log_uniform(rng, self.low, self.high, size)

    def support(self) -> tuple[float, float]:
        return (self.low, self.high)


@dataclass(frozen=True)
class Normal(Distribution):
    """Gaussian with ``mean`` and ``std`` (unbounded support)."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        _check_finite(mean=self.mean, std=self.std)
        if self.std < 0:
            raise ValueError(f"std={self.std:g} must be >= 0")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.normal(self.mean, self.std, size)

    def support(self) -> tuple[float, float]:
        if self.std == 0:
            return (self.mean, self.mean)
        return (-math.inf, math.inf)


@dataclass(frozen=True)
class TruncatedNormal(Distribution):
    """Gaussian with ``mean`` and ``std`` truncated to ``[low, high]`` (inverse-CDF sampling)."""

    mean: float
    std: float
    low: float
    high: float

    def __post_init__(self) -> None:
        _check_finite(mean=self.mean, std=self.std, low=self.low, high=self.high)
        _check_order(self.low, self.high)
        if self.std <= 0:
            raise ValueError(f"truncated_normal needs std > 0, got std={self.std:g}")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        a = ndtr((self.low - self.mean) / self.std)
        b = ndtr((self.high - self.mean) / self.std)
        u = rng.uniform(a, b, size)
        return np.clip(self.mean + self.std * ndtri(u), self.low, self.high)

    def support(self) -> tuple[float, float]:
        return (self.low, self.high)


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "constant": Constant,
    "uniform": Uniform,
    "log_uniform": LogUniform,
    "normal": Normal,
    "truncated_normal": TruncatedNormal,
}


def make_distribution(name: str, **kwargs: float) -> Distribution:
    """Builds a distribution by name, e.g. ``make_distribution("uniform", low=0.8, high=1.2)``."""
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution '{name}'; known: {', '.join(DISTRIBUTIONS)}")
    cls = DISTRIBUTIONS[name]
    fields = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(kwargs) - fields
    missing = fields - set(kwargs)
    if unknown or missing:
        raise ValueError(
            f"distribution '{name}' takes {sorted(fields)}; got unknown {sorted(unknown)}, missing {sorted(missing)}"
        )
    return cls(**kwargs)
