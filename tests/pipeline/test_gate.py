"""The transfer-gap gate on planted reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim2real.pipeline.gate import GateThresholds, check_report
from tests.conftest import REPO


def summary(mean: float, half: float = 5.0) -> dict:
    return {"mean": mean, "std": 1.0, "iqm": mean, "ci_low": mean - half, "ci_high": mean + half, "n": 10}


def row(name: str, role: str, source: float, target: float, score: float | None = None, negative: bool = False) -> dict:
    return {"name": name, "role": role, "source_return": summary(source), "target_return": summary(target),
            "gap": summary(source - target), "normalized_score": score, "negative_transfer": negative}


REPORT = {"env": "hopper", "target": "heavy", "policies": [
    row("zero_shot_source", "zero_shot", 1000, 600, 40.0),
    row("finetune", "policy", 1000, 900, 85.0),
    row("random", "random", 10, 10, 0.0),
]}


def test_gate_passes_within_thresholds() -> None:
    assert check_report(REPORT, GateThresholds(max_gap=150), ["finetune"]) == []


def test_gate_reports_each_violation_readably() -> None:
    failures = check_report(REPORT, GateThresholds(max_gap=150, min_normalized_score=50))
    assert failures == [
        "zero_shot_source: transfer gap 400.0 exceeds --max-gap 150 (source 1000.0, target 600.0)",
        "zero_shot_source: normalized score 40.0 is below --min-normalized-score 50",
    ]


def test_conservative_uses_interval_bounds() -> None:
    assert check_report(REPORT, GateThresholds(max_gap=102), ["finetune"]) == []
    assert check_report(REPORT, GateThresholds(max_gap=102, conservative=True), ["finetune"])


def test_negative_transfer_and_percent_gap() -> None:
    report = {"policies": [row("bc", "policy", 1000, 700, negative=True)]}
    failures = check_report(report, GateThresholds(max_gap_pct=20, forbid_negative_transfer=True))
    assert len(failures) == 2 and "30.0% of the source return" in failures[0] and "negative transfer" in failures[1]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="no threshold given"):
        GateThresholds()
    with pytest.raises(ValueError, match="policies \\['nope'\\] are not in the report; it has: zero_shot_source"):
        check_report(REPORT, GateThresholds(max_gap=1), ["nope"])
    with pytest.raises(ValueError, match="not an evaluator report"):
        check_report({"rows": []}, GateThresholds(max_gap=1))


def test_script_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT))
    script = [sys.executable, str(REPO / "scripts" / "check_gap.py"), str(path)]
    ok = subprocess.run([*script, "--max-gap", "500"], capture_output=True, text=True)
    bad = subprocess.run([*script, "--max-gap", "150"], capture_output=True, text=True)
    unusable = subprocess.run([*script], capture_output=True, text=True)
    assert ok.returncode == 0 and "passed" in ok.stdout
    assert bad.returncode == 1 and "zero_shot_source: transfer gap 400.0 exceeds --max-gap 150" in bad.stderr
    assert unusable.returncode == 2 and "no threshold given" in unusable.stderr
