"""Policies with memory export with their state explicit: history and LSTM bundles, closed-loop parity,
the runtime's state and reset; the asymmetric actor-critic exports its actor alone; a teacher is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.export import export_bundle, format_summary
from sim2real.policies import Policy
from sim2real.policies.deploy import (
    BUNDLE_FILE,
    STATE_INPUT_NAME,
    TORCHSCRIPT_FILE,
    BundleError,
    DeployedPolicy,
)
from sim2real.randomization import make_env
from sim2real.runs import read_json, write_json_atomic
from sim2real.training import train
from sim2real.training.config import PolicyConfig
from tests.conftest import tiny_train_config

HISTORY = 3


def _run(factory: pytest.TempPathFactory, name: str, config) -> Path:  # type: ignore[no-untyped-def]
    run_dir = factory.mktemp(name)
    train(config, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def history_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tiny_train_config("ppo", timesteps=2000, randomization="latency3")
    return _run(tmp_path_factory, "history_run", replace(config, env=replace(config.env, history=HISTORY)))


@pytest.fixture(scope="module")
def recurrent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, "recurrent_run", tiny_train_config("recurrent_ppo", timesteps=1024, randomization="latency3"))


@pytest.fixture(scope="module")
def asymmetric_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tiny_train_config("ppo", timesteps=1000, randomization="default")
    return _run(tmp_path_factory, "asymmetric_run", replace(config, policy=PolicyConfig("critic")))


def _bundle(factory: pytest.TempPathFactory, run_dir: Path, name: str) -> Path:
    out = factory.mktemp(name) / "bundle"
    export_bundle(run_dir, out)
    return out


@pytest.fixture(scope="module")
def history_bundle(history_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bundle(tmp_path_factory, history_run, "history_bundle")


@pytest.fixture(scope="module")
def recurrent_bundle(recurrent_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bundle(tmp_path_factory, recurrent_run, "recurrent_bundle")


@pytest.mark.parametrize("kind", ["history", "recurrent"])
def test_closed_loop_parity_across_episode_resets(kind: str, request: pytest.FixtureRequest) -> None:
    parity = read_json(request.getfixturevalue(f"{kind}_bundle") / BUNDLE_FILE)["parity"]
    assert parity["closed_loop"] is True and "exported graph" in parity["closed_loop_driver"]
    assert parity["observations"] >= 1000 and parity["episode_resets"] >= 1
    assert parity["onnx_max_abs_diff"] <= 1e-5 and parity["torchscript_max_abs_diff"] <= 1e-5


def test_history_bundle_says_what_it_needs(history_bundle: Path) -> None:
    manifest = read_json(history_bundle / BUNDLE_FILE)
    state = manifest["state"]
    assert state["kind"] == "history" and state["initial"] == "zeros" and state["dtype"] == "float64"
    history = state["history"]
    assert history["steps"] == HISTORY and "zeros" in history["before_full"]
    assert history["layout"][:2] == ["obs[t]", "obs[t-1]"] and history["state_layout"] == history["layout"][1:]
    assert manifest["observation_space"]["shape"] == [4]                   # the robot's own observation
    assert state["dim"] == HISTORY * (4 + 1) - 4
    assert manifest["io"]["state_input"]["name"] == STATE_INPUT_NAME


def test_runtime_state_is_the_training_wrapper_history(history_run: Path, history_bundle: Path) -> None:
    """Driving the env with the bundle: its state after each step is exactly the wrapper's stack minus o_t,
    and its actions are the SB3 policy's on that stack."""
    policy, deployed = Policy.load(history_run), DeployedPolicy.load(history_bundle)
    env = make_env(policy.info.env, randomization=policy.info.randomization)
    stacked, _ = env.reset(seed=5)
    deployed.reset()
    for _ in range(30):
        action = deployed.act(stacked[:4])
        np.testing.assert_allclose(action, policy.act(stacked), rtol=0, atol=1e-5)
        stacked, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
        np.testing.assert_allclose(deployed.state[0, 4:], stacked[8:], rtol=0, atol=0)   # shifted history
        np.testing.assert_array_equal(deployed.state[0, :4], stacked[4:8])  # o_{t-1}: the observation fed last
    env.close()


@pytest.mark.parametrize("kind", ["history", "recurrent"])
def test_runtime_keeps_state_and_reset_clears_it(kind: str, request: pytest.FixtureRequest) -> None:
    deployed = DeployedPolicy.load(request.getfixturevalue(f"{kind}_bundle"))
    assert deployed.stateful and deployed.state is None
    observations = np.random.default_rng(0).normal(0, 0.5, size=(6, deployed.obs_dim))
    first = np.stack([deployed.act(obs) for obs in observations])
    assert deployed.state.shape == (1, deployed.state_dim)
    carried = np.stack([deployed.act(obs) for obs in observations])     # same inputs, later in the episode
    deployed.reset()
    again = np.stack([deployed.act(obs) for obs in observations])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, carried)
    with pytest.raises(ValueError, match="stepping 1 episode"):
        deployed.act(observations[:3])
    deployed.reset()
    assert deployed.act(observations[:3]).shape == (3, 1)                # a batch: three robots at once


