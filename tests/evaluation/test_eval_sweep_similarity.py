"""Robustness sweeps, domain similarity and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sim2real.envs.registry import env_spec_from_dict
from sim2real.evaluation import (
    EvalSettings,
    SimilaritySettings,
    SweepSpec,
    domain_similarity,
    evaluate_policies,
    mmd_test,
    robustness_sweep,
    rollout_returns,
)
from sim2real.evaluation.parallel import episode_seed_bases
from sim2real.evaluation.plots import robustness_comparison
from sim2real.evaluation.report import _robustness_lines
from sim2real.evaluation.rollout import RolloutResult
from sim2real.evaluation.sweep import SweepResult, reference_coverage, sweep_jobs, sweep_result
from sim2real.policies import Policy
from sim2real.presets import target_spec

PENDULUM = env_spec_from_dict({"name": "inverted_pendulum"})


def test_mmd_is_about_zero_for_one_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    same = mmd_test(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)), 100, np.random.default_rng(1))
    shifted = mmd_test(rng.normal(size=(200, 3)), rng.normal(1.0, 1.0, size=(200, 3)), 100, np.random.default_rng(1))
    assert abs(same[0]) < 0.02 and same[1] > 0.05
    assert shifted[0] > 0.1 and shifted[1] < 0.05


def test_paired_mmd_is_the_u_statistic_over_pairs() -> None:
    """Pairs (x_i, y_i) are dependent: the paired statistic leaves each pair's own cross term out, the
    U-statistic over i != j of k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i), and is about 0 when both
    sides share a distribution (with the pair's own term in, near-copies gave about -2 / n)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = x + rng.normal(0.0, 0.05, size=x.shape)  # each y_i a near-copy of its x_i
    mmd2, _, bandwidth = mmd_test(x, y, 50, np.random.default_rng(1), paired=True)
    pooled = np.vstack([x, y])
    z = (pooled - pooled.mean(axis=0)) / pooled.std(axis=0)
    k = np.exp(-((z[:, None] - z[None]) ** 2).sum(-1) / (2 * bandwidth**2))
    n = len(x)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    h = kxx + kyy - kxy - kxy.T
    assert mmd2 == pytest.approx((h.sum() - np.trace(h)) / (n * (n - 1)), abs=1e-12)
    assert abs(mmd2) < 0.01


def test_similarity_separates_a_no_op_target_from_real_ones(ppo_run: Path) -> None:
    policy = Policy.load(ppo_run)
    source = policy.info.randomization
    settings = SimilaritySettings(episodes=2, max_steps=150, max_samples=300)
    no_op, gravity, weak = (domain_similarity(policy, PENDULUM, source, target_spec(name), settings)
                            for name in ("low_friction", "high_gravity", "weak_motors"))
    # InvertedPendulum has no contacts: friction changes nothing, the samples are identical.
    assert no_op.p_value == 1.0 and abs(no_op.mmd2) < 0.01 and not no_op.distinguishable
    assert no_op.warning is not None and "no-op" in no_op.warning
    assert gravity.distinguishable and gravity.warning is None and gravity.mmd2 > no_op.mmd2
    assert weak.distinguishable and weak.mmd2 > 0.01
    again = domain_similarity(policy, PENDULUM, source, target_spec("weak_motors"), settings)
    assert again == weak  # seeded


def test_sweep_grid_shape_and_nominal_cell(ppo_run: Path) -> None:
    spec = SweepSpec(groups={"masses": (1.0, 3.0), "gains": (0.3, 1.0)}, episodes=1, seeds=1)
    result = robustness_sweep(str(ppo_run), "dr", PENDULUM, spec, eval_seed=5, workers=1)
    assert result.mean.shape == (2, 2) and result.n == 1
    nominal = rollout_returns(Policy.load(ppo_run), PENDULUM, 1, episode_seed_bases(5, 1)[0])
    assert result.mean[0, 1] == pytest.approx(nominal.returns.mean())  # masses x1, gains x1 is nominal
    assert result.mean[1, 0] < result.mean[0, 1]  # heavy and weak is worse than nominal


def test_sweep_grid_is_assembled_by_key_not_by_order() -> None:
    spec = SweepSpec(groups={"masses": (0.5, 2.0), "gains": (1.0,)}, episodes=1, seeds=2)
    jobs = sweep_jobs("random", "r", PENDULUM, spec, eval_seed=0)
    planted = {key: RolloutResult(np.array([10.0 * i]), np.array([1]), 0) for i, key in enumerate(jobs)}
    result = sweep_result("r", spec, dict(reversed(planted.items())))
    assert result.mean.tolist() == [[5.0], [25.0]]  # cell (0.5, 1): jobs 0 and 1; cell (2, 1): jobs 2 and 3


def test_sweep_spec_rejects_bad_grids() -> None:
    with pytest.raises(ValueError, match="one or two"):
        SweepSpec(groups={"masses": (1.0,), "gains": (1.0,), "frictions": (1.0,)})
    with pytest.raises(ValueError, match="unknown keys"):
        SweepSpec.from_dict({"groups": {"masses": [1.0]}, "episode": 3})
    with pytest.raises(ValueError, match="sweep.seeds=0 must be an integer >= 1"):
        SweepSpec(groups={"masses": (1.0,)}, seeds=0)
    with pytest.raises(ValueError, match="wheel_mass"):
        SweepSpec(groups={"wheel_mass": (1.0, 2.0)}).validate(PENDULUM)
    with pytest.raises(ValueError, match="mass"):
        SweepSpec(groups={"masses": (-1.0, 1.0)}).validate(PENDULUM)


def test_evaluation_with_sweep_writes_json_and_heatmap(ppo_run: Path, tmp_path: Path) -> None:
    sweep = SweepSpec(groups={"masses": (0.5, 2.0), "gains": (0.5, 1.0)}, episodes=1, seeds=1)
    report = evaluate_policies([ppo_run], target_spec("weak_motors"), episodes=1, seeds=1, out_dir=tmp_path,
                               workers=1, settings=EvalSettings(resamples=100, similarity=None, sweep=sweep))
    saved = json.loads((tmp_path / f"sweep_{ppo_run.name}.json").read_text())
    assert saved["groups"] == ["masses", "gains"] and np.array(saved["mean"]).shape == (2, 2)
    assert (tmp_path / f"sweep_{ppo_run.name}.png").stat().st_size > 10_000
    assert str(tmp_path / f"sweep_{ppo_run.name}.png") in report.context["plots"]
    assert f"- {ppo_run.name}: " in (tmp_path / "report.md").read_text()  # its coverage line
    assert "coverage_reference" not in saved


def test_evaluation_counts_every_grid_against_the_reference_policy(ppo_run: Path, tmp_path: Path) -> None:
    sweep = SweepSpec(groups={"masses": (0.5, 1.0), "gains": (1.0, 2.0)}, episodes=1, seeds=1,
                      coverage_reference=ppo_run.name)
    evaluate_policies([ppo_run], target_spec("weak_motors"), episodes=1, seeds=1, out_dir=tmp_path / "ok",
                      workers=1, settings=EvalSettings(resamples=100, similarity=None, sweep=sweep, plots=False))
    saved = json.loads((tmp_path / "ok" / f"sweep_{ppo_run.name}.json").read_text())
    assert saved["coverage_reference"] == {"policy": ppo_run.name, "nominal_return": saved["nominal_return"],
                                           "cells": saved["cells_at_half_nominal"]}  # its own line, here
    assert f"against 50% of {ppo_run.name}'s nominal cell" in (tmp_path / "ok" / "report.md").read_text()

    unknown = SweepSpec(groups={"masses": (0.5, 1.0)}, episodes=1, coverage_reference="default")
    with pytest.raises(ValueError, match="coverage_reference: 'default' is not a swept policy"):
        evaluate_policies([ppo_run], target_spec("weak_motors"), episodes=1, seeds=1, out_dir=tmp_path / "bad",
                          workers=1, settings=EvalSettings(resamples=100, similarity=None, sweep=unknown))
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def planted_sweep(policy: str, mean: list[list[float]], values=((0.5, 1.0, 2.0), (0.5, 1.0, 2.0))) -> SweepResult:
    grid = np.array(mean, dtype=float)
    return SweepResult(policy=policy, groups=["masses", "gains"], values=[list(v) for v in values], operation="scale",
                       mean=grid, ci_low=grid - 1, ci_high=grid + 1, n=5)


def test_coverage_counts_cells_at_half_the_nominal_cell() -> None:
    result = planted_sweep("p", [[10, 60, 49], [50, 100, 80], [0, 51, 200]])
    assert result.nominal_return == 100.0  # the (1.0, 1.0) cell, not the best one
    assert result.cells_at_least(0.5) == 6  # 60, 50, 100, 80, 51, 200 (49 is not)
    assert result.to_dict()["cells_at_half_nominal"] == 6
    assert planted_sweep("q", [[1, 2], [3, 4]], values=((0.5, 2.0), (0.5, 2.0))).cells_at_least(0.5) is None  # no nominal cell
    assert planted_sweep("r", [[-5, -1, -9]] * 3).cells_at_least(0.5) is None  # a fraction of a negative return means nothing


def test_a_reference_policy_sets_one_coverage_line_for_every_grid() -> None:
    """A policy that falls on the nominal robot (nominal cell 20) covers every cell against its own line, but
    only the cells at half of the reference's nominal (100) against the shared one."""
    sweeps = [planted_sweep("default", [[10, 60, 49], [50, 100, 80], [0, 51, 200]]),
              planted_sweep("faller", [[15, 30, 45], [60, 20, 90], [25, 12, 70]])]
    assert sweeps[1].cells_at_least(0.5) == 9
    assert sweeps[1].cells_at_least(0.5, nominal=100.0) == 3  # 60, 90, 70
    shared = reference_coverage(sweeps, "default")
    assert shared == {"default": {"policy": "default", "nominal_return": 100.0, "cells": 6},
                      "faller": {"policy": "default", "nominal_return": 100.0, "cells": 3}}
    with pytest.raises(ValueError, match="'wide' is not a swept policy; swept: default, faller"):
        reference_coverage(sweeps, "wide")
    no_nominal = [planted_sweep("q", [[1, 2], [3, 4]], values=((0.5, 2.0), (0.5, 2.0)))]
    assert reference_coverage(no_nominal, "q") == {"q": {"policy": "q", "nominal_return": None, "cells": None}}


def test_a_coverage_reference_must_be_a_swept_policy() -> None:
    spec = SweepSpec(groups={"masses": (0.5, 1.0)}, policies=("a", "b"), coverage_reference="c")
    with pytest.raises(ValueError, match="coverage_reference: 'c' is not a swept policy; swept: a, b"):
        spec.swept(["a", "b", "c"], default=["a"])
    assert SweepSpec(groups={"masses": (0.5, 1.0)}, coverage_reference="a").swept(["a", "b"], ["a", "b"]) == ["a", "b"]
    with pytest.raises(ValueError, match="coverage_reference must be the name of a swept policy or null, got 3"):
        SweepSpec.from_dict({"groups": {"masses": [1.0]}, "coverage_reference": 3})


def test_comparison_figure_and_report_lines_for_several_swept_policies(tmp_path: Path) -> None:
    sweeps = [planted_sweep("wide", [[10, 60, 49], [50, 100, 80], [0, 51, 200]]),
              planted_sweep("adr", [[90, 95, 99], [97, 100, 98], [96, 94, 93]])]
    path = robustness_comparison(sweeps, tmp_path / "cmp.png", env="inverted_pendulum")
    assert path.stat().st_size > 10_000
    lines = _robustness_lines([s.to_dict() for s in sweeps])
    assert lines[-2:] == ["- wide: 6 of 9 (nominal cell 100.0)", "- adr: 9 of 9 (nominal cell 100.0)"]

    sweeps.append(planted_sweep("faller", [[15, 30, 45], [60, 20, 90], [25, 12, 70]]))
    shared = reference_coverage(sweeps, "wide")
    lines = _robustness_lines([{**s.to_dict(), "coverage_reference": shared[s.policy]} for s in sweeps])
    assert lines[-1] == "- faller: 9 of 9 (nominal cell 20.0); against 50% of wide's nominal cell: 3 of 9 (line 50.0)"
    assert robustness_comparison(sweeps, tmp_path / "shared.png", reference="wide").stat().st_size > 10_000
    with pytest.raises(ValueError, match="coverage reference 'oracle' is not a swept policy; swept: wide, adr, faller"):
        robustness_comparison(sweeps, tmp_path / "none.png", reference="oracle")
    assert not (tmp_path / "none.png").exists()
