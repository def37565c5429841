"""Cross-task aggregates over planted reports: envs x targets x seeds, per method."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sim2real.pipeline.aggregate import aggregate_reports, find_reports, write_aggregate
from tests.pipeline.test_gate import row

TASKS = [("hopper", "low_friction"), ("hopper", "high_gravity"), ("walker2d", "low_friction")]
# Reference scores (percent) per method: dagger > finetune > scratch on every task.
LEVELS = {"finetune": 40.0, "dagger": 80.0, "scratch": 10.0, "zero_shot": 30.0}


def planted_row(name: str, role: str, method: str | None, score: float, expert_free: bool | None) -> dict:
    return row(name, role, 1000, 10 * score) | {"method": method, "budget": 2000 if role != "zero_shot" else None,
                                                "reference_score": score, "expert_free": expert_free,
                                                "target_steps_used": 2000, "target_steps_incl_expert": 2000}


def write_reports(root: Path, seeds: int = 3, with_reference: bool = True) -> None:
    rng = np.random.default_rng(0)
    for env, target in TASKS:
        for seed in range(seeds):
            noise = lambda: float(rng.normal(0, 5))  # noqa: E731
            rows = [planted_row("zero_shot_source", "zero_shot", None, LEVELS["zero_shot"] + noise(), True),
                    planted_row("finetune", "policy", "finetune", LEVELS["finetune"] + noise(), True),
                    planted_row("dagger", "policy", "dagger", LEVELS["dagger"] + noise(), False),
                    planted_row("scratch_2000", "scratch", None, LEVELS["scratch"] + noise(), None)]
            if not with_reference:
                for entry in rows:
                    entry["reference_score"] = None
            folder = root / f"{env}_{target}_{seed}" / "report"
            folder.mkdir(parents=True)
            (folder / "report.json").write_text(json.dumps({"env": env, "target": target, "policies": rows}))


def test_aggregates_per_method_across_tasks(tmp_path: Path) -> None:
    write_reports(tmp_path)
    across = aggregate_reports(find_reports(tmp_path), resamples=300)["cross_task"]
    assert across["tasks"] == sorted(f"{env}/{target}" for env, target in TASKS)
    methods = across["methods"]
    assert set(methods) == {"zero_shot", "finetune", "dagger", "scratch"}
    for label, level in LEVELS.items():
        entry = methods[label]
        assert entry["tasks"] == 3 and entry["runs"] == 9
        assert entry["mean"]["value"] == pytest.approx(level / 100, abs=0.05)
        for name in ("iqm", "median", "mean", "optimality_gap"):
            assert entry[name]["ci_low"] <= entry[name]["value"] <= entry[name]["ci_high"]
    assert methods["dagger"]["expert_free"] is False and methods["finetune"]["expert_free"] is True
    dagger = methods["dagger"]["improvement"]
    assert dagger["over_finetune"]["value"] == 1.0 and dagger["over_scratch"]["value"] == 1.0
    assert methods["scratch"]["improvement"]["over_finetune"]["value"] == 0.0
    assert "over_finetune" not in methods["finetune"]["improvement"]  # not compared with itself
    assert methods["dagger"]["optimality_gap"]["value"] == pytest.approx(0.2, abs=0.05)


def test_writes_the_table_and_the_performance_profile(tmp_path: Path) -> None:
    write_reports(tmp_path)
    aggregate = write_aggregate(tmp_path)
    assert any(p.endswith("performance_profile.png") for p in aggregate["plots"])
    assert (tmp_path / "performance_profile.png").stat().st_size > 1000
    markdown = (tmp_path / "aggregate.md").read_text()
    assert "| method | expert-free | tasks | runs | IQM | median | mean | optimality gap | P(> finetune) | P(> scratch) |" \
        in markdown
    assert "| dagger | **no** | 3 | 9 | " in markdown and "| finetune | yes | 3 | 9 | " in markdown
    profile = aggregate["cross_task"]["profile"]
    assert len(profile["tau"]) == len(profile["methods"]["dagger"]["fraction"])


def test_tasks_without_reference_are_left_out_with_a_warning(tmp_path: Path) -> None:
    write_reports(tmp_path / "a", seeds=1)
    folder = tmp_path / "b" / "report"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"env": "reacher", "target": "heavy", "policies": [
        planted_row("finetune", "policy", "finetune", 0.0, True) | {"reference_score": None}]}))
    aggregate = aggregate_reports(find_reports(tmp_path), resamples=50)
    assert aggregate["cross_task"]["excluded_tasks"] == ["reacher/heavy"]
    assert any("left out of the cross-task aggregates: reacher/heavy" in w for w in aggregate["warnings"])


def test_gap_closed_averages_only_where_defined(tmp_path: Path) -> None:
    for seed, closed in enumerate([0.5, None, 0.7]):
        folder = tmp_path / str(seed) / "report"
        folder.mkdir(parents=True)
        finetune = row("finetune", "policy", 1000, 500 + seed) | {"method": "finetune", "budget": 2000,
                                                                   "gap_closed": closed}
        (folder / "report.json").write_text(json.dumps({"env": "hopper", "target": "high_gravity",
                                                        "policies": [finetune]}))
    aggregate = write_aggregate(tmp_path)
    finetune = aggregate["policies"][0]
    assert finetune["gap_closed"] == pytest.approx(0.6) and finetune["gap_closed_runs"] == 2
    assert "60% (2/3 runs)" in (tmp_path / "aggregate.md").read_text()


def test_a_method_at_one_budget_is_compared_with_fine_tuning_of_that_budget(tmp_path: Path) -> None:
    # Fine-tuning swept at two budgets, sysid at one: sysid still gets its same-budget comparison, and a
    # budget fine-tuning never ran at is named, not dropped silently.
    for seed in range(2):
        rows = [planted_row("finetune", "policy", "finetune", 40.0 + seed, True),
                planted_row("sysid", "policy", "sysid", 90.0 + seed, True),
                planted_row("dann", "policy", "dann", 10.0 + seed, True)]
        rows[2]["budget"] = 5000
        for budget in (2000, 4000):
            rows[0] = rows[0] | {"budget": budget}
            folder = tmp_path / f"b{budget}_s{seed}" / "report"
            folder.mkdir(parents=True)
            (folder / "report.json").write_text(json.dumps({"env": "hopper", "target": "heavy", "policies": rows}))
    aggregate = aggregate_reports(find_reports(tmp_path), resamples=200)
    methods = aggregate["cross_task"]["methods"]
    assert set(methods) == {"finetune@2000", "finetune@4000", "sysid@2000", "dann@5000"}
    assert methods["sysid@2000"]["improvement"]["over_finetune"]["versus"] == "finetune@2000"
    assert methods["sysid@2000"]["improvement"]["over_finetune"]["value"] == 1.0
    assert "over_finetune" not in methods["dann@5000"]["improvement"]
    assert any("'dann@5000' is compared with no finetune run" in w for w in aggregate["warnings"])
