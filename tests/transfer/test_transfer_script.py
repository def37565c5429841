"""The entry point scripts/transfer.py: method selection, run folder contents, errors before work."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sim2real.policies import load_policy
from sim2real.presets import to_dict
from sim2real.transfer import METHODS
from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "transfer.py"


def run_script(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *overrides], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_method_alias_selects_the_transfer_group() -> None:
    spec = importlib.util.spec_from_file_location("transfer_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.method_alias(["x.py", "method=dann", "budget=5", "transfer.rounds=2"]) == \
        ["x.py", "transfer=dann", "budget=5", "transfer.rounds=2"]
    assert module.method_alias(["method=bc,dagger"]) == ["transfer=bc,dagger"]


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "transfer").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_transfer_config_matches_its_method(path: Path) -> None:
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base=None):
        cfg = to_dict(compose(config_name="transfer", overrides=[f"transfer={path.stem}", "source=x"]))
    settings = dict(cfg["transfer"])
    name = settings.pop("name")
    assert name == path.stem and cfg["method"] == name
    method = METHODS.get(name)
    assert method.settings_from_dict(settings) == method.Settings()  # the YAML documents the defaults
    assert cfg["target"]["name"] == "high_gravity"


def test_finetune_run_folder_is_a_policy_run(ppo_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ft"
    result = run_script(f"source={ppo_run}", "target=heavy", "method=finetune", "budget=2000", "seed=3",
                        f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert "target steps used" in result.stdout
    for name in ("config.yaml", "metadata.json", "model.zip", "vecnormalize.pkl"):
        assert (run_dir / name).is_file(), name
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["method"] == "finetune" and metadata["budget"] == 2000 and metadata["seed"] == 3
    assert 0 < metadata["target_steps_used"] <= 2000
    assert metadata["source_run"] == str(ppo_run) and metadata["target"]["name"] == "heavy"
    assert metadata["settings"]["normalization"] == "update" and metadata["wall_time_s"] > 0
    assert metadata["physics_blowups"] == 0  # counted on every target step, recorded like training's
    assert json.loads((run_dir / "run.json").read_text())["kind"] == "transfer"
    assert load_policy(run_dir).info.env.name == "inverted_pendulum"


@pytest.mark.slow
def test_dann_from_the_entry_point(ppo_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "dann"
    result = run_script(f"source={ppo_run}", "target=noisy", "method=dann", "budget=1000",
                        "transfer.source_states=500", "transfer.updates_per_round=20", "transfer.probe_updates=20",
                        f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["method"] == "dann" and metadata["target_steps_used"] == 1000
    assert {"domain_accuracy_before", "domain_accuracy_after"} <= set(metadata["metrics"])
    assert (run_dir / "model.zip").is_file()


@pytest.mark.parametrize(("overrides", "message"), [
    (["budget=500"], "less than one episode"),
    pytest.param(["source=does/not/exist"], "does not exist", marks=pytest.mark.slow),
    pytest.param(["transfer.freeze_layers=9"], "encoder has 2 layers", marks=pytest.mark.slow),
])
def test_bad_input_fails_before_work(ppo_run: Path, tmp_path: Path, overrides: list[str], message: str) -> None:
    """One invocation per case (a process start each); the in-process checks cover every case fast."""
    source_files = {p.name: p.read_bytes() for p in ppo_run.iterdir() if p.is_file()}
    run_dir = tmp_path / "bad"
    result = run_script(f"source={ppo_run}", "method=finetune", "budget=2000", *overrides, f"hydra.run.dir={run_dir}")
    assert result.returncode != 0
    assert message in result.stderr
    assert not (run_dir / "model.zip").exists() and not (run_dir / "metadata.json").exists()
    assert {p.name: p.read_bytes() for p in ppo_run.iterdir() if p.is_file()} == source_files
