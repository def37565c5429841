"""Statistics on known inputs: IQM, the stratified bootstrap, paired differences."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.evaluation.stats import bootstrap_interval, interquartile_mean, paired_difference, summarize


def test_constant_sample_has_zero_width_interval() -> None:
    summary = summarize(np.full((3, 10), 42.0), seed=0)
    assert summary.mean == summary.iqm == summary.ci_low == summary.ci_high == 42.0
    assert summary.std == 0.0
    assert summary.n == 30


def test_shifted_sample_shifts_the_interval_by_the_shift() -> None:
    returns = np.random.default_rng(1).normal(100.0, 10.0, size=(3, 20))
    base, shifted = summarize(returns, seed=5), summarize(returns + 50.0, seed=5)
    assert shifted.mean == pytest.approx(base.mean + 50.0)
    assert shifted.ci_low == pytest.approx(base.ci_low + 50.0)
    assert shifted.ci_high == pytest.approx(base.ci_high + 50.0)
    assert base.ci_high < shifted.ci_low


def test_bootstrap_is_seeded() -> None:
    returns = np.random.default_rng(2).normal(size=(4, 8))
    assert bootstrap_interval(returns, seed=3) == bootstrap_interval(returns, seed=3)
    assert bootstrap_interval(returns, seed=3) != bootstrap_interval(returns, seed=4)


def test_interval_covers_the_mean_and_narrows_with_more_episodes() -> None:
    rng = np.random.default_rng(4)
    small, large = summarize(rng.normal(0, 1, (2, 10)), seed=0), summarize(rng.normal(0, 1, (2, 1000)), seed=0)
    assert small.ci_low < small.mean < small.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low) / 4
    assert large.ci_low < 0.0 < large.ci_high


def test_stratified_resampling_keeps_each_seed_s_episodes() -> None:
    # Seed 0 always scores 0 and seed 1 always 10: resampling within seeds keeps the mean at exactly 5.
    returns = np.array([[0.0] * 6, [10.0] * 6])
    assert bootstrap_interval(returns, seed=0) == (5.0, 5.0)


def test_interquartile_mean_ignores_outliers() -> None:
    values = np.array([1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1000.0])
    assert float(interquartile_mean(values)) == pytest.approx(2.0)


def test_paired_difference_sign_and_pairing() -> None:
    rng = np.random.default_rng(6)
    common = rng.normal(0.0, 100.0, size=(2, 15))  # large shared episode effect
    better = paired_difference(common + 1.0, common, seed=0)
    assert better.mean == pytest.approx(1.0)
    assert better.ci_low == pytest.approx(1.0) and better.reliably_positive  # pairing cancels the shared noise
    assert paired_difference(common - 5.0, common, seed=0).reliably_negative
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference(np.zeros((2, 3)), np.zeros((2, 4)), seed=0)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        summarize(np.zeros((0, 3)), seed=0)
    with pytest.raises(ValueError, match="NaN"):
        summarize([[1.0, np.nan]], seed=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([[1.0, 2.0]], seed=0, confidence=1.5)
