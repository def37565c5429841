"""Training: learning happens, runs resume, seeds reproduce, bad input fails before training."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from sim2real.evaluation import rollout_returns
from sim2real.policies import load_policy
from sim2real.randomization import make_env
from sim2real.runs import load_metadata, update_metadata, verified_final_steps
from sim2real.training import train
from sim2real.training.callbacks import latest_checkpoint
from sim2real.training.checks import check_hyperparams
from tests.conftest import REPO, tiny_train_config


def test_ppo_with_dr_learns_inverted_pendulum(ppo_run: Path) -> None:
    policy = load_policy(ppo_run)
    trained = rollout_returns(policy.act, "inverted_pendulum", episodes=5, seed=100).returns
    rng = np.random.default_rng(0)
    random = rollout_returns(lambda _obs: rng.uniform(-3, 3, 1), "inverted_pendulum", episodes=5, seed=100).returns
    assert random.mean() < 20  # a random policy drops the pole within a few steps
    assert trained.mean() > 100, trained  # random: < 20
    meta = load_metadata(ppo_run)
    assert meta["complete"] and meta["timesteps_done"] >= 12_000
    assert meta["randomization"]["parameters"]["masses"]["low"] == 0.8
    assert meta["env"]["id"] == "InvertedPendulum-v5"
    assert set(meta["versions"]) >= {"stable-baselines3", "torch", "mujoco", "gymnasium"}
    assert "commit" in meta["git"] and "dirty" in meta["git"]


class StopAt(BaseCallback):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.steps:
            raise KeyboardInterrupt
        return True


class FirstObservation(BaseCallback):
    """Records the raw observations the segment starts from (the envs' first reset)."""

    def __init__(self) -> None:
        super().__init__()
        self.observations: np.ndarray | None = None

    def _on_training_start(self) -> None:
        env = self.model.get_env()
        self.observations = env.get_original_obs().copy() if hasattr(env, "get_original_obs") else self.model._last_obs.copy()

    def _on_step(self) -> bool:
        return True


def test_a_resumed_segment_draws_its_own_stream_reproducibly(tmp_path: Path) -> None:
    import shutil

    config = replace(tiny_train_config("ppo", timesteps=1024), checkpoint_every=256)
    first = FirstObservation()
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", callbacks=[first, StopAt(300)])
    starts = []
    for copy in ("a", "b"):
        shutil.copytree(tmp_path / "run", tmp_path / copy)
        resumed = FirstObservation()
        train(config, tmp_path / copy, resume=True, callbacks=[resumed])
        starts.append(resumed.observations)
    np.testing.assert_array_equal(starts[0], starts[1])  # the same resume point: the same stream
    assert not np.allclose(starts[0], first.observations)  # not the first segment's resets replayed


class SendSigterm(BaseCallback):
    """Sends this process SIGTERM once, at ``steps``."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps, self.sent = steps, False

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.steps and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return True


def test_sigterm_saves_a_checkpoint_where_training_stands(tmp_path: Path) -> None:
    unhandled: list[int] = []
    ours = lambda signum, frame: unhandled.append(signum)  # noqa: E731
    previous = signal.signal(signal.SIGTERM, ours)
    try:
        config = replace(tiny_train_config("ppo", timesteps=1536), checkpoint_every=1024)
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            train(config, tmp_path, callbacks=[SendSigterm(300)])
        assert signal.getsignal(signal.SIGTERM) is ours  # the handler before training is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not unhandled  # training took the signal, not the handler outside it
    stopped = load_metadata(tmp_path)["timesteps_done"]
    assert 300 <= stopped < 1024  # before the first periodic checkpoint
    assert latest_checkpoint(tmp_path).name == f"step_{stopped}"  # saved where it stood, not lost
    assert train(config, tmp_path, resume=True).num_timesteps >= 1536


def test_resume_continues_the_timestep_count(tmp_path: Path) -> None:
    config = tiny_train_config("ppo", timesteps=1536)
    config = type(config)(**{**config.__dict__, "checkpoint_every": 256})
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, callbacks=[StopAt(700)])
    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint is not None
    interrupted_at = load_metadata(tmp_path)["timesteps_done"]
    first_segment = load_metadata(tmp_path)["wall_time_s"]  # recorded at checkpoints and at the interrupt
    assert 700 <= interrupted_at < 1536 and first_segment > 0
    assert not (tmp_path / "model.zip").exists()
    start = time.perf_counter()
    model = train(config, tmp_path, resume=True)
    second_segment = time.perf_counter() - start
    # PPO collects whole rollouts (n_steps x n_envs = 128 steps), so it may overshoot by less than one
    rollout = config.algo.hyperparams["n_steps"] * config.algo.n_envs
    assert 1536 <= model.num_timesteps < 1536 + rollout
    assert (model.num_timesteps - interrupted_at) % rollout == 0  # it continued from the checkpoint's count
    meta = load_metadata(tmp_path)
    assert meta["complete"] and meta["timesteps_done"] == model.num_timesteps
    assert first_segment < meta["wall_time_s"] <= first_segment + second_segment + 0.01  # both segments summed
    # an interrupted run ended where it stands: resumed with the steps it has done, it completes at once
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", callbacks=[StopAt(700)])
    done = load_metadata(tmp_path / "cut")["timesteps_done"]
    cut = type(config)(**{**config.__dict__, "timesteps": done})
    assert train(cut, tmp_path / "cut", resume=True).num_timesteps == done
    assert load_metadata(tmp_path / "cut")["complete"] and (tmp_path / "cut" / "model.zip").is_file()


def test_a_background_run_reports_its_training_episodes_at_each_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a progress bar, each checkpoint prints one line (steps, speed, the last training episodes) and
    metadata.json records the episodes. InvertedPendulum pays 1 per step upright and 0 on the step it falls, so
    an early policy's returns are its episodes' lengths less one."""
    config = replace(tiny_train_config("ppo", timesteps=1024), checkpoint_every=256)
    train(config, tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if "/1024 steps" in line]
    assert [line.split("/")[0] for line in lines] == ["256", "512", "768", "1024"]  # 3 checkpoints and the end
    assert all("steps/s; last " in line and "training episodes: return " in line for line in lines)
    recent = load_metadata(tmp_path)["recent_train_episodes"]
    assert recent["episodes"] == 10 and recent["return_mean"] > 0
    assert recent["return_mean"] == pytest.approx(recent["length_mean"] - 1, abs=0.1)
    assert f"return {recent['return_mean']:.1f}, length {recent['length_mean']:.0f}" in lines[-1]


def test_same_seed_same_weights_different_seed_differs(tmp_path: Path) -> None:
    import torch

    def weights(seed: int, name: str) -> torch.Tensor:
        model = train(tiny_train_config("ppo", timesteps=256, seed=seed), tmp_path / name)
        return torch.cat([p.detach().flatten() for p in model.policy.parameters()])

    a, b, c = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_physics_blowup_truncates_and_is_counted(tmp_path: Path) -> None:
    # gains x1e6 on InvertedPendulum make the simulation diverge within a few steps
    config = tiny_train_config("ppo", timesteps=256, target="nominal")
    from sim2real.randomization import DynamicsSpec

    blowup = DynamicsSpec.from_dict({"name": "explosive", "parameters": {"gains": {"op": "scale", "value": 1.0e6}}})
    config = type(config)(**{**config.__dict__, "target": blowup})
    train(config, tmp_path)  # must not crash
    assert load_metadata(tmp_path)["physics_blowups"] > 0


def run_train_script(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *overrides], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["env=hoper"], "Could not find 'env/hoper'"),
        (["target=slippery"], "Could not find 'target/slippery'"),
        (["+randomization.parameters.torso_mas={value:1.0}", "env=hopper"], "unknown parameter 'torso_mas'"),
        (["+randomization.parameters.masses={dist:uniform,low:1.3,high:0.7}"], "low=1.3 > high=0.7"),
        (["+randomization.parameters.masses={dist:uniform,low:-1,high:2}"], "a mass must be > 0"),
        (["+randomization.effects.action_latency=1.5"], "action_latency=1.5 must be an integer"),
        (["algo.name=a2c"], "algo='a2c' is not valid; valid: ppo, sac, td3"),
        (["timesteps=0"], "timesteps=0 must be an integer >= 1"),
        (["train_episode_steps=0"], "train_episode_steps=0 must be an integer >= 1"),
        (["train_episode_steps=5000"], "train_episode_steps=5000 exceeds inverted_double_pendulum's episode length (1000"),
        (["eval_targets=[heavvy]"], "unknown target 'heavvy'; known: broken_joint"),
        (["randomization=adr", "randomization.adr.thresholds=[900,100]"], "the lower threshold (narrow below it) must be"),
        (["randomization=adr", "randomization.adr.dimensions.masses.step=0"], "masses.step=0 must be a number > 0"),
        (["randomization=adr", "+randomization.adr.dimensions.torso_mas={limits:[0.5,2]}", "env=hopper"],
         "unknown parameter 'torso_mas'"),
    ],
)
def test_train_script_rejects_bad_input_before_training(tmp_path: Path, overrides: list[str], message: str) -> None:
    result = run_train_script(*overrides, f"hydra.run.dir={tmp_path}", "timesteps=1000" if "timesteps=0" not in overrides else "seed=0")
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "model.zip").exists()
    assert not (tmp_path / "metadata.json").exists()


