"""Distributions: seeded, in bounds, and strict about their parameters."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.randomization import (
    DISTRIBUTIONS,
    LogUniform,
    Normal,
    TruncatedNormal,
    Uniform,
    make_distribution,
)

BOUNDED = [Uniform(0.5, 1.5), LogUniform(0.5, 2.0), TruncatedNormal(1.0, 0.5, 0.7, 1.1)]


@pytest.mark.parametrize("dist", [*BOUNDED, Normal(1.0, 0.1)])
def test_same_seed_same_sample_different_seed_differs(dist) -> None:
    a = dist.sample(np.random.default_rng(3), 100)
    b = dist.sample(np.random.default_rng(3), 100)
    c = dist.sample(np.random.default_rng(4), 100)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("dist", BOUNDED)
def test_samples_respect_bounds(dist) -> None:
    low, high = dist.support()
    x = dist.sample(np.random.default_rng(0), 20_000)
    assert x.min() >= low and x.max() <= high
    # and they actually spread over the range
    assert x.max() - x.min() > 0.8 * (high - low)


def test_log_uniform_is_uniform_in_log_space() -> None:
    x = LogUniform(0.5, 2.0).sample(np.random.default_rng(0), 50_000)
    assert np.median(x) == pytest.approx(1.0, abs=0.02)


def test_truncated_normal_mean_inside_bounds() -> None:
    x = TruncatedNormal(1.0, 0.1, 0.5, 1.5).sample(np.random.default_rng(0), 50_000)
    assert x.mean() == pytest.approx(1.0, abs=0.01)
    assert x.std() == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("uniform", {"low": 2.0, "high": 1.0}, "low=2 > high=1"),
        ("log_uniform", {"low": 0.0, "high": 1.0}, "low > 0"),
        ("normal", {"mean": 0.0, "std": -1.0}, "std=-1"),
        ("gaussian", {"mean": 0.0, "std": 1.0}, "unknown distribution 'gaussian'; known: constant, uniform"),
        ("uniform", {"low": 1.0}, "missing \\['high'\\]"),
    ],
)
def test_bad_parameters_are_rejected(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_distribution(name, **kwargs)


def test_registry_lists_all_distributions() -> None:
    assert set(DISTRIBUTIONS) == {"constant", "uniform", "log_uniform", "normal", "truncated_normal"}
