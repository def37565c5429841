"""Recorded trajectories: what is recorded, the dataset format, and its checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim2real.randomization import make_env
from sim2real.sysid.data import (
    ARRAYS,
    MeasurementSettings,
    Trajectories,
    check_env,
    excitation,
    load_trajectories,
    save_trajectories,
)
from sim2real.sysid.replay import Replay, ScaledModels
from tests.sysid.conftest import ENV, ENV_SPEC, record


def test_rows_are_encoder_readings_around_each_step(nominal_data: Trajectories) -> None:
    data = nominal_data
    assert len(data) == 400 and data.episode_starts[0] and data.n_episodes >= 4
    assert data.qpos.shape == (400, 2) and data.qvel.shape == (400, 2) and data.actions.shape == (400, 1)
    data.check_continuity()  # next_* of a row is the following row's reading inside a trajectory
    assert all(end - start <= 100 for start, end in data.episode_bounds())  # trajectory_length caps each
    assert data.info["control_dt"] == pytest.approx(0.04) and data.info["env"]["name"] == ENV


def test_same_seed_same_recording_different_seed_differs() -> None:
    first, again, other = record("heavy", 200), record("heavy", 200), record("heavy", 200, seed=1)
    assert all(np.array_equal(getattr(first, n), getattr(again, n)) for n in ARRAYS)
    assert not np.array_equal(first.actions, other.actions)


def test_excitation_noise_is_not_the_identification_split_stream() -> None:
    """The recording and the identification take the same seed; the excitation's noise must not be the
    hold-out split's stream (both were ``SeedSequence(seed).spawn(k)[0]``)."""
    env = make_env(ENV)
    box = env.action_space
    env.close()
    split_stream = np.random.default_rng(np.random.SeedSequence(0).spawn(3)[0])
    as_split = excitation("random", box, 0.5, split_stream, trajectory_length=100)
    split_actions = np.array([as_split(None, t) for t in range(100)])
    recorded = record("nominal", 100).actions
    assert np.abs(recorded - split_actions).max() > 0.1
    again = record("nominal", 100).actions
    assert np.array_equal(recorded, again)


def test_two_seeds_never_record_the_same_trajectory() -> None:
    """A chirp is the same every trajectory, so only the reset state tells trajectories apart: seed 1 must not
    start where seed 0 did (with reset seeds ``seed + i`` its trajectory i was seed 0's i + 1)."""
    starts = [{tuple(np.round(data.qpos[start], 12)) for start, _ in data.episode_bounds()}
              for data in (record("heavy", 500, seed=0, excitation="chirp"), record("heavy", 500, seed=1, excitation="chirp"))]
    assert min(map(len, starts)) >= 5 and not starts[0] & starts[1]


def test_nominal_replay_is_exact_and_a_shift_is_not(nominal_data: Trajectories) -> None:
    models = ScaledModels(ENV_SPEC)
    replay = Replay(ENV_SPEC, nominal_data, horizon=3)
    assert replay.loss(models({})) < 1e-18
    assert replay.loss(models({"gravity": 1.5})) > 1e-4


def test_latency_replays_as_the_latency_wrapper_applies_it() -> None:
    data = record("delayed", 300)  # 2-step action latency
    replay, nominal = Replay(ENV_SPEC, data), ScaledModels(ENV_SPEC)({})
    assert replay.loss(nominal, latency=2) < 1e-18 < replay.loss(nominal, latency=0)


def test_excitations_stay_in_bounds_and_chirp_sweeps() -> None:
    space = make_env(ENV).action_space
    rng = np.random.default_rng(0)
    chirp = excitation("chirp", space, 1.0, rng, dt=0.04, trajectory_length=100)
    actions = np.array([chirp(None, t) for t in range(100)])
    assert np.all(actions >= space.low) and np.all(actions <= space.high) and actions.std() > 0.5
    noisy = excitation("policy", space, 0.3, rng, policy=lambda obs: np.zeros(1))
    assert np.all(np.abs(noisy(None, 0)) <= space.high)
    with pytest.raises(ValueError, match="excitation='sine' is not valid; valid: policy, random, chirp"):
        excitation("sine", space, 0.3, rng)


def test_save_load_roundtrip(tmp_path: Path, nominal_data: Trajectories) -> None:
    path = save_trajectories(nominal_data, tmp_path / "logs")
    assert path.name == "logs.npz" and (tmp_path / "logs.json").is_file()
    loaded = load_trajectories(path, ENV)
    assert all(np.array_equal(getattr(loaded, n), getattr(nominal_data, n)) for n in ARRAYS)


def test_a_robot_log_needs_only_the_arrays_env_and_control_period(tmp_path: Path) -> None:
    n = 30
    qpos = np.cumsum(np.full((n + 1, 2), 0.001), axis=0)
    logs = Trajectories(qpos[:-1], np.zeros((n, 2)), np.zeros((n, 1)), qpos[1:], np.zeros((n, 2)),
                        np.eye(1, n, dtype=bool)[0], info={"env": {"name": ENV}, "control_dt": 0.04})
    loaded = load_trajectories(save_trajectories(logs, tmp_path / "robot.npz"), ENV)
    assert len(loaded) == n and loaded.n_episodes == 1


def test_dataset_from_another_env_is_rejected(tmp_path: Path, nominal_data: Trajectories) -> None:
    path = save_trajectories(nominal_data, tmp_path / "ip.npz")
    with pytest.raises(ValueError, match="do not fit env 'hopper'.*recorded for env 'inverted_pendulum'.*qpos has 2 columns"):
        load_trajectories(path, "hopper")
    with pytest.raises(ValueError, match="control_dt=0.01 s but inverted_pendulum's control period is 0.04 s"):
        check_env(replace(nominal_data, info={**nominal_data.info, "control_dt": 0.01}), ENV)


def test_misaligned_or_incomplete_files_are_rejected(tmp_path: Path, nominal_data: Trajectories) -> None:
    shifted = replace(nominal_data, next_qpos=np.roll(nominal_data.next_qpos, 1, axis=0))
    with pytest.raises(ValueError, match="row 0: next_qpos differs from row 1's qpos"):
        shifted.check_continuity()
    path = save_trajectories(nominal_data, tmp_path / "d.npz")
    sidecar = json.loads((tmp_path / "d.json").read_text())
    del sidecar["control_dt"]
    (tmp_path / "d.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match=r"lacks \['control_dt'\]"):
        load_trajectories(path)
    with pytest.raises(ValueError, match="must begin with an episode start"):
        Trajectories(*(getattr(nominal_data, n)[1:] if n != "episode_starts" else np.zeros(399, bool) for n in ARRAYS))
    with pytest.raises(ValueError, match=r"'episode_starts' must be 1-D.*\(400, 1\)"):  # a column broadcast in the checks
        replace(nominal_data, episode_starts=nominal_data.episode_starts[:, None])


def test_too_few_steps_for_one_trajectory() -> None:
    with pytest.raises(ValueError, match="150 measurement steps are too few for one trajectory of trajectory_length=200"):
        MeasurementSettings("random", 0.3, 150, 200)
