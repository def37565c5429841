"""Aggregating a sweep's reports across runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim2real.pipeline.aggregate import aggregate_reports, find_reports, write_aggregate
from tests.pipeline.test_gate import row


def write_sweep(root: Path, finetune_targets: list[float], budget: int = 1000) -> None:
    for i, target in enumerate(finetune_targets):
        folder = root / f"{i}__seed{i}" / "report"
        folder.mkdir(parents=True)
        finetune = row("finetune", "policy", 1000, target) | {"method": "finetune", "budget": budget}
        report = {"env": "hopper", "target": "heavy", "policies": [row("zero_shot_source", "zero_shot", 1000, 500), finetune]}
        (folder / "report.json").write_text(json.dumps(report))


def test_groups_by_policy_and_summarizes_across_runs(tmp_path: Path) -> None:
    write_sweep(tmp_path, [700, 800, 900])
    aggregate = aggregate_reports(find_reports(tmp_path))
    assert aggregate["n_runs"] == 3
    rows = {r["name"]: r for r in aggregate["policies"]}
    finetune = rows["finetune"]["target_return"]
    assert finetune["mean"] == pytest.approx(800)
    # Student-t over the three runs' means: 800 +- t(0.975, 2) * 100 / sqrt(3) (a bootstrap stops at 700..900)
    assert finetune["ci_low"] == pytest.approx(800 - 248.4, abs=0.1)
    assert finetune["ci_high"] == pytest.approx(800 + 248.4, abs=0.1)
    zero_shot = rows["zero_shot_source"]["target_return"]
    assert zero_shot["ci_low"] == zero_shot["ci_high"] == 500  # identical runs: no spread


def test_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    write_sweep(tmp_path / "a", [700, 800], budget=1000)
    write_sweep(tmp_path / "b", [850, 950], budget=2000)
    aggregate = write_aggregate(tmp_path)
    assert (tmp_path / "aggregate.json").is_file()
    assert "| hopper | heavy | finetune | 2000 | 2 |" in (tmp_path / "aggregate.md").read_text()
    assert any(p.endswith("aggregate_sample_efficiency.png") for p in aggregate["plots"])
    assert all(Path(p).stat().st_size > 1000 for p in aggregate["plots"])


def test_bar_chart_states_the_aggregate_confidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sim2real.evaluation import plots
    from sim2real.pipeline.aggregate import plot_aggregate

    write_sweep(tmp_path, [700, 800, 900])
    labels: list[str] = []
    save = plots._save

    def save_and_read_labels(figure, path, tight=True):  # noqa: ANN001, ANN202
        labels.extend(axes.get_ylabel() for axes in figure.axes)
        return save(figure, path, tight)

    monkeypatch.setattr(plots, "_save", save_and_read_labels)
    plot_aggregate(aggregate_reports(find_reports(tmp_path), confidence=0.9), tmp_path)
    assert "target return (mean over runs, 90% CI)" in labels


def test_no_reports_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no report.json under"):
        find_reports(tmp_path)
