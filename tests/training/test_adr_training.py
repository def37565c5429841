"""Automatic domain randomization in training: ranges move, are logged, checkpointed, resumed and reproducible."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sim2real.randomization import DynamicsSpec
from sim2real.runs import load_metadata, read_json
from sim2real.training import train
from sim2real.training.callbacks import ADR_FILE, latest_checkpoint
from tests.conftest import tiny_train_config
from tests.training.test_train import StopAt

# InvertedPendulum pays 1 per step, so every return is >= 1: with thresholds [0, 1] every full buffer widens
# its bound; with [1e6, 2e6] every full buffer narrows it.
WIDEN, NARROW = [0.0, 1.0], [1.0e6, 2.0e6]


def adr_config(thresholds: list[float], timesteps: int = 1024, seed: int = 0, init=(1.0, 1.0), **changes):
    spec = DynamicsSpec.from_dict({"name": "adr", "adr": {
        "dimensions": {"masses": {"init": list(init), "limits": [0.25, 4.0], "step": 0.1},
                       "gains": {"init": list(init), "limits": [0.25, 4.0], "step": 0.1},
                       "action_latency": {"init": [0, 0], "limits": [0, 2], "step": 1}},
        "thresholds": thresholds, "buffer_size": 2, "boundary_probability": 0.5}})
    config = tiny_train_config("ppo", timesteps=timesteps, seed=seed)
    return dataclasses.replace(config, randomization=spec, **changes)


def test_ranges_widen_and_are_logged_everywhere(tmp_path: Path) -> None:
    train(adr_config(WIDEN), tmp_path)
    adr = load_metadata(tmp_path)["adr"]
    assert adr["ranges"]["masses"][0] < 1.0 < adr["ranges"]["masses"][1]
    assert adr["ranges"]["action_latency"][1] >= 1
    steps = [entry["timesteps"] for entry in adr["trajectory"]]
    assert steps[0] == 0 and steps == sorted(steps) and len(steps) > 5
    assert (tmp_path / "adr_ranges.png").stat().st_size > 1000
    events = EventAccumulator(str(next((tmp_path / "tb").iterdir())))
    events.Reload()
    assert {"adr/masses_low", "adr/masses_high", "adr/action_latency_high", "adr/masses_high_return"} <= set(events.Tags()["scalars"])
    assert events.Scalars("adr/masses_high_return")[-1].value == pytest.approx(adr["performance"][0][1])
    assert events.Scalars("adr/masses_high")[-1].value == pytest.approx(adr["ranges"]["masses"][1])


def test_later_stages_see_the_ranges_the_run_reached(tmp_path: Path) -> None:
    from sim2real.policies import Policy

    train(adr_config(WIDEN, timesteps=512), tmp_path)
    reached = load_metadata(tmp_path)["adr"]["ranges"]
    spec = Policy.load(tmp_path).info.randomization
    assert {d.target: list(d.init) for d in spec.adr.dimensions} == reached
    assert reached["masses"] != [1.0, 1.0]


def test_ranges_do_not_widen_when_the_policy_fails_at_the_bounds(tmp_path: Path) -> None:
    train(adr_config(NARROW), tmp_path)
    adr = load_metadata(tmp_path)["adr"]
    assert adr["ranges"]["masses"] == [1.0, 1.0] and len(adr["trajectory"]) == 1
    assert not any(adr["buffers"][0]) or max(map(len, adr["buffers"][0])) < 2  # full buffers were decided and emptied


def test_cut_training_episodes_report_their_boundaries_and_scale_the_thresholds(tmp_path: Path) -> None:
    """Thresholds are returns of whole episodes: cut at 3 of InvertedPendulum's 1000 steps, [300, 900] becomes
    [0.9, 2.7]. Every cut episode returns 3 (InvertedPendulum cannot fall in 3 steps), so every full buffer
    widens its bound: the cut episodes' boundaries are reported, and unscaled thresholds could never pass."""
    config = adr_config([300.0, 900.0], train_episode_steps=3)
    train(config, tmp_path)
    adr = load_metadata(tmp_path)["adr"]
    assert adr["thresholds"] == pytest.approx([0.9, 2.7])
    widened = sum(1 for before, after in zip(adr["trajectory"], adr["trajectory"][1:])
                  for lo0, lo1, hi0, hi1 in zip(before["low"], after["low"], before["high"], after["high"])
                  if lo1 < lo0 or hi1 > hi0)
    assert widened == len(adr["trajectory"]) - 1 > 20  # every change widened, and a 3-step cut gives many


