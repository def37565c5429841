"""aggregate.py on bad input: every case exits 2 with a one-line reason naming the file, and writes nothing."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from sim2real.pipeline.aggregate import aggregate_reports, find_reports
from tests.conftest import REPO
from tests.pipeline.test_aggregate import write_sweep


def aggregate_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    spec = importlib.util.spec_from_file_location("aggregate_script", REPO / "scripts" / "aggregate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def nothing_written(folder: Path) -> bool:
    return not list(folder.rglob("aggregate*")) and not list(folder.rglob("*.png"))


def test_truncated_report_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_sweep(tmp_path, [700, 800])
    broken = tmp_path / "1__seed1" / "report" / "report.json"
    broken.write_text(broken.read_text()[:57])
    code, _, err = aggregate_main([str(tmp_path)], capsys)
    assert code == 2 and str(broken) in err and "not readable JSON" in err and "Traceback" not in err
    assert nothing_written(tmp_path)


@pytest.mark.parametrize(("content", "message"), [
    ("[]", "a JSON list, not an object"),
    ('{"env": "hopper", "target": "heavy"}', "'policies' is missing, empty or not a list"),
    ('{"env": "hopper", "target": "heavy", "policies": [{"name": "a", "role": "policy"}]}',
     "policies[0] ('a'): 'source_return.mean' is missing"),
    ('{"env": "hopper", "target": "heavy", "policies": [{"name": "a", "role": "policy", "source_return": {"mean": 1},'
     ' "target_return": {"mean": 1}, "gap": {"mean": 0}, "gap_closed": "high"}]}', "'gap_closed' is 'high'"),
    ('{"target": "heavy", "policies": []}', "'env' is missing or not a string"),
])
def test_wrong_shape_report_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                       message: str) -> None:
    write_sweep(tmp_path, [700])
    odd = tmp_path / "odd" / "report.json"
    odd.parent.mkdir()
    odd.write_text(content)
    code, _, err = aggregate_main([str(tmp_path)], capsys)
    assert code == 2 and message in err and str(odd) in err
    assert nothing_written(tmp_path)


def test_a_file_where_the_folder_belongs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_sweep(tmp_path, [700])
    report = next(tmp_path.rglob("report.json"))
    code, _, err = aggregate_main([str(report)], capsys)
    assert code == 2 and "is a file, not a folder" in err
    code, _, err = aggregate_main([str(tmp_path / "missing")], capsys)
    assert code == 2 and "does not exist" in err


def test_unwritable_out_is_refused_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_sweep(tmp_path / "sweep", [700, 800])
    blocker = tmp_path / "file.txt"
    blocker.write_text("mine")
    code, _, err = aggregate_main([str(tmp_path / "sweep"), "--out", str(blocker)], capsys)
    assert code == 2 and "is a file, not a folder" in err and blocker.read_text() == "mine"
    code, _, err = aggregate_main([str(tmp_path / "sweep"), "--out", str(blocker / "sub")], capsys)
    assert code == 2 and "cannot be created" in err
    assert nothing_written(tmp_path / "sweep")


def test_two_copies_of_one_report_count_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_sweep(tmp_path, [700, 800])
    shutil.copytree(tmp_path / "0__seed0", tmp_path / "copy_of_0")
    aggregate = aggregate_reports(find_reports(tmp_path))
    assert aggregate["n_runs"] == 2 and len(aggregate["duplicates"]) == 1
    assert aggregate["duplicates"][0]["same_as"].endswith("0__seed0/report/report.json")
    rows = {r["name"]: r for r in aggregate["policies"]}
    assert rows["finetune"]["n_runs"] == 2 and rows["finetune"]["target_return"]["mean"] == pytest.approx(750)
    code, _, err = aggregate_main([str(tmp_path)], capsys)
    assert code == 0 and "copy_of_0" in err and "counted once" in err
    assert json.loads((tmp_path / "aggregate.json").read_text())["n_runs"] == 2
