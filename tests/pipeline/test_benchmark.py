"""The benchmark suite: suites load and are checked, sweeps are Hydra multiruns in fixed folders, the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim2real.pipeline.benchmark import leaderboard_rows, load_suite, run_suite, sweeps, write_leaderboard
from tests.pipeline.test_aggregate_cross_task import write_reports

TINY = """
tiny:
  seeds: [0]
  methods: [finetune, darc]
  pipeline: [source.timesteps=3000, oracle_timesteps=3000, budget=1000, episodes=2, eval_seeds=1, workers=1,
             zero_shot_episodes=2, export=false, source.progress_bar=false, +method_settings.darc.source_ratio=2,
             +method_settings.darc.warmup_steps=500, +method_settings.darc.train_every=200]
  envs:
    inverted_pendulum:
      shifts:
        gravity_x2: {kind: gravity, parameters: {gravity: 2.0}}
        rail_x0.5: {kind: kinematic, parameters: {slider_range: 0.5}}
"""


def test_shipped_suites_load() -> None:
    small, full = load_suite("small"), load_suite("full")
    assert {env.env for env in small.envs} == {"inverted_double_pendulum"}  # the pendulum's shifts are no-ops
    assert "darc" in small.methods and "darc" in full.methods
    kinds = {shift.kind for env in full.envs for shift in env.shifts}
    assert set(kinds) == {"friction", "gravity", "kinematic", "morphology"}
    assert {shift.kind for env in small.envs for shift in env.shifts} == {"kinematic", "morphology"}
    assert small.cells == 4


def test_sweeps_are_multiruns_in_fixed_folders(tmp_path: Path) -> None:
    suite = load_suite("small")
    commands = sweeps(suite, tmp_path, ["hydra/launcher=slurm"])
    assert len(commands) == 2
    first = commands[0].argv
    assert first[2] == "-m" and "seed=0,1" in first and "methods=[finetune,sysid,darc,bc]" in first
    assert "+target.parameters.slider_range={op:scale,value:0.5}" in first and "target.name=rail_x0.5" in first
    assert f"hydra.sweep.dir={tmp_path / 'inverted_double_pendulum' / 'rail_x0.5'}" in first
    assert "hydra.sweep.subdir=seed${seed}" in first and "hydra/launcher=slurm" in first
    # The first shift trains each seed's source policy; the env's other shifts reuse it.
    assert not [a for a in first if a.startswith("source_run=")]
    shared = f"source_run={tmp_path / 'inverted_double_pendulum' / 'rail_x0.5'}/seed${{seed}}/source"
    assert all(shared in command.argv for command in commands[1:])


def test_an_envs_own_overrides_replace_the_suites(tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(TINY.replace("    inverted_pendulum:\n", "    inverted_pendulum:\n      pipeline: [source.timesteps=5000]\n"))
    argv = sweeps(load_suite("tiny", path), tmp_path)[0].argv
    assert [a for a in argv if a.startswith("source.timesteps=")] == ["source.timesteps=5000"]  # Hydra refuses twice


@pytest.mark.parametrize(("suite", "message"), [
    ("s: {seeds: [0], methods: [finetune], envs: {hopper: {shifts: {x: {kind: size, parameters: {a: 2}}}}}}",
     "kind='size' is not valid"),
    ("s: {seeds: [0], methods: [finetune], envs: {hopper: {shifts: {x: {kind: gravity, parameters: {gravity: -1}}}}}}",
     "gravity=-1 must be a number > 0"),
    ("s: {seeds: [0], methods: [finetune], envs: {hopper: {shifts: {x: {kind: gravity, parameters: {}}}}}}",
     "scales no parameter"),
    ("s: {seed: [0]}", "unknown keys \\['seed'\\]"),
])
def test_bad_suites_are_refused(tmp_path: Path, suite: str, message: str) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(suite)
    with pytest.raises(ValueError, match=message):
        load_suite("s", path)
    with pytest.raises(ValueError, match="size='nope' is not valid; valid: s"):
        load_suite("nope", path)


def test_leaderboard_ranks_expert_free_methods_first(tmp_path: Path) -> None:
    write_reports(tmp_path)
    board = write_leaderboard(tmp_path, "planted")
    rows = leaderboard_rows(board["aggregate"])
    assert [(r["method"], r["group"]) for r in rows] == [
        ("finetune", "expert-free"), ("dagger", "expert-assisted"), ("zero_shot", "baseline"), ("scratch", "baseline")]
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert markdown.startswith("# Leaderboard: benchmark suite 'planted'") and "| 1 | finetune | expert-free |" in markdown
    assert json.loads((tmp_path / "leaderboard.json").read_text())["leaderboard"][0]["method"] == "finetune"
    assert (tmp_path / "performance_profile.png").is_file()


@pytest.mark.slow
def test_tiny_suite_runs_resumes_and_writes_the_leaderboard(tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(TINY)
    suite = load_suite("tiny", path)
    out = tmp_path / "out"
    lines: list[str] = []
    assert run_suite(suite, out, printer=lines.append) == []
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("report.json")) == [
        "inverted_pendulum/gravity_x2/seed0/report/report.json", "inverted_pendulum/rail_x0.5/seed0/report/report.json"]
    # the second shift evaluated the first shift's source policy instead of training its own
    assert (out / "inverted_pendulum" / "gravity_x2" / "seed0" / "source").is_dir()
    assert not (out / "inverted_pendulum" / "rail_x0.5" / "seed0" / "source").exists()
    report = json.loads((out / "inverted_pendulum" / "gravity_x2" / "seed0" / "report" / "report.json").read_text())
    assert report["target"] == "gravity_x2" and report["reference_scores"]["measured"]
    board = write_leaderboard(out, "tiny")
    assert {row["method"] for row in board["leaderboard"]} >= {"finetune", "darc", "zero_shot", "oracle"}
    before = (out / "inverted_pendulum" / "gravity_x2" / "seed0" / "report" / "report.json").stat().st_mtime_ns
    assert run_suite(suite, out, printer=lines.append) == []  # resumes: every stage complete, nothing redone
    assert (out / "inverted_pendulum" / "gravity_x2" / "seed0" / "report" / "report.json").stat().st_mtime_ns == before
