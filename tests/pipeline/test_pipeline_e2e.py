"""The pipeline end to end with tiny budgets: stages, report, export, gate, resume, sweeps (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TINY = [
    "env=inverted_pendulum", "source.timesteps=3000", "source.progress_bar=false", "oracle_timesteps=3000",
    "budget=2000", "episodes=2", "eval_seeds=2", "workers=2", "zero_shot_episodes=2",
    "+method_settings.dann.source_states=2000", "+method_settings.dann.updates_per_round=100",
    "+method_settings.dann.probe_updates=100", "+method_settings.bc.epochs=5", "+method_settings.dagger.epochs=5",
]


def pipeline(*overrides: str, timeout: int = 900) -> subprocess.CompletedProcess:
    flags = [o for o in overrides if o.startswith("-")]
    overrides = tuple(o for o in overrides if not o.startswith("-"))
    return subprocess.run([sys.executable, str(REPO / "scripts" / "pipeline.py"), *flags, *TINY, *overrides],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.mark.slow
def test_default_pipeline_end_to_end_and_resume(tmp_path: Path) -> None:
    first = pipeline(f"hydra.run.dir={tmp_path}")
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    roles = {row["name"]: row["role"] for row in report["policies"]}
    assert roles["zero_shot_source"] == "zero_shot"
    assert {"finetune", "bc", "dagger", "dann"} <= set(roles)
    assert {"random", "oracle", "scratch"} <= set(roles.values())
    for row in report["policies"]:
        if row["role"] == "policy":
            assert 0 < row["target_steps_used"] <= 2000
    bundle = json.loads((tmp_path / "export" / "bundle" / "bundle.json").read_text())
    assert bundle["parity"]
    assert "| policy |" in first.stdout and "export/bundle" in first.stdout
    # a rerun skips every complete stage
    second = pipeline(f"hydra.run.dir={tmp_path}")
    assert second.returncode == 0
    assert second.stdout.count("skip (complete)") == first.stdout.count("run:")
    # and the gate reads the report
    gate = subprocess.run([sys.executable, str(REPO / "scripts" / "check_gap.py"), str(tmp_path / "report" / "report.json"),
                           "--max-gap", "1e9"], capture_output=True, text=True)
    assert gate.returncode == 0, gate.stderr


@pytest.mark.slow
def test_a_distilled_student_is_evaluated_beside_the_methods(tmp_path: Path) -> None:
    result = pipeline("methods=[finetune]", "oracle_timesteps=0", "export=false",
                      "student={teacher_timesteps:3000,history:2,iterations:2,steps_per_iteration:500,epochs:2,"
                      "eval_episodes:0}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads((tmp_path / "report" / "report.json").read_text())["policies"]}
    student = rows["student"]
    assert student["role"] == "policy" and student["target_steps_used"] == 0 and student["expert_free"] is not False
    assert json.loads((tmp_path / "teacher" / "metadata.json").read_text())["policy"]["privileged"] == "actor"
    assert json.loads((tmp_path / "student" / "metadata.json").read_text())["env"]["history"] == 2


@pytest.mark.slow
def test_multirun_with_local_parallel_launcher_and_aggregate(tmp_path: Path) -> None:
    sweep = pipeline("-m", "seed=0,1", "methods=[finetune]", "oracle_timesteps=2000", "export=false",
                     f"hydra.sweep.dir={tmp_path}")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    reports = sorted(tmp_path.rglob("report.json"))
    assert len(reports) == 2
    aggregated = subprocess.run([sys.executable, str(REPO / "scripts" / "aggregate.py"), str(tmp_path)],
                                capture_output=True, text=True, timeout=300)
    assert aggregated.returncode == 0, aggregated.stderr
    rows = {r["name"]: r for r in json.loads((tmp_path / "aggregate.json").read_text())["policies"]}
    assert rows["finetune"]["n_runs"] == 2


@pytest.mark.slow
def test_submitit_local_executor_runs_a_sweep(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = pipeline("-m", "hydra/launcher=submitit_local_small", "seed=0", "methods=[finetune]",
                     "oracle_timesteps=2000", "export=false", f"hydra.sweep.dir={tmp_path}")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert len(list(tmp_path.rglob("report.json"))) == 1


@pytest.mark.slow
def test_ray_launcher_runs_a_sweep_on_a_local_ray_instance(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher (and ray) not installed")
    sweep = pipeline("-m", "hydra/launcher=ray_cluster", "seed=0", "methods=[finetune]", "oracle_timesteps=0",
                     "export=false", f"hydra.sweep.dir={tmp_path}")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert len(list(tmp_path.rglob("report.json"))) == 1
