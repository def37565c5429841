"""The source-policy return table's script: parallel runs, per-robot step counts, bad input refused first."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim2real.runs import load_metadata
from sim2real.training.callbacks import latest_checkpoint
from tests.conftest import REPO

SCRIPT = [sys.executable, str(REPO / "scripts" / "bench_returns.py")]


@pytest.mark.parametrize(("arguments", "message"), [
    (["--envs", "inverted_pendulum", "--steps", "inverted_pendulum=0"], "'inverted_pendulum=0': expected ENV=N"),
    (["--envs", "inverted_pendulum", "--steps", "pendulum=1000"], "'pendulum=1000': expected ENV=N with ENV one of"),
    (["--envs", "inverted_pendulum", "--steps", "hopper=1000"], "--steps names ['hopper'], which --envs"),
    (["--envs", "inverted_pendulum", "--jobs", "0"], "--jobs=0 must be >= 1"),
    (["--envs", "inverted_pendulum", "--seeds", "0", "0"], "--seeds [0, 0] repeats a value"),
    (["--envs", "inverted_pendulum", "--steps", "inverted_pendulum=500"], "was trained for 1,024 steps, more than "
                                                                          "the inverted_pendulum=500 asked"),
    (["--envs", "inverted_pendulum", "--steps", "inverted_pendulum=1²"], "'inverted_pendulum=1²': expected ENV=N"),
    (["--envs", "inverted_pendulum", "--steps", "inverted_pendulum=9", "inverted_pendulum=8"],
     "--steps names inverted_pendulum twice"),
    (["--envs", "inverted_pendulum", "--seeds", "0", "1", "--steps", "inverted_pendulum=1024", "--evaluate-only"],
     "not finished at the steps asked: " + "{out}/inverted_pendulum/seed_1: no run there"),
    (["--envs", "inverted_pendulum", "--seeds", "0", "--steps", "inverted_pendulum=2048", "--evaluate-only"],
     "seed_0: finished at 1,024 steps; run without --evaluate-only to train them"),
])
def test_bad_arguments_are_refused_before_any_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], arguments: list[str],
                                                  message: str) -> None:
    spec = importlib.util.spec_from_file_location("bench_returns_script", SCRIPT[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    out = tmp_path / "out"
    held = out / "inverted_pendulum" / "seed_0"  # a finished run of 1,024 steps
    held.mkdir(parents=True)
    (held / "metadata.json").write_text(json.dumps({"complete": True, "timesteps": 1024, "timesteps_done": 1024}))
    before = sorted(out.rglob("*"))
    monkeypatch.setattr(sys, "argv", [SCRIPT[1], *arguments, "--out", str(out)])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 2 and message.format(out=out) in capsys.readouterr().err
    assert sorted(out.rglob("*")) == before


def test_two_seeds_train_at_once_each_into_its_own_folder_and_log(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run([*SCRIPT, "--envs", "inverted_pendulum", "--seeds", "0", "1", "--episodes", "2",
                             "--steps", "inverted_pendulum=1024", "--jobs", "2", "--out", str(out)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    for seed in (0, 1):
        run = out / "inverted_pendulum" / f"seed_{seed}"
        meta = load_metadata(run)
        assert meta["complete"] and meta["seed"] == seed and meta["timesteps_done"] >= 1024
        assert "/1024 steps" in (out / "inverted_pendulum" / f"seed_{seed}.log").read_text()
    rows = json.loads((out / "returns.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["timesteps"] == 1024 and rows[0]["seeds"] == 2
    assert len(rows[0]["seed_means"]) == 2 and rows[0]["interval"] == "student-t over seeds"
    assert "| inverted_pendulum | ppo | 1,024 |" in (out / "returns.md").read_text()
    # the same command again reuses both runs (PPO may end past the asked steps, on a whole rollout)
    logs = [(out / "inverted_pendulum" / f"seed_{seed}.log").read_text() for seed in (0, 1)]
    again = subprocess.run(result.args, capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [(out / "inverted_pendulum" / f"seed_{seed}.log").read_text() for seed in (0, 1)] == logs
    assert json.loads((out / "returns.json").read_text())["rows"][0]["seed_means"] == rows[0]["seed_means"]
    evaluated = subprocess.run([*result.args, "--evaluate-only"], capture_output=True, text=True, cwd=REPO)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert [(out / "inverted_pendulum" / f"seed_{seed}.log").read_text() for seed in (0, 1)] == logs
    assert json.loads((out / "returns.json").read_text())["rows"][0]["seed_means"] == rows[0]["seed_means"]


def test_a_sigterm_to_the_script_stops_its_training_with_a_checkpoint(tmp_path: Path) -> None:
    """`kill PID` reaches the script alone (Ctrl-C reaches the whole process group): it passes the signal on,
    so the training child saves a checkpoint and exits instead of training on as an orphan."""
    out = tmp_path / "out"
    run = out / "inverted_pendulum" / "seed_0"
    bench = subprocess.Popen([*SCRIPT, "--envs", "inverted_pendulum", "--seeds", "0", "--steps",
                              "inverted_pendulum=1000000", "--out", str(out)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)  # its own group: the signal goes to the script alone
    try:
        deadline = time.monotonic() + 120
        while load_metadata_or_empty(run).get("timesteps_done") is None:  # recorded as training begins
            assert bench.poll() is None and time.monotonic() < deadline, bench.stdout.read() if bench.stdout else ""
            time.sleep(0.2)
        time.sleep(3)  # well into model.learn
        bench.send_signal(signal.SIGTERM)
        output, _ = bench.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):  # nothing of it outlives the test, whatever happened
            os.killpg(bench.pid, signal.SIGKILL)
    assert bench.returncode == 130, output[-2000:]  # an interruption, not a failure
    meta = load_metadata(run)
    assert meta["complete"] is False and 0 < meta["timesteps_done"] < 1_000_000, output[-2000:]
    assert latest_checkpoint(run).name == f"step_{meta['timesteps_done']}"  # saved where the child stood
    child, _, parent = output.rpartition("continue with: scripts/train.py resume=")
    assert f"checkpoint saved: {latest_checkpoint(run)}" in child  # the training says where it stands ...
    assert "interrupted: signal 15 (SIGTERM)" in parent and "resumes the runs" in parent  # ... and both exit on one line
    assert "Traceback" not in output


def load_metadata_or_empty(run: Path) -> dict:
    return load_metadata(run) if (run / "metadata.json").is_file() else {}
