"""The Hydra entry point ``scripts/export.py``: writes a bundle into hydra.run.dir, or fails leaving nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from sim2real.export import ExportSettings, export_settings_from_dict
from sim2real.policies.deploy import BUNDLE_FILE, DeployedPolicy
from sim2real.presets import CONFIG_DIR, to_dict
from sim2real.runs import read_json
from tests.conftest import REPO


def _export(*overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "scripts" / "export.py"), *overrides],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_script_writes_bundle_into_run_dir(trained_ppo_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = _export(f"run={trained_ppo_run}", f"hydra.run.dir={out}", "seed=3")
    assert result.returncode == 0, result.stderr
    assert f"bundle: {out}" in result.stdout and "parity over 1000 observations" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "policy.onnx", "policy.pt"]
    assert read_json(out / BUNDLE_FILE)["export_settings"]["seed"] == 3
    assert DeployedPolicy.load(out).act([0.0, 0.0, 0.0, 0.0]).shape == (1,)


def test_script_fails_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = _export(f"run={tmp_path}", f"hydra.run.dir={out}")
    assert result.returncode != 0
    assert result.returncode == 2 and "error: " in result.stderr and "metadata.json is missing" in result.stderr
    assert not out.exists()
    result = _export(f"hydra.run.dir={out}")
    assert result.returncode != 0 and "run=RUN_DIR" in result.stderr
    assert not out.exists()


def test_export_config_matches_settings() -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = to_dict(compose(config_name="export", overrides=["run=somewhere"]))
    assert cfg.pop("run") == "somewhere" and cfg.pop("trusted_entry_points") == []
    assert export_settings_from_dict(cfg) == ExportSettings()


def test_script_puts_back_a_bundle_an_export_killed_mid_swap_moved_aside(trained_ppo_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    assert _export(f"run={trained_ppo_run}", f"hydra.run.dir={out}").returncode == 0
    (out / "notes.txt").write_text("mine")
    aside = tmp_path / ".bundle.k3j2x9q1.old"
    out.rename(aside)  # what a kill between the swap's two renames leaves: the bundle moved aside, no new one
    result = _export(f"run={trained_ppo_run}", f"hydra.run.dir={out}")
    assert result.returncode == 2 and "overwrite" in result.stderr  # the bundle is back; replacing it needs overwrite
    assert not aside.exists() and (out / "notes.txt").read_text() == "mine"
    assert DeployedPolicy.load(out).act([0.0, 0.0, 0.0, 0.0]).shape == (1,)
