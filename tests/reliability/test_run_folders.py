"""The one run-folder guard (sim2real.runs.claim_run_dir): kinds, resume/overwrite, locks, damage checks."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sim2real import runs
from sim2real.cli import write_run_config
from sim2real.runs import (
    LOCK_FILE,
    RUN_FILE,
    RunFolderError,
    RunLock,
    check_artifacts,
    claim_run_dir,
    run_kind,
)


def _training_run(folder: Path) -> Path:
    """A folder that looks like a finished training run (made before run.json existed)."""
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"kind": "train", "env": {"name": "hopper"}, "algo": "ppo"}))
    (folder / "model.zip").write_bytes(b"old model")
    (folder / "config.yaml").write_text("seed: 0\n")
    (folder / "checkpoints").mkdir()
    return folder


def test_new_and_empty_folders_are_claimed_and_marked(tmp_path: Path) -> None:
    for folder in (tmp_path / "new", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        with claim_run_dir(folder, "train") as claim:
            assert (folder / LOCK_FILE).is_file() and not claim.resumed
            assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
        assert not (folder / LOCK_FILE).exists()  # released
        assert run_kind(folder) == "train" and json.loads((folder / RUN_FILE).read_text())["kind"] == "train"


@pytest.mark.parametrize(("kind", "message"), [
    ("evaluate", "holds a training run .*not an evaluation report"),
    ("transfer", "holds a training run .*not a transfer run"),
    ("demos", "holds a training run .*not a demonstrations dataset"),
    ("pipeline", "holds a training run .*not a pipeline run"),
    ("export", "holds a training run .*not a policy bundle"),
])
def test_another_kind_of_run_is_refused_even_with_overwrite(tmp_path: Path, kind: str, message: str) -> None:
    run = _training_run(tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    for overwrite in (False, True):
        with pytest.raises(RunFolderError, match=message):
            claim_run_dir(run, kind, overwrite=overwrite)
    assert sorted(p.name for p in run.iterdir()) == before


def test_a_folder_of_the_users_own_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    for kind in ("train", "evaluate", "export"):
        with pytest.raises(RunFolderError, match="is not empty and is not .*it holds thesis.tex"):
            claim_run_dir(tmp_path, kind, overwrite=True)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_own_kind_needs_resume_or_overwrite_and_overwrite_keeps_foreign_files(tmp_path: Path) -> None:
    run = _training_run(tmp_path / "run")
    (run / "notes.md").write_text("mine")
    with pytest.raises(RunFolderError, match="already holds a training run; give resume="):
        claim_run_dir(run, "train")
    with claim_run_dir(run, "train", resume=True) as claim:
        assert claim.resumed and (run / "model.zip").exists()
    with claim_run_dir(run, "train", overwrite=True) as claim:
        assert {p.name for p in claim.removed} == {"metadata.json", "model.zip", "config.yaml", "checkpoints", RUN_FILE}
    assert sorted(p.name for p in run.iterdir()) == ["notes.md", RUN_FILE]
    with pytest.raises(RunFolderError, match="no run to continue"):
        claim_run_dir(tmp_path / "missing", "train", resume=True)


def test_a_run_continued_with_other_settings_keeps_the_earlier_record(tmp_path: Path) -> None:
    run = _training_run(tmp_path / "run")
    write_run_config(run, {"seed": 0}, ["seed=0"])  # the same settings again: nothing kept twice
    assert sorted(p.name for p in run.glob("*.previous-*")) == []
    write_run_config(run, {"seed": 0, "timesteps": 2000}, ["timesteps=2000"])
    write_run_config(run, {"seed": 0, "timesteps": 4000}, None)  # a resumed training keeps its overrides
    assert (run / "config.previous-1.yaml").read_text() == "seed: 0\n"
    assert (run / "overrides.previous-1.yaml").read_text() == "- seed=0\n"
    assert (run / "config.previous-2.yaml").read_text() == "seed: 0\ntimesteps: 2000\n"
    assert not (run / "overrides.previous-2.yaml").exists()
    assert (run / "config.yaml").read_text() == "seed: 0\ntimesteps: 4000\n"
    (run / "config.previous-1.yaml").unlink()  # a deleted record's number is not reused over a kept one
    write_run_config(run, {"seed": 1}, None)
    assert (run / "config.previous-3.yaml").read_text() == "seed: 0\ntimesteps: 4000\n"
    assert (run / "config.previous-2.yaml").read_text() == "seed: 0\ntimesteps: 2000\n"
    (run / "config.previous-notes.yaml").write_text("mine")
    with claim_run_dir(run, "train", overwrite=True) as claim:  # they are the run's own files, the user's stay
        assert {"config.previous-2.yaml", "overrides.previous-1.yaml"} <= {p.name for p in claim.removed}
    assert (run / "config.previous-notes.yaml").read_text() == "mine"


def test_resume_removes_stale_temporaries(tmp_path: Path) -> None:
    run = _training_run(tmp_path / "run")
    (run / ".model.zip.k3j2.tmp").write_bytes(b"half")
    (run / "checkpoints" / ".step_512.tmp").mkdir()
    (run / "checkpoints" / ".latest.json.x.tmp").write_text("{")
    with claim_run_dir(run, "train", resume=True):
        pass
    assert not list(run.rglob(".*.tmp"))
    assert (run / "model.zip").read_bytes() == b"old model"


def test_a_second_process_is_refused_and_a_dead_owners_lock_is_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    claim = claim_run_dir(folder, "train")
    with pytest.raises(RunFolderError, match=f"in use by process {os.getpid()}"):
        claim_run_dir(folder, "train", resume=True)
    with pytest.raises(RunFolderError, match=f"lies inside '{folder}', which is in use by process {os.getpid()}"):
        claim_run_dir(folder / "inner", "train")
    claim.release()
    # a lock left by a process that is gone (kill -9): recognized by its PID on this host
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with claim_run_dir(folder, "train", resume=True) as claim:
        assert claim.lock.held
    # a live lock of another host cannot be checked from here: held
    (folder / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "then"}))
    with pytest.raises(RunFolderError, match="in use by process 1 on elsewhere"):
        RunLock(folder / LOCK_FILE).acquire()


def test_two_processes_taking_over_one_dead_lock_do_not_both_hold_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Process B found the dead lock, then process A took it over first: B must not delete A's lock."""
    folder = tmp_path / "run"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = folder / LOCK_FILE
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    first = RunLock(lock)
    real_holder_alive = runs._holder_alive

    def a_takes_over_meanwhile(holder: dict) -> bool:
        alive = real_holder_alive(holder)
        if not alive and not first.held:
            monkeypatch.setattr(runs, "_holder_alive", real_holder_alive)
            first.acquire()  # A: removes the dead lock and creates its own, between B's read and B's takeover
        return alive

    monkeypatch.setattr(runs, "_holder_alive", a_takes_over_meanwhile)
    with pytest.raises(RunFolderError, match="just taken by another process"):
        RunLock(lock).acquire()  # B
    assert first.held and json.loads(lock.read_text())["pid"] == os.getpid()  # A's lock is still in place
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]
    first.release()
    assert not lock.exists()