@pytest.mark.parametrize("checkpoint_every", [0, 128, 150])  # 150: a periodic save falls on the run's last step
def test_extending_a_finished_run_continues_its_end_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         checkpoint_every: int) -> None:
    from sim2real.training import trainer

    config = replace(tiny_train_config("td3", timesteps=300), checkpoint_every=checkpoint_every)
    first = train(config, tmp_path)
    done = int(first.num_timesteps)
    if checkpoint_every:
        assert latest_checkpoint(tmp_path).name == f"step_{done}"  # the end state is the latest checkpoint
    end_weights = {k: v.clone() for k, v in first.policy.state_dict().items()}

    def fresh_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("an extension must not start a new model")

    monkeypatch.setattr(trainer, "build_model", fresh_model)
    resumed: dict = {}
    real_learn = type(first).learn

    def learn(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        resumed.update(steps=self.num_timesteps, weights={k: v.clone() for k, v in self.policy.state_dict().items()},
                       buffer=self.replay_buffer.size(), learning_starts=self.learning_starts)
        return real_learn(self, *args, **kwargs)

    monkeypatch.setattr(type(first), "learn", learn)
    extended = train(replace(config, timesteps=600), tmp_path, resume=True)
    assert resumed["steps"] == done and extended.num_timesteps >= 600
    for name, value in end_weights.items():
        torch.testing.assert_close(resumed["weights"][name], value, rtol=0, atol=0)
    assert resumed["buffer"] == (done if checkpoint_every else 0)  # kept with a checkpoint, else starts empty ...
    if not checkpoint_every:  # ... and is refilled before the next update, as at the start of training
        assert resumed["learning_starts"] == done + config.algo.hyperparams.get("learning_starts", 100)


def test_a_killed_extension_without_checkpoints_continues_from_the_final_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An extension marks the run incomplete when it starts; killed then (no checkpoint: checkpoint_every=0), the
    final files of the completed run are still verified against their record and the next resume starts there."""
    from sim2real.training import trainer

    config = replace(tiny_train_config("td3", timesteps=300), checkpoint_every=0)
    train(config, tmp_path)
    update_metadata(tmp_path, complete=False)  # what the killed extension left behind
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("restarted from 0")))
    extended = train(replace(config, timesteps=600), tmp_path, resume=True)
    assert extended.num_timesteps >= 600 and load_metadata(tmp_path)["final_files"]["timesteps"] == extended.num_timesteps


def test_an_extension_killed_between_its_renames_and_its_record_continues_from_the_new_pair(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final pair is recorded as pending before it is renamed into place: killed before the completion is
    recorded (new files, the old record), the run still verifies the new pair and resumes from it, not from 0."""
    from sim2real.training import trainer

    config = replace(tiny_train_config("ppo", timesteps=256), checkpoint_every=0)
    train(config, tmp_path)
    record = trainer.update_metadata

    def killed_at_completion(run_dir, **fields):  # type: ignore[no-untyped-def]
        if fields.get("complete"):
            raise KeyboardInterrupt
        return record(run_dir, **fields)

    monkeypatch.setattr(trainer, "update_metadata", killed_at_completion)
    with pytest.raises(KeyboardInterrupt):
        train(replace(config, timesteps=512), tmp_path, resume=True)
    monkeypatch.undo()
    meta = load_metadata(tmp_path)
    assert not meta["complete"] and meta["final_files"]["timesteps"] == 256  # the old record, the new files
    assert verified_final_steps(tmp_path, meta) == 512
    load_policy(tmp_path)  # a pair the run wrote: not refused
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("restarted from 0")))
    assert train(replace(config, timesteps=512), tmp_path, resume=True).num_timesteps == 512
    meta = load_metadata(tmp_path)
    assert meta["complete"] and meta["final_files"]["timesteps"] == 512 and meta["final_files_pending"] is None


