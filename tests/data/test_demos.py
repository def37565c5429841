"""Demonstration datasets: recording, atomic save/load round trip, env checks, budget cuts; the LQR expert."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim2real.data import (
    DemoDataset,
    collect_demonstrations,
    load_demonstrations,
    record_expert_demonstrations,
    save_demonstrations,
    sidecar_path,
)
from sim2real.data.experts import save_lqr_expert
from sim2real.envs.registry import resolve_env
from sim2real.evaluation.rollout import rollout_returns
from sim2real.policies import load_policy
from sim2real.presets import target_spec
from sim2real.randomization.factory import make_env


@pytest.fixture(scope="module")
def lqr_high_gravity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LQR oracle for InvertedPendulum designed on the high_gravity target (no training)."""
    run_dir = tmp_path_factory.mktemp("lqr_high_gravity")
    save_lqr_expert(run_dir, "inverted_pendulum", target_spec("high_gravity"))
    return run_dir


def random_actions(env_name: str, steps: int | None = None, episodes: int | None = None, seed: int = 0) -> DemoDataset:
    """A small dataset of uniformly random actions on ``env_name`` (no policy needed)."""
    env = make_env(env_name)
    rng = np.random.default_rng(seed)
    space = env.action_space
    info = {"env": {"name": env_name, "id": env.spec.id}, "target": {"name": "nominal"}}
    data = collect_demonstrations(lambda obs: rng.uniform(space.low, space.high).astype(space.dtype), env,
                                  steps=steps, episodes=episodes, seed=seed, info=info)
    env.close()
    return data


def test_lqr_expert_is_an_oracle_on_its_target(lqr_high_gravity: Path) -> None:
    policy = load_policy(lqr_high_gravity)
    result = rollout_returns(policy.act, "inverted_pendulum", episodes=3, seed=0, target=target_spec("high_gravity"))
    assert np.all(result.returns == 1000)
    assert policy.info.kind == "scripted" and policy.normalizer is None


def test_lqr_expert_rejects_an_env_whose_observation_is_not_the_state(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Hopper-v5 observes"):
        save_lqr_expert(tmp_path / "x", "hopper")


def test_round_trip_keeps_arrays_and_provenance(lqr_high_gravity: Path, tmp_path: Path) -> None:
    data = record_expert_demonstrations(lqr_high_gravity, target_spec("high_gravity"), steps=1500, seed=3)
    path = save_demonstrations(data, tmp_path / "demos")
    assert path == tmp_path / "demos.npz" and sidecar_path(path).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.json", "demos.npz"]  # no temporary files left
    loaded = load_demonstrations(path, "inverted_pendulum")
    for name in ("observations", "actions", "rewards", "terminations", "truncations", "episode_starts"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))
    assert loaded.observations.dtype == np.float64 and loaded.actions.shape == (1500, 1)
    info = json.loads(sidecar_path(path).read_text())
    assert info["env"]["id"] == "InvertedPendulum-v5"
    assert info["target"]["name"] == "high_gravity" and info["target"]["parameters"]["gravity"]["value"] == 2.0
    assert info["expert"]["run_dir"] == str(lqr_high_gravity)
    assert info["counts"] == {"steps": 1500, "episodes": 2, "complete_episodes": 1, "last_episode_cut": True,
                              "mean_return": 1000.0, "std_return": 0.0}
    assert info["spaces"]["action"] == {"shape": [1], "dtype": "float32", "low": [-3.0], "high": [3.0]}
    assert info["spaces"]["observation"]["low"] == ["-inf"] * 4
    assert np.flatnonzero(loaded.episode_starts).tolist() == [0, 1000]
    assert loaded.truncations[999] and not loaded.truncations[-1]  # the time limit; the cut episode has no flag


def test_observations_are_raw_and_actions_are_what_the_expert_sent(lqr_high_gravity: Path) -> None:
    data = record_expert_demonstrations(lqr_high_gravity, target_spec("high_gravity"), steps=50, seed=0)
    expert = load_policy(lqr_high_gravity)
    np.testing.assert_allclose(data.actions, expert.act(data.observations), atol=1e-6)
    env = make_env("inverted_pendulum", target=target_spec("high_gravity"))
    first, _ = env.reset(seed=0)
    np.testing.assert_array_equal(data.observations[0], first)


