"""The Hydra entry point scripts/evaluate.py: a report from the command line, clear errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def run_script(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), *overrides], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_script_writes_the_report_and_prints_the_table(ppo_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_script(f"policies=[{ppo_run}]", "names=[dr]", "target=heavy", "episodes=2", "seeds=1", "workers=1",
                      "eval.similarity=null", "eval.resamples=200", f"hydra.run.dir={out}")
    assert done.returncode == 0, done.stderr
    assert "| dr | policy | yes | – | 0 | 0 |" in done.stdout and "| random | random | – | – | 0 | 0 |" in done.stdout
    data = json.loads((out / "report.json").read_text())
    assert data["target"] == "heavy" and data["episodes"] == 2 and data["seeds"] == 1
    assert (out / "report.md").is_file() and (out / "returns.png").is_file()


def test_script_rejects_bad_input_with_a_clear_message(tmp_path: Path) -> None:
    done = run_script(f"policies=[{tmp_path}]", "target=heavy", f"hydra.run.dir={tmp_path / 'o'}")
    assert done.returncode != 0 and "is not a run folder" in done.stderr
    assert not (tmp_path / "o" / "report.json").exists()