def test_a_pending_pair_alone_is_checked_too(tmp_path: Path) -> None:
    """A run whose only record is a pending pair (its first completion killed after the renames) still has its
    files checked against it: a file replaced since is named, and the run cannot continue from them."""
    from sim2real.runs import PENDING_FINAL_FILES_KEY, final_files_problem, final_files_record

    (tmp_path / "model.zip").write_bytes(b"model")
    (tmp_path / "vecnormalize.pkl").write_bytes(b"statistics")
    record = {"complete": False, PENDING_FINAL_FILES_KEY: final_files_record(tmp_path, 512)}
    assert final_files_problem(tmp_path, record) is None and verified_final_steps(tmp_path, record) == 512
    (tmp_path / "vecnormalize.pkl").write_bytes(b"other statistics")
    assert "vecnormalize.pkl in" in final_files_problem(tmp_path, record)
    assert verified_final_steps(tmp_path, record) is None


def test_a_run_completed_before_final_files_were_recorded_survives_a_killed_extension(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that completed without a final-files record gets one when an extension starts, so the extension,
    killed before any checkpoint, leaves final files the next resume can verify and continue from."""
    from sim2real.training import trainer

    config = replace(tiny_train_config("ppo", timesteps=256), checkpoint_every=0)
    train(config, tmp_path)
    legacy = load_metadata(tmp_path)
    del legacy["final_files"], legacy["final_files_pending"]
    (tmp_path / "metadata.json").write_text(json.dumps(legacy))
    monkeypatch.setattr(trainer, "DynamicsLogger", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):  # after the extension marked the run incomplete
        train(replace(config, timesteps=512), tmp_path, resume=True)
    meta = load_metadata(tmp_path)
    assert not meta["complete"] and verified_final_steps(tmp_path, meta) == 256
    monkeypatch.undo()
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("restarted from 0")))
    assert train(replace(config, timesteps=512), tmp_path, resume=True).num_timesteps == 512


def test_a_model_and_statistics_from_different_saves_are_refused(tmp_path: Path) -> None:
    """model.zip and vecnormalize.pkl are replaced one after the other: a pair that is not the one the run's last
    completion recorded (here: the statistics of another run) is refused by name, not acted on."""
    for name, seed in (("a", 0), ("b", 1)):
        train(tiny_train_config("ppo", timesteps=256, seed=seed), tmp_path / name)
    load_policy(tmp_path / "a")
    shutil.copyfile(tmp_path / "b" / "vecnormalize.pkl", tmp_path / "a" / "vecnormalize.pkl")
    with pytest.raises(ValueError, match=r"vecnormalize.pkl in '.*a' is not what the run's last completion wrote"):
        load_policy(tmp_path / "a")
    assert verified_final_steps(tmp_path / "a", load_metadata(tmp_path / "a")) is None
    assert verified_final_steps(tmp_path / "b", load_metadata(tmp_path / "b")) == 256


def test_overwrite_with_an_unknown_hyperparameter_keeps_the_old_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_train_config("ppo", timesteps=256), run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    result = run_train_script("env=inverted_pendulum", "overwrite=true", "+algo.hyperparams.n_stepz=512",
                              f"hydra.run.dir={run}")
    assert result.returncode == 2
    assert "algo.hyperparams.n_stepz is not a hyperparameter of ppo; valid: batch_size" in result.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing removed or rewritten
    with pytest.raises(ValueError, match="algo.hyperparams.seed is set by the trainer"):
        check_hyperparams("td3", {"seed": 3}, 1)


def test_env_spec_from_record_for_registered_and_custom_robots(monkeypatch: pytest.MonkeyPatch) -> None:
    from sim2real.envs import registry
    from sim2real.envs.registry import env_spec_from_record, trust_entry_points
    from sim2real.randomization import make_env

    monkeypatch.setattr(registry, "_TRUSTED_CODE", set())

    registered = env_spec_from_record({"name": "hopper", "id": "Hopper-v5", "kwargs": {}})
    assert (registered.name, registered.id) == ("hopper", "Hopper-v5")
    by_id = env_spec_from_record({"name": "my_pendulum", "id": "InvertedPendulum-v5",
                                     "kwargs": {"reset_noise_scale": 0.02}, "max_episode_steps": 200})
    assert (by_id.id, by_id.kwargs, by_id.max_episode_steps) == ("InvertedPendulum-v5", {"reset_noise_scale": 0.02}, 200)
    record = {"name": "my_robot", "id": None, "entry_point": "gymnasium.envs.mujoco.inverted_pendulum_v5:InvertedPendulumEnv",
              "kwargs": {}, "max_episode_steps": 100}
    with pytest.raises(ValueError, match="a run folder does not choose code to import"):
        env_spec_from_record(record)  # an entry point nobody registered or trusted
    trust_entry_points([record["entry_point"]])
    by_entry_point = env_spec_from_record(record)
    env = make_env(by_entry_point)
    env.reset(seed=0)
    assert env.spec is None or env.spec.max_episode_steps in (None, 100)
    env.close()


def test_linear_schedules_decay_to_zero_and_survive_a_resume(tmp_path: Path) -> None:
    """RL Zoo's lin_<value> for PPO's learning rate and clip range: value at the start, half way down at
    mid-run, carried by the checkpoint; a bad schedule is refused before training."""
    config = tiny_train_config("ppo", timesteps=512)
    hyperparams = {**config.algo.hyperparams, "learning_rate": "lin_1e-3", "clip_range": "lin_0.2"}
    config = replace(config, algo=replace(config.algo, hyperparams=hyperparams), checkpoint_every=256)
    model = train(config, tmp_path)
    assert model.lr_schedule(1.0) == pytest.approx(1e-3) and model.lr_schedule(0.5) == pytest.approx(5e-4)
    assert model.clip_range(0.25) == pytest.approx(0.05)
    # PPO finishes the rollout that crosses the end, where SB3's progress goes negative: no negative rate
    assert model.lr_schedule(-0.28) == 0.0 and model.clip_range(-0.28) == 0.0
    assert model.policy.optimizer.param_groups[0]["lr"] < 1e-3  # it decayed during training
    resumed = train(replace(config, timesteps=1024), tmp_path, resume=True)
    assert resumed.lr_schedule(0.5) == pytest.approx(5e-4)
    for bad, message in (("lin_x", "write lin_<number>"), ("lin_-1", "must be a number > 0")):
        with pytest.raises(ValueError, match=message):
            check_hyperparams("ppo", {"learning_rate": bad}, 1)


def test_train_episode_steps_cut_training_episodes_but_not_the_robot(tmp_path: Path) -> None:
    """Training episodes end after train_episode_steps (time-limit truncation, so SB3 bootstraps the value);
    the run's env record keeps the robot's own length, so evaluation and export see whole episodes."""
    config = replace(tiny_train_config("ppo", timesteps=512), train_episode_steps=5)
    model = train(config, tmp_path)
    lengths = [episode["l"] for episode in model.ep_info_buffer]
    assert lengths and max(lengths) == 5  # the pole stays up >= 5 steps at the start of training
    venv = model.get_env()
    venv.reset()
    for _ in range(5):
        *_, dones, infos = venv.step(np.zeros((venv.num_envs, 1)))
    assert all(dones) and all(info["TimeLimit.truncated"] for info in infos)
    meta = load_metadata(tmp_path)
    assert meta["train_episode_steps"] == 5 and meta["env"]["max_episode_steps"] is None
    robot = make_env(load_policy(tmp_path).info.env)
    assert robot.spec is not None and robot.spec.max_episode_steps == 1000
    robot.close()
