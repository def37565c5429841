"""Oracle-relative metrics only where the oracle beats its references; expert accounting; reference scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim2real.evaluation.provenance import ExpertUse
from sim2real.evaluation.report import EvaluatedPolicy, build_report, format_markdown, write_report
from sim2real.presets import target_spec

SHAPE = (3, 10)
ORACLE_EXPERT = ExpertUse("expert", "runs/hopper/baselines/oracle", None, 151_552, False,
                          "trained 151552 steps on the target")


def returns(mean: float, noise: float = 10.0, seed: int = 0) -> np.ndarray:
    return mean + np.random.default_rng(seed).normal(0.0, noise, size=SHAPE)


def centred(mean: float, seed: int) -> np.ndarray:
    """Returns whose mean is exactly ``mean`` (planted numbers reproduce the measured ones)."""
    values = returns(0.0, seed=seed)
    return values - values.mean() + mean


def hopper_high_gravity() -> list[EvaluatedPolicy]:
    """The measured Hopper ``high_gravity`` case: zero-shot 393, oracle 338, BC 337.5 (its expert: the oracle)."""
    return [
        EvaluatedPolicy("zero_shot_source", "zero_shot", centred(1003, 1), centred(393, 2), run_dir="runs/dr"),
        EvaluatedPolicy("finetune", "policy", centred(990, 3), centred(400, 4), run_dir="runs/ft",
                        target_steps_used=6_000, budget=6_000, method="finetune", zero_shot="zero_shot_source"),
        EvaluatedPolicy("bc", "policy", centred(300, 5), centred(337.5, 6), run_dir="runs/bc", target_steps_used=6_000,
                        budget=6_000, method="bc", zero_shot="zero_shot_source", expert=ORACLE_EXPERT),
        EvaluatedPolicy("random", "random", centred(20, 7), centred(10, 8)),
        EvaluatedPolicy("scratch_6000", "scratch", centred(100, 9), centred(120, 10), target_steps_used=6_144,
                        budget=6_000),
        EvaluatedPolicy("oracle", "oracle", centred(900, 11), centred(338, 12), target_steps_used=151_552),
    ]


def test_hopper_high_gravity_reports_no_gap_closed_when_the_oracle_is_weaker_than_zero_shot(tmp_path) -> None:
    report = build_report(hopper_high_gravity(), env="hopper", target="high_gravity",
                          target_spec=target_spec("high_gravity").to_dict())
    bc = report.policy("bc")
    # The bug this replaces: (337.5 - 393) / (338 - 393) = 1.01, "gap closed" on a negative transfer.
    assert bc.target_return.mean == pytest.approx(337.5)
    assert bc.gap_closed is None and bc.normalized_score is None
    assert bc.negative_transfer is True
    assert "does not beat 'zero_shot_source' significantly" in bc.undefined["gap_closed"]
    assert all(row.gap_closed is None and row.normalized_score is None for row in report.policies)
    warning = next(w for w in report.warnings if "undefined" in w)
    assert "gap closed and normalized score undefined" in warning and "train it longer" in warning
    assert "oracle 338.0 - zero_shot_source 393.0 = -55.0" in warning
    assert report.context["oracle_margins"]["zero_shot_source"]["significant"] is False
    _, md_path = write_report(report, tmp_path)
    markdown = md_path.read_text()
    bc_line = next(line for line in markdown.splitlines() if line.startswith("| bc |"))
    cells = [c.strip() for c in bc_line.strip("|").split("|")]
    assert cells[9] == "–" and cells[11] == "–" and cells[12] == "**yes**"  # normalized, gap closed, negative
    assert "1.01" not in bc_line
    data = json.loads((tmp_path / "report.json").read_text())
    row = next(p for p in data["policies"] if p["name"] == "bc")
    assert row["gap_closed"] is None and "gap_closed" in row["undefined"]


def test_reference_score_is_defined_when_the_oracle_metrics_are_not() -> None:
    report = build_report(hopper_high_gravity(), env="hopper", target="high_gravity",
                          target_spec=target_spec("high_gravity").to_dict())
    # ODRL's hopper-gravity-2.0 pair: REF_MIN -26.336, REF_MAX 3234.3.
    expected = 100 * (337.5 + 26.3360015397715) / (3234.3 + 26.3360015397715)
    assert report.policy("bc").reference_score == pytest.approx(expected)
    assert report.context["reference_scores"]["shift"] == "gravity x2"
    assert "ODRL" in report.context["reference_scores"]["source"]
    assert "Reference score: 0 = random -26.336, 100 = expert 3234.3 for gravity x2" in format_markdown(report)


def test_a_significantly_better_oracle_gives_the_metrics_back() -> None:
    entries = hopper_high_gravity()
    entries[-1] = EvaluatedPolicy("oracle", "oracle", centred(900, 11), centred(1300, 12), target_steps_used=151_552)
    report = build_report(entries, env="hopper", target="heavy")
    bc = report.policy("bc")
    assert bc.gap_closed == pytest.approx((337.5 - 393) / (1300 - 393))
    assert bc.normalized_score == pytest.approx(100 * (337.5 - 10) / (1300 - 10))
    assert not any("undefined" in w for w in report.warnings)
    assert report.context["reference_scores"]["source"].startswith("D4RL")  # heavy is not one of ODRL's shifts


def test_an_oracle_within_noise_of_zero_shot_is_not_enough() -> None:
    entries = hopper_high_gravity()
    entries[-1] = EvaluatedPolicy("oracle", "oracle", centred(900, 11), centred(396, 12), target_steps_used=151_552)
    report = build_report(entries, env="hopper", target="high_gravity")
    margin = report.context["oracle_margins"]["zero_shot_source"]
    assert margin["ci_low"] <= 0 < margin["mean"]  # ahead on average, but not significantly
    assert report.policy("finetune").gap_closed is None


def test_an_oracle_no_better_than_random_leaves_the_normalized_score_out() -> None:
    entries = [
        EvaluatedPolicy("adapted", "policy", returns(50, seed=1), returns(40, seed=2), budget=1000, method="finetune"),
        EvaluatedPolicy("random", "random", returns(10, seed=3), returns(12, seed=4)),
        EvaluatedPolicy("oracle", "oracle", returns(10, seed=5), returns(11, seed=6)),
    ]
    report = build_report(entries, env="inverted_pendulum", target="heavy")
    assert report.policy("adapted").normalized_score is None
    assert "does not beat 'random' significantly" in report.policy("adapted").undefined["normalized_score"]


def test_expert_accounting_and_headline_among_expert_free_methods() -> None:
    report = build_report(hopper_high_gravity(), env="hopper", target="high_gravity")
    bc, finetune = report.policy("bc"), report.policy("finetune")
    assert bc.expert_free is False and finetune.expert_free is True
    assert bc.target_steps_incl_expert == 6_000 + 151_552 and finetune.target_steps_incl_expert == 6_000
    assert report.policy("oracle").expert_free is None  # a yardstick, not a method
    head = report.context["headline"]
    assert head["best_expert_free"] == "finetune" and head["expert_assisted"] == ["bc"]
    markdown = format_markdown(report)
    assert "| bc | policy | **no** | expert oracle (151552 target steps) | 6000 | 157552 |" in markdown
    assert "| finetune | policy | yes | – | 6000 | 6000 |" in markdown
    assert "best expert-free method: **finetune**" in markdown
    assert "  - bc: target return 337.5, 6000 target steps, 157552 incl. expert oracle" in markdown


def test_an_expert_assisted_method_never_takes_the_headline() -> None:
    entries = hopper_high_gravity()
    entries[2] = EvaluatedPolicy("bc", "policy", centred(300, 5), centred(3000, 6), target_steps_used=6_000,
                                 budget=6_000, method="bc", zero_shot="zero_shot_source", expert=ORACLE_EXPERT)
    head = build_report(entries, env="hopper", target="high_gravity").context["headline"]
    assert head["best_expert_free"] == "finetune"


def test_unknown_expert_cost_is_said_not_guessed() -> None:
    entries = hopper_high_gravity()
    entries[2].expert = ExpertUse("dataset", None, "demos.npz", None, False, "sidecar names no expert: cost unknown")
    report = build_report(entries, env="hopper", target="high_gravity")
    assert report.policy("bc").target_steps_incl_expert is None
    assert any("expert cost of bc is unknown" in w for w in report.warnings)
    assert "| bc | policy | **no** | dataset demos.npz (cost unknown) | 6000 | ? |" in format_markdown(report)


def test_env_without_reference_pair_says_so() -> None:
    entries = [EvaluatedPolicy("a", "policy", returns(-5), returns(-6))]
    report = build_report(entries, env="reacher", target="heavy")
    assert report.policy("a").reference_score is None
    assert any("no fixed reference returns for env 'reacher'" in w for w in report.warnings)
