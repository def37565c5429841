"""Exporting PPO, SAC and TD3 run folders: bundle contents, parity with SB3 predict, failures that write nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.export import ExportSettings, ParityError, export_bundle, export_settings_from_dict
from sim2real.export import bundle as bundle_module
from sim2real.export.parity import max_abs_diff
from sim2real.policies import ObsNormalizer, load_policy
from sim2real.policies.deploy import BUNDLE_FILE, ONNX_FILE, TORCHSCRIPT_FILE, DeployedPolicy, sha256_file
from sim2real.presets import load_preset
from sim2real.runs import git_state, read_json, update_metadata

ALGOS = ("ppo", "sac", "td3")
RUNS = {"ppo": "trained_ppo_run", "sac": "sac_run", "td3": "td3_run"}


def _manifest(bundle_dir: Path) -> dict:
    return read_json(bundle_dir / BUNDLE_FILE)


@pytest.mark.parametrize("algo", ALGOS)
def test_bundle_matches_sb3_predict_within_tolerance(algo: str, request: pytest.FixtureRequest) -> None:
    manifest = _manifest(request.getfixturevalue(f"{algo}_bundle"))
    parity = manifest["parity"]
    assert parity["observations"] >= 1000
    assert parity["tolerance"] == 1e-5
    assert 0.0 <= parity["onnx_max_abs_diff"] <= 1e-5
    assert 0.0 <= parity["torchscript_max_abs_diff"] <= 1e-5
    assert 0.0 <= parity["sb3_batch_vs_single_max_abs_diff"] <= 1e-5


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
@pytest.mark.parametrize("algo", ALGOS)
def test_bundle_acts_like_policy_on_unseen_observations(algo: str, request: pytest.FixtureRequest) -> None:
    bundle_dir = request.getfixturevalue(f"{algo}_bundle")
    policy = load_policy(request.getfixturevalue(RUNS[algo]))
    deployed = DeployedPolicy.load(bundle_dir)
    rng = np.random.default_rng(7)
    # wide observations drive PPO's actions past the bounds (clipping) and VecNormalize past its clip
    obs = rng.normal(0.0, 3.0, size=(256, deployed.obs_dim))
    expected = np.stack([policy.act(o) for o in obs])
    np.testing.assert_allclose(deployed.act(obs), expected, rtol=0, atol=1e-5)
    traced = torch.jit.load(str(bundle_dir / TORCHSCRIPT_FILE))
    with torch.no_grad():
        np.testing.assert_allclose(traced(torch.as_tensor(obs)).numpy(), expected, rtol=0, atol=1e-5)
    assert np.all(expected >= deployed.action_low) and np.all(expected <= deployed.action_high)


@pytest.mark.parametrize("algo", ALGOS)
def test_manifest_records_spaces_processing_and_provenance(algo: str, request: pytest.FixtureRequest) -> None:
    bundle_dir = request.getfixturevalue(f"{algo}_bundle")
    run_dir = request.getfixturevalue(RUNS[algo])
    manifest = _manifest(bundle_dir)
    assert manifest["algo"] == algo
    assert manifest["env"]["id"] == "InvertedPendulum-v5"
    assert manifest["control_period_s"] == pytest.approx(0.04)  # timestep 0.02 x frame_skip 2
    assert manifest["observation_space"]["shape"] == [4] and manifest["action_space"]["shape"] == [1]
    assert manifest["action_space"]["low"] == [-3.0] and manifest["action_space"]["high"] == [3.0]
    assert manifest["observation_space"]["low"] == [None] * 4  # unbounded
    assert manifest["action_processing"]["kind"] == ("clip" if algo == "ppo" else "tanh_unscale")
    assert manifest["source_run"]["path"] == str(run_dir.resolve())
    assert manifest["source_run"]["git"] == read_json(run_dir / "metadata.json")["git"]
    assert manifest["git"]["commit"] == git_state()["commit"]
    for key, name in (("onnx", ONNX_FILE), ("torchscript", TORCHSCRIPT_FILE)):
        assert manifest["files"][key]["path"] == name
        assert manifest["files"][key]["sha256"] == sha256_file(bundle_dir / name)
    assert sorted(p.name for p in bundle_dir.iterdir()) == sorted([BUNDLE_FILE, ONNX_FILE, TORCHSCRIPT_FILE])


def test_normalization_statistics_recorded_exactly(ppo_bundle: Path, trained_ppo_run: Path, sac_bundle: Path) -> None:
    norm = _manifest(ppo_bundle)["observation_normalization"]
    stats = ObsNormalizer.from_vecnormalize_file(trained_ppo_run / "vecnormalize.pkl")
    assert norm["in_graph"] is True
    assert norm["mean"] == stats.mean.tolist() and norm["var"] == stats.var.tolist()
    assert (norm["clip"], norm["epsilon"]) == (stats.clip, stats.epsilon)
    assert _manifest(sac_bundle)["observation_normalization"] is None


def test_adapted_run_exports_with_its_target(trained_ppo_run: Path, tmp_path: Path) -> None:
    adapted = tmp_path / "adapted"
    shutil.copytree(trained_ppo_run, adapted)
    update_metadata(adapted, kind="transfer", method="finetune", source_run=str(trained_ppo_run),
                    target=load_preset("target", "heavy"))
    manifest = export_bundle(adapted, tmp_path / "bundle")
    assert manifest["source_run"]["kind"] == "transfer"
    assert manifest["source_run"]["source_run"] == str(trained_ppo_run)
    assert manifest["parity"]["dynamics"]["target"] == "heavy"
    assert manifest["parity"]["onnx_max_abs_diff"] <= 1e-5


def test_not_a_policy_folder_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="metadata.json is missing"):
        export_bundle(tmp_path, out)
    (tmp_path / "metadata.json").write_text(json.dumps({"env": {"name": "inverted_pendulum"}, "algo": "ppo"}))
    with pytest.raises(ValueError, match="no model.zip"):
        export_bundle(tmp_path, out)
    with pytest.raises(ValueError, match="does not exist"):
        export_bundle(tmp_path / "missing", out)
    assert not out.exists()


def test_parity_failure_writes_nothing(trained_ppo_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_build = bundle_module.build_deployable

    def perturbed(policy):
        module = real_build(policy)
        with torch.no_grad():
            next(module.body.parameters()).add_(1e-2)
        return module

    monkeypatch.setattr(bundle_module, "build_deployable", perturbed)
    out = tmp_path / "exports" / "bundle"
    with pytest.raises(ParityError, match="onnx max abs diff .* torchscript max abs diff"):
        export_bundle(trained_ppo_run, out)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # the staging folder is gone too


def test_output_folder_rules(ppo_bundle: Path, trained_ppo_run: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        export_bundle(trained_ppo_run, busy)
    with pytest.raises(ValueError, match="not a policy bundle"):
        export_bundle(trained_ppo_run, busy, ExportSettings(overwrite=True))
    assert (busy / "notes.txt").read_text() == "keep me"

    empty = tmp_path / "empty"
    empty.mkdir()  # e.g. created by Hydra before the export runs
    export_bundle(trained_ppo_run, empty)
    assert (empty / BUNDLE_FILE).is_file()

    again = tmp_path / "again"
    shutil.copytree(ppo_bundle, again)
    manifest = export_bundle(trained_ppo_run, again, ExportSettings(overwrite=True, seed=5))
    assert manifest["parity"]["seed"] == 5 and _manifest(again)["parity"]["seed"] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or old folders left


@pytest.mark.parametrize(("settings", "message"), [
    ({"observations": 999}, "observations=999 must be an integer >= 1000"),
    ({"tolerance": 0.0}, "tolerance=0.0 must be a number > 0"),
    ({"opset": 9}, r"opset=9 must be an integer in \[13, "),
    ({"opset": 99}, r"opset=99 must be an integer in \[13, "),
    ({"tolernce": 1e-5}, r"unknown keys \['tolernce'\]; valid: .*tolerance"),
])
def test_settings_are_validated(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        export_settings_from_dict(settings)


def test_parity_difference_is_infinite_when_either_side_is_not_finite() -> None:
    finite = np.array([0.1, -0.2])
    assert max_abs_diff(finite, finite + 1e-7) == pytest.approx(1e-7)
    assert max_abs_diff(finite, np.array([0.1, np.nan])) == np.inf
    assert max_abs_diff(np.array([np.nan, -0.2]), finite) == np.inf  # a NaN reference is no match either
    assert max_abs_diff(finite, finite[:1]) == np.inf
