"""Statistics on known inputs: IQM, the bootstrap over all episodes, paired differences, t intervals."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.evaluation.stats import (
    bootstrap_interval,
    expanded_tail,
    interquartile_mean,
    paired_difference,
    summarize,
    t_interval,
)


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


def test_evaluation_seeds_are_resampled_together() -> None:
    # Evaluation seeds are blocks of episodes of one policy: seed 0 scoring 0 and seed 1 scoring 10 is
    # sampling noise, not a fixed design, so the interval must be wide (resampling within seeds gave 5..5).
    low, high = bootstrap_interval(np.array([[0.0] * 6, [10.0] * 6]), seed=0)
    assert low < 3.0 and high > 7.0
    one_per_seed = np.random.default_rng(0).normal(0.0, 1.0, size=(10, 1))
    low, high = bootstrap_interval(one_per_seed, seed=0)
    assert high - low > 0.5  # ten seeds of one episode each: as wide as ten episodes of one seed


def test_expanded_percentile_tail_matches_student_and_tends_to_normal() -> None:
    assert expanded_tail(10, 0.95) == pytest.approx(0.0086, abs=2e-4)  # Phi(-sqrt(10/9) * t(0.975, 9))
    assert expanded_tail(10_000, 0.95) == pytest.approx(0.025, abs=1e-4)
    assert expanded_tail(1, 0.95) == pytest.approx(0.025)


def test_negative_transfer_false_alarm_rate_stays_near_nominal() -> None:
    # Two policies with the same return distribution: "reliably worse" must come up about 2.5% of the time,
    # for ten episodes as one seed or as ten seeds of one (the stratified percentile bootstrap: 5.75% and 49.5%).
    rng = np.random.default_rng(11)
    for shape in ((1, 10), (10, 1)):
        flags = [paired_difference(rng.normal(0.0, 1.0, shape), rng.normal(0.0, 1.0, shape), seed=k,
                                   resamples=1000).reliably_negative for k in range(400)]
        assert np.mean(flags) <= 0.05, shape


def test_a_few_pairs_get_the_student_interval() -> None:
    # A bootstrap of 3 pairs stops at their range and called "reliably worse" 15% of the time; Student's
    # interval keeps the level.
    rng = np.random.default_rng(12)
    flags = [paired_difference(rng.normal(0.0, 1.0, (1, 3)), rng.normal(0.0, 1.0, (1, 3)), seed=k).reliably_negative
             for k in range(400)]
    assert np.mean(flags) <= 0.05
    pairs = np.array([3.0, 1.0, 2.0])
    difference, student = paired_difference(pairs[None, :], np.zeros((1, 3)), seed=0), t_interval(pairs)
    assert (difference.ci_low, difference.ci_high) == pytest.approx((student.ci_low, student.ci_high))


def test_a_single_pair_is_never_reliable() -> None:
    difference = paired_difference([[0.0]], [[100.0]], seed=0)
    assert difference.mean == -100.0 and not difference.reliably_negative and not difference.reliably_positive


def test_t_interval_on_known_values() -> None:
    summary = t_interval([1.0, 2.0, 3.0])
    half = 4.302653 / np.sqrt(3.0)  # t(0.975, 2) * s / sqrt(n), s = 1
    assert summary.mean == 2.0 and summary.n == 3
    assert summary.ci_low == pytest.approx(2.0 - half, rel=1e-5) and summary.ci_high == pytest.approx(2.0 + half, rel=1e-5)
    single = t_interval([5.0])
    assert single.ci_low == single.ci_high == 5.0


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
