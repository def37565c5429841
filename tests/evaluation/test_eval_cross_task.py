"""Cross-task aggregates: point estimates against rliable (1e-6), and against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sim2real.evaluation import cross_task

RUNS, TASKS = 5, 4


def matrices(seed: int = 0) -> dict[str, np.ndarray]:
    """Planted (runs, tasks) score matrices of three methods, with ties and scores above 1."""
    rng = np.random.default_rng(seed)
    scores = {"finetune": rng.normal(0.5, 0.2, (RUNS, TASKS)), "dagger": rng.normal(0.8, 0.3, (RUNS, TASKS)),
              "scratch": rng.normal(0.2, 0.1, (RUNS, TASKS))}
    scores["scratch"][:, 0] = scores["finetune"][:, 0]  # identical on one task: P = 0.5 there
    scores["dagger"][0, 1] = scores["finetune"][0, 1]  # a tie between runs
    return scores


def columns(matrix: np.ndarray) -> list[np.ndarray]:
    return [matrix[:, task] for task in range(matrix.shape[1])]


def point(matrix: np.ndarray) -> dict[str, float]:
    return {name: est.value for name, est in cross_task.aggregate_estimates(columns(matrix), resamples=10).items()}


def test_point_estimates_match_rliable() -> None:
    metrics = pytest.importorskip("rliable.metrics", reason="rliable is a test dependency (the dev extra)")
    library = pytest.importorskip("rliable.library")
    scores = matrices()
    for matrix in scores.values():
        ours = point(matrix)
        assert ours["iqm"] == pytest.approx(metrics.aggregate_iqm(matrix), abs=1e-6)
        assert ours["median"] == pytest.approx(metrics.aggregate_median(matrix), abs=1e-6)
        assert ours["mean"] == pytest.approx(metrics.aggregate_mean(matrix), abs=1e-6)
        assert ours["optimality_gap"] == pytest.approx(metrics.aggregate_optimality_gap(matrix), abs=1e-6)
    for x in ("dagger", "scratch"):
        ours = cross_task.probability_of_improvement(columns(scores[x]), columns(scores["finetune"]), resamples=10)
        assert ours.value == pytest.approx(metrics.probability_of_improvement(scores[x], scores["finetune"]), abs=1e-6)
    taus = np.linspace(0.0, 1.5, 31)
    profiles, _ = library.create_performance_profile(scores, taus, reps=10)
    for name, matrix in scores.items():
        ours = cross_task.performance_profile(columns(matrix), taus, resamples=10)
        np.testing.assert_allclose(ours["fraction"], profiles[name], atol=1e-6)


def test_point_estimates_by_hand() -> None:
    """An independent computation on a tiny case (runs where rliable is not installed too)."""
    tasks = [np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.2, 0.2, 0.6, 1.4])]
    estimates = {name: est.value for name, est in cross_task.aggregate_estimates(tasks, resamples=10).items()}
    pooled = np.sort(np.concatenate(tasks))  # 0, .2, .2, .6, 1, 1.4, 2, 3: the middle half is .2, .6, 1, 1.4
    assert estimates["iqm"] == pytest.approx(np.mean(pooled[2:6]))
    assert estimates["mean"] == pytest.approx((1.5 + 0.6) / 2)
    assert estimates["median"] == pytest.approx((1.5 + 0.6) / 2)  # two tasks: the median is their mean
    assert estimates["optimality_gap"] == pytest.approx(1 - np.mean(np.minimum(pooled, 1)))
    # P(X > Y) per task: U / (m n) with ties one half, averaged over tasks.
    x, y = [np.array([1.0, 2.0]), np.array([0.5])], [np.array([1.0, 0.0]), np.array([0.5])]
    expected = np.mean([(0.5 + 1 + 1 + 1) / 4, 0.5])
    assert cross_task.probability_of_improvement(x, y, resamples=10).value == pytest.approx(expected)
    u = scipy_stats.mannwhitneyu(x[0], y[0], alternative="greater").statistic / 4
    assert u == pytest.approx((0.5 + 1 + 1 + 1) / 4)


def test_intervals_are_seeded_and_cover_the_estimate() -> None:
    tasks = columns(matrices()["dagger"])
    first = cross_task.aggregate_estimates(tasks, seed=3, resamples=500)
    assert first == cross_task.aggregate_estimates(tasks, seed=3, resamples=500)
    assert first != cross_task.aggregate_estimates(tasks, seed=4, resamples=500)
    for estimate in first.values():
        assert estimate.ci_low <= estimate.value <= estimate.ci_high
    profile = cross_task.performance_profile(tasks, np.array([0.0, 0.8, 5.0]), resamples=200)
    assert profile["fraction"][-1] == 0.0 and profile["ci_low"][0] <= profile["fraction"][0] <= profile["ci_high"][0]


def test_ragged_tasks_and_bad_input() -> None:
    estimates = cross_task.aggregate_estimates([np.array([0.1, 0.2, 0.3]), np.array([0.9])], resamples=50)
    assert estimates["mean"].value == pytest.approx((0.2 + 0.9) / 2)
    with pytest.raises(ValueError, match="at least one run"):
        cross_task.aggregate_estimates([np.array([])])
    with pytest.raises(ValueError, match="NaN"):
        cross_task.aggregate_estimates([np.array([np.nan])])
    with pytest.raises(ValueError, match="same tasks"):
        cross_task.probability_of_improvement([np.array([1.0])], [np.array([1.0]), np.array([2.0])])
