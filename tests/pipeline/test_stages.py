"""Resumable stages: complete ones are skipped, changed or interrupted ones run again."""

from __future__ import annotations

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