def test_episodes_mode_records_whole_episodes() -> None:
    data = random_actions("inverted_pendulum", episodes=3)
    assert data.n_episodes == 3 and not data.last_episode_cut
    assert data.terminations[-1] or data.truncations[-1]
    assert data.counts()["complete_episodes"] == 3
    assert data.episode_returns().sum() == pytest.approx(data.rewards.sum())


def test_same_seed_same_data_different_seed_differs(lqr_high_gravity: Path) -> None:
    target = target_spec("high_gravity")
    a = record_expert_demonstrations(lqr_high_gravity, target, steps=20, seed=1)
    b = record_expert_demonstrations(lqr_high_gravity, target, steps=20, seed=1)
    c = record_expert_demonstrations(lqr_high_gravity, target, steps=20, seed=2)
    np.testing.assert_array_equal(a.observations, b.observations)
    assert not np.allclose(a.observations, c.observations)


def test_loading_for_another_env_fails_naming_both(tmp_path: Path) -> None:
    path = save_demonstrations(random_actions("hopper", steps=20), tmp_path / "hopper.npz")
    with pytest.raises(ValueError, match=r"recorded on Hopper-v5 with observations \(11,\).*InvertedPendulum-v5 has observations \(4,\)"):
        load_demonstrations(path, "inverted_pendulum")
    with pytest.raises(ValueError, match="InvertedPendulum-v5"):
        load_demonstrations(path, make_env("inverted_pendulum"))  # a built env works too
    assert len(load_demonstrations(path, "hopper")) == 20


def test_a_history_env_takes_demonstrations_recorded_with_its_history(tmp_path: Path) -> None:
    """Recorded on a history env, observations are the stacked ones: they fit that env, not the plain robot."""
    spec = replace(resolve_env("inverted_pendulum"), history=3)
    env = make_env(spec)
    rng = np.random.default_rng(0)
    data = collect_demonstrations(lambda obs: rng.uniform(-1, 1, 1).astype(np.float32), env, steps=20, seed=0,
                                  info={"env": spec.to_record(), "target": {"name": "nominal"}})
    env.close()
    path = save_demonstrations(data, tmp_path / "history.npz")
    assert load_demonstrations(path, spec).observations.shape[1] == env.observation_space.shape[0] > 4
    with pytest.raises(ValueError, match=r"observation shape differ"):
        load_demonstrations(path, "inverted_pendulum")


def test_broken_files_are_rejected(tmp_path: Path) -> None:
    path = save_demonstrations(random_actions("inverted_pendulum", steps=10), tmp_path / "d.npz")
    info = json.loads(sidecar_path(path).read_text())
    info["counts"]["steps"] = 11
    sidecar_path(path).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="out of sync"):
        load_demonstrations(path)
    sidecar_path(path).unlink()
    with pytest.raises(ValueError, match="no sidecar"):
        load_demonstrations(path)
    with pytest.raises(ValueError, match="does not exist"):
        load_demonstrations(tmp_path / "missing.npz")


def test_first_steps_keeps_whole_episodes_when_one_fits() -> None:
    data = random_actions("inverted_pendulum", steps=60)
    starts = np.flatnonzero(data.episode_starts)
    assert len(starts) >= 3
    cut = data.first_steps(int(starts[2]) + 1)
    assert len(cut) == starts[2] and not cut.last_episode_cut and cut.info["counts"]["steps"] == len(cut)
    assert len(data.first_steps(int(starts[1]) - 1)) == starts[1] - 1  # not one whole episode fits: exact cut
    assert data.first_steps(10_000) is data


def test_collect_needs_exactly_one_of_steps_and_episodes() -> None:
    env = make_env("inverted_pendulum")
    with pytest.raises(ValueError, match="exactly one"):
        collect_demonstrations(lambda o: np.zeros(1, np.float32), env, steps=5, episodes=1)
    with pytest.raises(ValueError, match="steps=0 must be an integer >= 1"):
        collect_demonstrations(lambda o: np.zeros(1, np.float32), env, steps=0)
