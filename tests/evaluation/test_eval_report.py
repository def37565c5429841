"""The report built from planted returns: scores, gap closed, negative-transfer flags, Markdown."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim2real.evaluation.report import EvaluatedPolicy, build_report, format_markdown, write_report

SHAPE = (3, 10)


def returns(mean: float, noise: float = 20.0, seed: int = 0) -> np.ndarray:
    return mean + np.random.default_rng(seed).normal(0.0, noise, size=SHAPE)


def planted(adapted_target: float, scratch_target: float = 300.0) -> list[EvaluatedPolicy]:
    return [
        EvaluatedPolicy("zero_shot", "zero_shot", returns(1000, seed=1), returns(400, seed=2), run_dir="runs/dr"),
        EvaluatedPolicy("adapted", "policy", returns(990, seed=3), returns(adapted_target, seed=4), run_dir="runs/ft",
                        target_steps_used=20_000, budget=20_000, method="finetune", zero_shot="zero_shot"),
        EvaluatedPolicy("random", "random", returns(20, 5, seed=5), returns(10, 5, seed=6)),
        EvaluatedPolicy("scratch_20000", "scratch", returns(250, seed=7), returns(scratch_target, seed=8),
                        target_steps_used=20_480, budget=20_000),
        EvaluatedPolicy("oracle", "oracle", returns(800, seed=9), returns(910, seed=10), target_steps_used=150_000),
    ]


def test_planted_negative_transfer_is_flagged() -> None:
    report = build_report(planted(adapted_target=250.0), env="inverted_double_pendulum", target="high_gravity")
    row = report.policy("adapted")
    assert row.negative_transfer is True
    assert row.versus["zero_shot"].ci_high < 0 and row.versus["scratch"].ci_high < 0
    assert row.gap_closed == pytest.approx((row.target_return.mean - 400) / (910 - 400), abs=0.05)
    assert row.gap_closed < 0


def test_worse_than_same_budget_scratch_alone_is_negative_transfer() -> None:
    report = build_report(planted(adapted_target=500.0, scratch_target=700.0), env="e", target="t")
    row = report.policy("adapted")
    assert not row.versus["zero_shot"].reliably_negative
    assert row.versus["scratch"].reliably_negative
    assert row.negative_transfer is True


def test_planted_improvement_is_not_flagged() -> None:
    report = build_report(planted(adapted_target=700.0), env="e", target="t")
    row = report.policy("adapted")
    assert row.negative_transfer is False
    assert row.versus["zero_shot"].reliably_positive
    assert 0.5 < row.gap_closed < 0.7
    # 100 (J - J_random) / (J_oracle - J_random) on the target.
    expected = 100 * (row.target_return.mean - report.policy("random").target_return.mean) / (
        report.policy("oracle").target_return.mean - report.policy("random").target_return.mean)
    assert row.normalized_score == pytest.approx(expected)
    assert report.policy("oracle").normalized_score == pytest.approx(100.0)
    assert report.policy("random").normalized_score == pytest.approx(0.0)


def test_a_tie_within_noise_is_not_flagged() -> None:
    report = build_report(planted(adapted_target=400.0, scratch_target=100.0), env="e", target="t")
    assert report.policy("adapted").negative_transfer is False


def test_no_reference_means_no_verdict_and_no_scores() -> None:
    report = build_report([EvaluatedPolicy("dr", "policy", returns(1000), returns(300))], env="e", target="t")
    row = report.policy("dr")
    assert row.negative_transfer is None and row.normalized_score is None and row.gap_closed is None
    assert row.gap.mean == pytest.approx(700.0, abs=15.0) and row.gap.ci_low > 0


def test_report_files_hold_every_required_field(tmp_path) -> None:
    report = build_report(planted(adapted_target=250.0), env="inverted_double_pendulum", target="high_gravity",
                          seed=1)
    json_path, md_path = write_report(report, tmp_path)
    data = json.loads(json_path.read_text())
    row = next(p for p in data["policies"] if p["name"] == "adapted")
    for key in ("name", "run_dir", "source_return", "target_return", "gap", "target_steps_used",
                "normalized_score", "gap_closed", "negative_transfer", "reference_score", "expert", "expert_free",
                "target_steps_incl_expert", "undefined"):
        assert key in row
    assert set(row["target_return"]) == {"mean", "std", "iqm", "ci_low", "ci_high", "n"}
    assert row["target_return"]["n"] == 30 and row["target_steps_used"] == 20_000
    markdown = md_path.read_text()
    assert markdown == format_markdown(report)
    assert "| adapted | policy | yes | – | 20000 | 20000 |" in markdown and "**yes**" in markdown


def test_inconsistent_inputs_are_rejected() -> None:
    entries = planted(adapted_target=500.0)
    entries[1].name = "zero_shot"
    with pytest.raises(ValueError, match="unique"):
        build_report(entries, env="e", target="t")
    with pytest.raises(ValueError, match="shape"):
        build_report([EvaluatedPolicy("a", "policy", np.zeros((2, 3)), np.zeros((2, 3))),
                      EvaluatedPolicy("b", "policy", np.zeros((2, 4)), np.zeros((2, 4)))], env="e", target="t")
    with pytest.raises(ValueError, match="unknown role"):
        EvaluatedPolicy("a", "adapted", np.zeros((1, 2)), np.zeros((1, 2)))


def test_sample_efficiency_curve_needs_two_budgets() -> None:
    entries = planted(adapted_target=500.0)
    assert build_report(entries, env="e", target="t").context["sample_efficiency"] == {}
    entries.append(EvaluatedPolicy("adapted_5k", "policy", returns(990), returns(450), target_steps_used=5_000,
                                   budget=5_000, method="finetune", zero_shot="zero_shot"))
    curve = build_report(entries, env="e", target="t").context["sample_efficiency"]["finetune"]
    assert [p["target_steps_used"] for p in curve] == [0, 5_000, 20_000]
    assert curve[0]["name"] == "zero_shot"


def test_scratch_run_is_matched_by_budget() -> None:
    entries = planted(adapted_target=500.0, scratch_target=700.0)
    entries.append(EvaluatedPolicy("scratch_5000", "scratch", returns(100), returns(50), target_steps_used=6_144,
                                   budget=5_000))
    row = build_report(entries, env="e", target="t").policy("adapted")
    assert row.versus["scratch"].mean == pytest.approx(500.0 - 700.0, abs=20.0)  # the 20k one, not the 5k one
    assert row.negative_transfer is True


def test_a_robot_changed_from_the_registered_one_gets_no_published_reference() -> None:
    from sim2real.envs.registry import resolve_env

    standard = build_report(planted(adapted_target=700.0), env=resolve_env("hopper"), target="t")
    assert standard.env == "hopper" and all(row.reference_score is not None for row in standard.policies)
    short = build_report(planted(adapted_target=700.0), env=resolve_env("hopper", max_episode_steps=200), target="t")
    assert all(row.reference_score is None for row in short.policies)  # 200-step returns against a 1000-step expert
    assert any("episodes last 200 steps, not the registered 1000" in w for w in short.warnings)


def test_a_scratch_run_of_another_budget_is_not_the_bar() -> None:
    evaluated = planted(adapted_target=250.0)
    evaluated[3] = EvaluatedPolicy("scratch_50000", "scratch", returns(250, seed=7), returns(400, seed=8),
                                   target_steps_used=50_000, budget=50_000)
    report = build_report(evaluated, env="e", target="t")
    adapted = report.policy("adapted")
    assert "scratch" not in adapted.versus  # 50,000 steps from scratch say nothing about a 20,000-step budget
    assert any("no from-scratch baseline with the budget of adapted (20000)" in w for w in report.warnings)
