"""The torch-free runtime: acting, input checks, checksum verification, closed loop, no torch import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sim2real.evaluation import rollout_returns
from sim2real.policies import deploy, load_policy
from sim2real.policies.deploy import BUNDLE_FILE, ONNX_FILE, TORCHSCRIPT_FILE, BundleError, DeployedPolicy
from tests.conftest import REPO


@pytest.fixture()
def bundle_copy(ppo_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the PPO bundle that a test may tamper with."""
    return Path(shutil.copytree(ppo_bundle, tmp_path / "bundle"))


def test_act_single_and_batch(ppo_bundle: Path) -> None:
    deployed = DeployedPolicy.load(ppo_bundle)
    obs = np.random.default_rng(0).normal(size=(5, deployed.obs_dim))
    batch = deployed.act(obs)
    assert batch.shape == (5, deployed.action_dim) and batch.dtype == np.float32
    single = deployed.act(obs[2])
    assert single.shape == (deployed.action_dim,)
    np.testing.assert_allclose(single, batch[2], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(deployed.act(obs.astype(np.float32)), deployed.act(obs.astype(np.float32).astype(np.float64)))
    assert deployed.control_period == pytest.approx(0.04) and deployed.env_id == "InvertedPendulum-v5"
    assert DeployedPolicy.load(ppo_bundle / BUNDLE_FILE).obs_dim == deployed.obs_dim


@pytest.mark.parametrize(("obs", "error", "message"), [
    (np.zeros(5), ValueError, r"shape \(5,\) does not match \(4,\) or \(N, 4\)"),
    (np.zeros((2, 3)), ValueError, r"shape \(2, 3\) does not match"),
    (np.zeros((2, 1, 4)), ValueError, r"shape \(2, 1, 4\) does not match"),
    (np.float64(1.0), ValueError, r"shape \(\) does not match"),
    (np.zeros(4, dtype=np.int64), TypeError, "dtype int64 is not a float dtype"),
    (np.array([True] * 4), TypeError, "dtype bool is not a float dtype"),
    (np.array([0.0, np.nan, 0.0, 0.0]), ValueError, r"NaN or inf \(at indices \[\[1\]\]\)"),
    (np.array([[0.0] * 4, [0.0, 0.0, 0.0, np.inf]]), ValueError, r"NaN or inf \(at indices \[\[1, 3\]\]\)"),
])
def test_bad_observations_are_refused(ppo_bundle: Path, obs: np.ndarray, error: type, message: str) -> None:
    deployed = DeployedPolicy.load(ppo_bundle)
    with pytest.raises(error, match=message):
        deployed.act(obs)


@pytest.mark.parametrize("name", [ONNX_FILE, TORCHSCRIPT_FILE])
def test_tampered_model_file_is_refused(bundle_copy: Path, name: str) -> None:
    data = bytearray((bundle_copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle_copy / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"checksum mismatch for {name}"):
        DeployedPolicy.load(bundle_copy)


def test_broken_bundles_are_refused(bundle_copy: Path, tmp_path: Path) -> None:
    manifest_path = bundle_copy / BUNDLE_FILE
    manifest = json.loads(manifest_path.read_text())

    def load_with(changed: dict) -> None:
        manifest_path.write_text(json.dumps(changed))
        DeployedPolicy.load(bundle_copy)

    with pytest.raises(BundleError, match="invalid path '../policy.onnx'"):
        load_with({**manifest, "files": {"onnx": {**manifest["files"]["onnx"], "path": "../policy.onnx"}}})
    with pytest.raises(BundleError, match=r"lacks \['action_space'\]"):
        load_with({k: v for k, v in manifest.items() if k != "action_space"})
    with pytest.raises(BundleError, match="version 99 is not supported"):
        load_with({**manifest, "version": 99})
    with pytest.raises(BundleError, match="declares obs_dim 5"):
        load_with({**manifest, "observation_space": {**manifest["observation_space"], "shape": [5],
                                                     "low": [None] * 5, "high": [None] * 5}})
    manifest_path.write_text(json.dumps(manifest))
    (bundle_copy / TORCHSCRIPT_FILE).unlink()
    with pytest.raises(BundleError, match="policy.pt is missing"):
        DeployedPolicy.load(bundle_copy)
    with pytest.raises(BundleError, match="bundle.json is missing"):
        DeployedPolicy.load(tmp_path)
    with pytest.raises(BundleError, match="does not exist"):
        DeployedPolicy.load(tmp_path / "nowhere")
    manifest_path.write_text("{not json")
    with pytest.raises(BundleError, match="not readable JSON"):
        DeployedPolicy.load(bundle_copy)


def test_closed_loop_return_equals_sb3_policy(ppo_bundle: Path, trained_ppo_run: Path) -> None:
    deployed = DeployedPolicy.load(ppo_bundle)
    policy = load_policy(trained_ppo_run)
    runtime = rollout_returns(deployed.act, "inverted_pendulum", episodes=3, seed=123)
    reference = rollout_returns(policy.act, "inverted_pendulum", episodes=3, seed=123)
    np.testing.assert_array_equal(runtime.returns, reference.returns)
    np.testing.assert_array_equal(runtime.lengths, reference.lengths)
    assert reference.returns.max() > 100  # a policy that balances for a while: a long trajectory to match


def test_closed_loop_squashed_policy(sac_bundle: Path, sac_run: Path) -> None:
    deployed = DeployedPolicy.load(sac_bundle)
    policy = load_policy(sac_run)
    runtime = rollout_returns(deployed.act, "inverted_pendulum", episodes=3, seed=7)
    reference = rollout_returns(policy.act, "inverted_pendulum", episodes=3, seed=7)
    np.testing.assert_array_equal(runtime.returns, reference.returns)


BLOCKED_IMPORT_SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys

    BLOCKED = ("torch", "stable_baselines3")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named '{name}' (blocked)")
            return None

    sys.meta_path.insert(0, Block())
    from sim2real.policies.deploy import DeployedPolicy
    policy = DeployedPolicy.load(sys.argv[1])
    action = policy.act(json.loads(sys.argv[2]))
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m.startswith(("sim2real.envs",
                   "sim2real.training", "sim2real.export", "gymnasium", "mujoco")))
    print(json.dumps({"action": action.tolist(), "heavy": heavy}))
""")


def test_runtime_imports_and_acts_without_torch(ppo_bundle: Path) -> None:
    obs = [[0.01, -0.02, 0.03, 0.0], [0.1, 0.0, -0.1, 0.2]]
    result = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT_SCRIPT, str(ppo_bundle), json.dumps(obs)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["heavy"] == []
    expected = DeployedPolicy.load(ppo_bundle).act(np.array(obs))
    np.testing.assert_array_equal(np.array(output["action"], np.float32), expected)


def test_runtime_source_has_no_heavy_imports() -> None:
    source = Path(deploy.__file__).read_text()
    for module in ("torch", "stable_baselines3", "pickle", "sim2real.envs", "sim2real.training", "gymnasium"):
        assert f"import {module}" not in source and f"from {module}" not in source


def _rewrite_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / BUNDLE_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("files", {"onnx": "policy.onnx"}, "files.onnx='policy.onnx' must be an object"),
    ("observation_space", {"shape": []}, r"observation_space=.* 'shape' is \[n\]"),
    ("observation_space", {"shape": [4], "low": [0, 0], "high": None}, "observation_space.low must be a list of 4"),
    ("action_space", "box", "action_space='box' must be an object"),
    ("control_period_s", "fast", "control_period_s='fast' must be a number > 0"),
    ("control_period_s", float("nan"), "control_period_s=nan must be a number > 0"),
    ("env", "InvertedPendulum-v5", "env='InvertedPendulum-v5' must be an object"),
    ("env", {"name": "robot", "id": None, "entry_point": None}, "with a string 'id' or 'entry_point'"),
])
def test_hand_edited_manifest_fails_at_load(bundle_copy: Path, field: str, value: object, message: str) -> None:
    _rewrite_manifest(bundle_copy, **{field: value})
    with pytest.raises(BundleError, match=message):
        DeployedPolicy.load(bundle_copy)


def test_model_linked_from_outside_the_bundle_is_refused(bundle_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    (bundle_copy / ONNX_FILE).rename(outside)
    (bundle_copy / ONNX_FILE).symlink_to(outside)  # same bytes, so the checksum alone would pass
    with pytest.raises(BundleError, match="policy.onnx is a link to .*outside the bundle"):
        DeployedPolicy.load(bundle_copy)
    (bundle_copy / ONNX_FILE).unlink()
    (bundle_copy / ONNX_FILE).symlink_to(bundle_copy / "renamed.onnx")
    outside.rename(bundle_copy / "renamed.onnx")  # a link inside the bundle is harmless
    assert DeployedPolicy.load(bundle_copy).obs_dim == 4


def _with_external_data(bundle: Path) -> Path:
    """Rewrites the bundle's ONNX model with its weights in ``policy.onnx.data``; returns the data file."""
    import onnx

    model = onnx.load(str(bundle / ONNX_FILE))
    onnx.save_model(model, str(bundle / ONNX_FILE), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="policy.onnx.data", size_threshold=0)
    manifest = json.loads((bundle / BUNDLE_FILE).read_text())
    manifest["files"]["onnx"]["sha256"] = deploy.sha256_file(bundle / ONNX_FILE)
    (bundle / BUNDLE_FILE).write_text(json.dumps(manifest))
    return bundle / "policy.onnx.data"


def test_onnx_external_data_must_be_listed_and_checksummed(bundle_copy: Path, ppo_bundle: Path) -> None:
    data = _with_external_data(bundle_copy)
    obs = np.full(4, 0.05)
    with pytest.raises(BundleError, match="cannot load policy.onnx .*external-data files must be listed"):
        DeployedPolicy.load(bundle_copy)  # the weights file exists but is not in bundle.json
    manifest = json.loads((bundle_copy / BUNDLE_FILE).read_text())
    manifest["files"]["onnx_data"] = {"path": data.name, "sha256": deploy.sha256_file(data)}
    (bundle_copy / BUNDLE_FILE).write_text(json.dumps(manifest))
    np.testing.assert_array_equal(DeployedPolicy.load(bundle_copy).act(obs), DeployedPolicy.load(ppo_bundle).act(obs))
    weights = bytearray(data.read_bytes())
    weights[-1] ^= 0x01
    data.write_bytes(bytes(weights))
    with pytest.raises(BundleError, match="checksum mismatch for policy.onnx.data"):
        DeployedPolicy.load(bundle_copy)
