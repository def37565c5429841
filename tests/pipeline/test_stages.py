"""Resumable stages: complete ones are skipped, changed or interrupted ones run again."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from sim2real.pipeline.stages import MARKER, Stage, run_stages


def counting_stage(folder: Path, calls: list[str], fingerprint: dict | None = None, fail: bool = False) -> Stage:
    def action(out: Path) -> dict:
        calls.append(out.name)
        (out / "result.txt").write_text("partial")
        if fail:
            raise RuntimeError("interrupted")
        return {"value": 1}

    return Stage("work", folder, 1.0, fingerprint or {"a": 1}, action, ("result.txt",))


def test_complete_stage_is_skipped(tmp_path: Path) -> None:
    calls: list[str] = []
    lines: list[str] = []
    run_stages([counting_stage(tmp_path / "s", calls)], lines.append)
    run_stages([counting_stage(tmp_path / "s", calls)], lines.append)
    assert calls == ["s"]
    assert any("skip (complete): work" in line for line in lines)
    assert any("elapsed" in line and "%" in line for line in lines)


def test_changed_fingerprint_reruns(tmp_path: Path) -> None:
    calls: list[str] = []
    run_stages([counting_stage(tmp_path / "s", calls, {"a": 1})], lambda _: None)
    run_stages([counting_stage(tmp_path / "s", calls, {"a": 2})], lambda _: None)
    assert calls == ["s", "s"]


def test_a_setting_at_its_settled_default_matches_whether_or_not_it_was_recorded(tmp_path: Path) -> None:
    """A setting added later (``lr_schedule``) matches at its default whether a stage's record left it out (made
    before it existed) or wrote it out: the stage is not run again; another value still reruns it."""
    calls: list[str] = []
    written_out = {"settings": {"iterations": 16, "lr_schedule": "constant", "select_episodes": 0}}
    run_stages([counting_stage(tmp_path / "s", calls, written_out)], lambda _: None)
    run_stages([counting_stage(tmp_path / "s", calls, {"settings": {"iterations": 16}})], lambda _: None)
    assert calls == ["s"]
    run_stages([counting_stage(tmp_path / "s", calls, {"settings": {"iterations": 16, "lr_schedule": "cosine"}})],
               lambda _: None)
    assert calls == ["s", "s"]


def test_interrupted_stage_leaves_no_marker_and_reruns(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        run_stages([counting_stage(tmp_path / "s", calls, fail=True)], lambda _: None)
    assert not (tmp_path / "s" / MARKER).exists()
    run_stages([counting_stage(tmp_path / "s", calls)], lambda _: None)
    assert calls == ["s", "s"]
    assert (tmp_path / "s" / MARKER).exists()


def test_missing_artifact_reruns(tmp_path: Path) -> None:
    calls: list[str] = []
    run_stages([counting_stage(tmp_path / "s", calls)], lambda _: None)
    (tmp_path / "s" / "result.txt").unlink()
    run_stages([counting_stage(tmp_path / "s", calls)], lambda _: None)
    assert calls == ["s", "s"]


def files_seen_by_stage(folder: Path, fingerprint: dict, fail: bool = False) -> list[str]:
    """Runs a stage that records which files its folder held when it started (like a resumed checkpoint)."""
    seen: list[str] = []

    def action(out: Path) -> dict:
        seen.extend(sorted(p.name for p in out.iterdir() if not p.name.startswith(".")))
        (out / "checkpoint.txt").write_text(str(fingerprint))
        if fail:
            raise RuntimeError("interrupted")
        return {}

    stage = Stage("train", folder, 1.0, fingerprint, action, ("checkpoint.txt",))
    with contextlib.suppress(RuntimeError):
        run_stages([stage], lambda _: None)
    return seen


@pytest.mark.parametrize("interrupted", [False, True])
def test_files_made_with_other_settings_are_not_continued(tmp_path: Path, interrupted: bool) -> None:
    folder = tmp_path / "s"
    files_seen_by_stage(folder, {"seed": 0, "timesteps": 100}, fail=interrupted)
    # Other settings: the old checkpoint is removed before the stage runs, so nothing resumes from it.
    assert files_seen_by_stage(folder, {"seed": 1, "timesteps": 100}) == []
    assert (folder / "checkpoint.txt").read_text() == str({"seed": 1, "timesteps": 100})
    # More timesteps with the same settings: the files stay and the stage continues them.
    assert files_seen_by_stage(folder, {"seed": 1, "timesteps": 200}) == ["checkpoint.txt"]
    # Fewer timesteps than the files hold is not a continuation.
    assert files_seen_by_stage(folder, {"seed": 1, "timesteps": 50}) == []


def test_a_baseline_continues_when_only_the_source_it_names_trains_longer(tmp_path: Path) -> None:
    folder = tmp_path / "oracle"
    source = {"seed": 0, "timesteps": 100}
    files_seen_by_stage(folder, {"timesteps": 500, "source": source})
    assert files_seen_by_stage(folder, {"timesteps": 500, "source": {**source, "timesteps": 200}}) == ["checkpoint.txt"]
    assert files_seen_by_stage(folder, {"timesteps": 500, "source": {**source, "seed": 1}}) == []
