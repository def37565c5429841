"""A policy from elsewhere is evaluated from its exported bundle: no run folder, no pickle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sim2real.evaluation import EvalSettings, PolicyEntry, evaluate_policies
from sim2real.evaluation.parallel import bundle_run_info
from sim2real.policies.deploy import DeployedPolicy
from sim2real.presets import target_spec


def test_a_bundle_evaluates_like_its_run_folder(ppo_bundle: Path, trained_ppo_run: Path, tmp_path: Path) -> None:
    report = evaluate_policies([PolicyEntry(trained_ppo_run, "run"), PolicyEntry(ppo_bundle, "bundle")],
                               target_spec("heavy"), episodes=2, seeds=1, out_dir=tmp_path / "report", workers=1,
                               settings=EvalSettings(similarity=None, plots=False, resamples=100))
    rows = {row["name"]: row for row in report.to_dict()["policies"]}
    for key in ("source_return", "target_return"):
        assert rows["bundle"][key]["mean"] == pytest.approx(rows["run"][key]["mean"], abs=1e-9)
    assert bundle_run_info(ppo_bundle).kind == "bundle"


def test_a_bundle_naming_code_is_refused_before_loading(ppo_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(ppo_bundle, tmp_path / "bundle"))
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["env"] |= {"id": None, "entry_point": "subprocess:run", "kwargs": {"args": ["true"]}}
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    assert DeployedPolicy.load(bundle).env_id == "subprocess:run"  # loading a bundle imports nothing it names
    with pytest.raises(ValueError, match="names entry_point 'subprocess:run'"):
        evaluate_policies([bundle], target_spec("heavy"), episodes=1, seeds=1, out_dir=tmp_path / "r", workers=1)
    assert not (tmp_path / "r").exists()
