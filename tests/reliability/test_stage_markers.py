"""Pipeline stage markers vouch only for the files they recorded: outputs changed since make a stage run again."""

from __future__ import annotations

from pathlib import Path

from sim2real.pipeline.stages import Stage, run_stages


def _stages(root: Path, log: list[str]) -> tuple[Stage, Stage]:
    def write(name: str, text: str):
        def action(folder: Path) -> dict:
            log.append(name)
            (folder / "model.zip").write_text(f"{text} {len(log)}")  # a rerun writes other bytes (as training does)
            return {}
        return action

    upstream = Stage("transfer", root / "transfer", 1.0, {"a": 1}, write("transfer", "adapted"), ("model.zip",))
    downstream = Stage("report", root / "report", 1.0, {"b": 2}, write("report", "report"), ("model.zip",), (upstream,))
    return upstream, downstream


def test_a_replaced_output_invalidates_its_stage_and_the_stages_reading_it(tmp_path: Path) -> None:
    log: list[str] = []
    stages = _stages(tmp_path, log)
    run_stages(stages, printer=lambda _: None)
    assert log == ["transfer", "report"]
    run_stages(_stages(tmp_path, log), printer=lambda _: None)
    assert log == ["transfer", "report"]  # both complete: skipped
    (tmp_path / "transfer" / "model.zip").write_text("replaced by scripts/transfer.py overwrite=true")
    upstream, downstream = _stages(tmp_path, log)
    assert not upstream.is_complete() and not downstream.is_complete()
    run_stages((upstream, downstream), printer=lambda _: None)
    assert log == ["transfer", "report"] * 2
    (tmp_path / "report" / "model.zip").unlink()
    assert not _stages(tmp_path, log)[1].is_complete()