def test_recurrent_bundle_summary_says_it_has_no_batched_noise_floor(recurrent_bundle: Path) -> None:
    manifest = read_json(recurrent_bundle / BUNDLE_FILE)
    assert manifest["parity"]["sb3_batch_vs_single_max_abs_diff"] is None  # a batch is parallel episodes
    assert "SB3 batched vs single: n/a (recurrent)" in format_summary(manifest)


@pytest.mark.parametrize("kind", ["history", "recurrent"])
def test_reset_of_some_episodes_in_a_batch_leaves_the_others(kind: str, request: pytest.FixtureRequest) -> None:
    bundle = request.getfixturevalue(f"{kind}_bundle")
    batch, alone = DeployedPolicy.load(bundle), DeployedPolicy.load(bundle)
    observations = np.random.default_rng(2).normal(0, 0.5, size=(5, 3, batch.obs_dim))
    for obs in observations[:4]:
        batch.act(obs)
    carried = batch.state.copy()
    batch.reset([1])                                      # robot 1's episode ended; 0 and 2 go on
    np.testing.assert_array_equal(batch.state[[0, 2]], carried[[0, 2]])
    assert not batch.state[1].any() and carried[1].any()
    action = batch.act(observations[4])
    np.testing.assert_allclose(action[1], alone.act(observations[4][1]), rtol=0, atol=1e-6)  # a fresh episode
    batch.reset([])                                       # no episode ended this step
    batch.reset(np.array([True, False, False]))
    assert not batch.state[0].any() and batch.state[2].any()
    with pytest.raises(ValueError, match="reset mask of shape \\(2,\\) does not match the 3 episode"):
        batch.reset(np.array([True, False]))
    with pytest.raises(ValueError, match="reset indices \\[3\\] are not rows of the 3 episode"):
        batch.reset([3])


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_takes_and_returns_the_state(recurrent_run: Path, recurrent_bundle: Path) -> None:
    policy = Policy.load(recurrent_run)
    module = torch.jit.load(str(recurrent_bundle / TORCHSCRIPT_FILE))
    dim = read_json(recurrent_bundle / BUNDLE_FILE)["state"]["dim"]
    state, policy_actions, graph_actions = torch.zeros(1, dim), [], []
    policy.reset()
    for obs in np.random.default_rng(1).normal(0, 0.5, size=(10, 4)):
        policy_actions.append(policy.act(obs))
        with torch.no_grad():
            action, state = module(torch.as_tensor(obs).unsqueeze(0), state)
        graph_actions.append(action.numpy()[0])
    np.testing.assert_allclose(np.stack(graph_actions), np.stack(policy_actions), rtol=0, atol=1e-5)


def test_recurrent_policy_reset_clears_the_lstm_state(recurrent_run: Path) -> None:
    policy = Policy.load(recurrent_run)
    assert policy.recurrent
    observations = np.random.default_rng(2).normal(0, 0.5, size=(5, 4))
    first = np.stack([policy.act(o) for o in observations])
    carried = np.stack([policy.act(o) for o in observations])
    policy.reset()
    np.testing.assert_array_equal(np.stack([policy.act(o) for o in observations]), first)
    assert not np.array_equal(first, carried)


def test_runtime_refuses_a_state_the_graph_does_not_have(history_bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(history_bundle, copy)
    manifest = read_json(copy / BUNDLE_FILE)
    manifest["state"]["dim"] += 1
    write_json_atomic(copy / BUNDLE_FILE, manifest)
    with pytest.raises(BundleError, match="state dim"):
        DeployedPolicy.load(copy)
    manifest["state"] = None
    write_json_atomic(copy / BUNDLE_FILE, manifest)
    with pytest.raises(BundleError, match="declares no state"):
        DeployedPolicy.load(copy)


def test_asymmetric_actor_exports_without_the_privileged_part(asymmetric_run: Path, tmp_path: Path) -> None:
    policy = Policy.load(asymmetric_run)
    assert policy.info.privileged == "critic" and policy.obs_dim == 4
    manifest = export_bundle(asymmetric_run, tmp_path / "bundle")
    assert manifest["observation_space"]["shape"] == [4] and manifest["state"] is None
    assert manifest["parity"]["onnx_max_abs_diff"] <= 1e-5
    assert len(manifest["observation_normalization"]["mean"]) == 4
    obs = np.random.default_rng(3).normal(0, 0.5, size=(8, 4))
    privileged = np.random.default_rng(4).uniform(-1, 1, size=(8, len(policy.info.privileged_names)))
    # the actor never reads the privileged part: the same actions with or without it
    np.testing.assert_array_equal(policy.act(obs), policy.act(np.concatenate([obs, privileged], axis=1)))
    np.testing.assert_allclose(DeployedPolicy.load(tmp_path / "bundle").act(obs), policy.act(obs), rtol=0, atol=1e-5)


def test_a_privileged_teacher_is_not_exported(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    config = tiny_train_config("ppo", timesteps=256, randomization="default")
    run_dir = _run(tmp_path_factory, "teacher_run", replace(config, policy=PolicyConfig("actor")))
    with pytest.raises(ValueError, match="privileged teacher"):
        export_bundle(run_dir, tmp_path / "bundle")
    with pytest.raises(ValueError, match="privileged teacher"):
        Policy.load(run_dir).act(np.zeros(4))
    assert not (tmp_path / "bundle").exists()
