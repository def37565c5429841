"""The transfer-gap gate on planted reports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim2real.pipeline.gate import GateThresholds, check_report
from tests.conftest import REPO


def check_gap(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Runs scripts/check_gap.py's main in-process: (exit code, stdout, stderr)."""
    spec = importlib.util.spec_from_file_location("check_gap_script", REPO / "scripts" / "check_gap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(args)
    out, err = capsys.readouterr()
    return code, out, err


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


@pytest.mark.parametrize("flag", ["--max-gap", "--max-gap-pct", "--min-normalized-score", "--min-target-return",
                                  "--min-reference-score", "--min-gap-closed"])
def test_a_nan_threshold_is_refused_not_passed(tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT))
    code, out, err = check_gap([str(path), flag, "nan"], capsys)
    assert code == 2 and "passed" not in out
    assert f"{flag}=nan must be a finite number" in err
    with pytest.raises(ValueError, match="must be a finite number"):
        GateThresholds(max_gap=float("inf"))


@pytest.mark.parametrize(("content", "message"), [
    ("[]", "not an evaluator report: a JSON list"),
    ('{"policies": []}', "its 'policies' list is empty"),
    ('{"policies": [{"name": "a"}]}', "policies[0] ('a') has no number at gap.mean"),
    ('{"env": "hopper", "polic', "is not readable JSON"),
])
def test_unusable_reports_exit_2(tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "report.json"
    path.write_text(content)
    code, _, err = check_gap([str(path), "--max-gap", "1"], capsys)
    assert code == 2 and message in err
    if "readable" in message:
        assert str(path) in err  # the file is named


def test_no_negative_transfer_verdict_fails_and_adaptation_metrics_skip_the_zero_shot_row() -> None:
    """A row without a verdict (a truncated report, or no baseline to judge against) cannot pass
    --forbid-negative-transfer; gap closed and negative transfer are about adapted policies, so the zero-shot
    row (no verdict, no gap closed by definition) is not failed on them."""
    unjudged = {k: v for k, v in row("dann", "policy", 300, 320).items() if k != "negative_transfer"}
    failures = check_report({"policies": [unjudged]}, GateThresholds(forbid_negative_transfer=True))
    assert failures == ["dann: no negative-transfer verdict in the report (it needs the zero-shot source or a "
                        "same-budget from-scratch run among the baselines), so the gate cannot pass it"]
    zero_shot = row("zero_shot_source", "zero_shot", 1000, 600) | {"negative_transfer": None, "gap_closed": None}
    closed = row("finetune", "policy", 1000, 900) | {"gap_closed": 0.75}
    report = {"policies": [zero_shot, closed]}
    assert check_report(report, GateThresholds(forbid_negative_transfer=True, min_gap_closed=0.5)) == []
    assert check_report(report, GateThresholds(min_gap_closed=0.8)) == [
        "finetune: gap closed 0.75 is below --min-gap-closed 0.8"]
    # a baseline named on purpose (an oracle, a from-scratch run) is no adaptation either
    oracle = row("oracle", "oracle", 900, 950) | {"negative_transfer": None, "gap_closed": None}
    assert check_report({"policies": [oracle, closed]}, GateThresholds(forbid_negative_transfer=True,
                                                                     min_gap_closed=0.5), ["oracle"]) == []


def test_an_undefined_metric_fails_its_threshold_with_the_reason() -> None:
    reason = "the oracle 'oracle' does not beat 'zero_shot_source' significantly on the target"
    bc = row("bc", "policy", 300, 337.5) | {"gap_closed": None, "undefined": {"gap_closed": reason,
                                                                                "normalized_score": reason}}
    report = {"policies": [bc]}
    failures = check_report(report, GateThresholds(min_gap_closed=0.5, min_normalized_score=10))
    assert failures == [f"bc: normalized score is undefined, so the gate cannot pass it: {reason}",
                        f"bc: gap closed is undefined, so the gate cannot pass it: {reason}"]
    # The fixed reference score stays defined, so a gate can use it instead.
    assert check_report({"policies": [bc | {"reference_score": 11.2}]}, GateThresholds(min_reference_score=10)) == []
    assert check_report({"policies": [bc | {"reference_score": 11.2}]}, GateThresholds(min_reference_score=20))


def test_undefined_metric_exits_1_not_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bc = row("bc", "policy", 300, 337.5) | {"gap_closed": None, "undefined": {"gap_closed": "weak oracle"}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"policies": [bc]}))
    code, _, err = check_gap([str(path), "--min-gap-closed", "0.5"], capsys)
    assert code == 1 and "gap closed is undefined" in err and "weak oracle" in err