def test_a_lock_is_never_seen_empty_while_it_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock appears with its owner already in it: a process checking it meanwhile sees a live holder,
    never an empty record it would take for a dead process's lock."""
    seen: list[dict] = []
    real_link = os.link

    def link_and_look(src: str, dst: str) -> None:
        real_link(src, dst)
        seen.append(json.loads(Path(dst).read_text()))  # what another process reads the instant it exists

    monkeypatch.setattr(os, "link", link_and_look)
    lock = RunLock(tmp_path / LOCK_FILE).acquire()
    assert seen and seen[0]["pid"] == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]  # the private record file is gone
    assert (tmp_path / LOCK_FILE).stat().st_mode & 0o777 == 0o644  # others can read whose it is
    with pytest.raises(RunFolderError, match=f"in use by process {os.getpid()}"):
        RunLock(tmp_path / LOCK_FILE).acquire()
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_refused_command_inside_a_new_claim_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with pytest.raises(ValueError, match="bad"), claim_run_dir(folder, "evaluate"):
        raise ValueError("bad")
    assert not folder.exists()


def test_run_kind_of_older_folders(tmp_path: Path) -> None:
    assert run_kind(_training_run(tmp_path / "train")) == "train"
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "bundle.json").write_text("{}")
    assert run_kind(tmp_path / "bundle") == "export"
    (tmp_path / "pipe" / "source").mkdir(parents=True)
    (tmp_path / "pipe" / "source" / "stage.json").write_text("{}")
    assert run_kind(tmp_path / "pipe") == "pipeline"
    (tmp_path / "demos").mkdir()
    (tmp_path / "demos" / "d.json").write_text(json.dumps({"format": "sim2real-demonstrations"}))
    assert run_kind(tmp_path / "demos") == "demos"
    assert run_kind(tmp_path) is None


def test_damaged_artifacts_are_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with zipfile.ZipFile(run / "model.zip", "w") as archive:
        archive.writestr("policy.pth", b"x" * 4000)
    (run / "vecnormalize.pkl").write_bytes(pickle.dumps({"mean": [0.0] * 50}))
    (run / "metadata.json").write_text(json.dumps({"kind": "train"}))
    check_artifacts(run)  # whole files pass
    data = bytearray((run / "model.zip").read_bytes())
    data[60:70] = b"\0" * 10
    (run / "model.zip").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"'.*model.zip' is damaged \(member policy.pth fails its CRC\)"):
        check_artifacts(run)
    (run / "model.zip").unlink()
    (run / "vecnormalize.pkl").write_bytes(pickle.dumps({"mean": [0.0] * 50})[:-20])
    with pytest.raises(ValueError, match="vecnormalize.pkl' is damaged"):
        check_artifacts(run)
    (run / "vecnormalize.pkl").unlink()
    (run / "metadata.json").write_text('{"kind": "tr')
    with pytest.raises(ValueError, match="metadata.json' is damaged"):
        check_artifacts(run)