def test_whole_boundary_episodes_outlast_the_cut_and_meet_unscaled_thresholds(tmp_path: Path) -> None:
    """With ``boundary_episodes: whole`` the boundary evaluations of a run cut at 3 steps play on: their returns
    (InvertedPendulum pays 1 per step) exceed the cut, and the thresholds stay those of the whole episode."""
    config = adr_config([0.0, 1.0], train_episode_steps=3)
    spec = config.randomization
    config = dataclasses.replace(config, randomization=dataclasses.replace(
        spec, adr=dataclasses.replace(spec.adr, boundary_episodes="whole")))
    train(config, tmp_path)
    adr = load_metadata(tmp_path)["adr"]
    assert adr["thresholds"] == pytest.approx([0.0, 1.0])
    judged = [mean for sides in adr["performance"] for mean in sides if mean is not None]
    assert judged and max(judged) > 3.0  # a cut boundary episode could return 3 at most


@pytest.mark.parametrize(("max_episode_steps", "train_episode_steps", "scale"),
                         [(None, None, 1.0), (500, None, 0.5), (500, 100, 0.1), (2000, None, 2.0)])
def test_thresholds_scale_with_the_training_episodes_share_of_the_registered_one(
        max_episode_steps: int | None, train_episode_steps: int | None, scale: float) -> None:
    """Thresholds are returns of InvertedPendulum's registered 1000-step episode: a run whose episodes last 500
    (an overridden time limit) or 100 steps (a cut) must pass proportionally lower ones."""
    from sim2real.training.trainer import adr_state

    config = adr_config([300.0, 900.0], train_episode_steps=train_episode_steps)
    config = dataclasses.replace(config, env=dataclasses.replace(config.env, max_episode_steps=max_episode_steps))
    state = adr_state(config, checkpoint=None)
    assert (state.lower_threshold, state.upper_threshold) == pytest.approx((300.0 * scale, 900.0 * scale))
    # boundary episodes played whole last the run's episode, cut or not
    whole = dataclasses.replace(config.randomization, adr=dataclasses.replace(config.randomization.adr,
                                                                               boundary_episodes="whole"))
    state = adr_state(dataclasses.replace(config, randomization=whole), checkpoint=None)
    unscaled = (max_episode_steps or 1000) / 1000
    assert (state.lower_threshold, state.upper_threshold) == pytest.approx((300.0 * unscaled, 900.0 * unscaled))


def test_same_seed_same_trajectory_different_seed_differs(tmp_path: Path) -> None:
    def trajectory(seed: int, name: str) -> list:
        train(adr_config(WIDEN, timesteps=512, seed=seed), tmp_path / name)
        return load_metadata(tmp_path / name)["adr"]["trajectory"]

    first = trajectory(0, "a")
    assert first == trajectory(0, "b")
    assert first != trajectory(1, "c")


def test_checkpoints_carry_the_ranges_and_resume_continues_them(tmp_path: Path) -> None:
    config = adr_config(WIDEN, timesteps=1536, checkpoint_every=256)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, callbacks=[StopAt(700)])
    saved = read_json(latest_checkpoint(tmp_path) / ADR_FILE)
    assert len(saved["trajectory"]) > 1  # the ranges had moved before the interruption
    train(config, tmp_path, resume=True)
    final = load_metadata(tmp_path)["adr"]
    assert final["trajectory"][: len(saved["trajectory"])] == saved["trajectory"]  # continued, not restarted
    assert final["ranges"]["masses"][1] >= saved["ranges"]["masses"][1]
    # the counters carried on, not restarted: every move in or out is one step of the whole trajectory
    moves = sum(side[0] + side[2] for sides in final["decisions"] for side in sides)
    assert moves == len(final["trajectory"]) - 1


class EnvRanges(BaseCallback):
    """Reads the ranges the (worker) envs sample from when training ends."""

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.high = [list(high) for high in self.training_env.get_attr("high")]


def test_subprocess_envs_follow_the_ranges(tmp_path: Path) -> None:
    config = adr_config(WIDEN, timesteps=512)
    config = dataclasses.replace(config, algo=dataclasses.replace(config.algo, vec_env="subproc", n_envs=2))
    probe = EnvRanges()
    train(config, tmp_path, callbacks=[probe])
    ranges = load_metadata(tmp_path)["adr"]["ranges"]
    assert ranges["masses"][1] > 1.0
    assert probe.high == [[ranges["masses"][1], ranges["gains"][1], ranges["action_latency"][1]]] * 2
