"""Teacher -> student distillation: a privileged teacher, a history student written as an ordinary run."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim2real.policies import Policy
from sim2real.randomization import make_env
from sim2real.randomization.history import history_layout
from sim2real.runs import read_json
from sim2real.training import train
from sim2real.training.config import PolicyConfig
from sim2real.training.distill import DistillSettings, Views, distill, load_teacher
from tests.conftest import REPO, tiny_train_config

TINY = DistillSettings(history=3, iterations=2, steps_per_iteration=300, epochs=2, eval_episodes=1)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("teacher")
    config = tiny_train_config("ppo", timesteps=1000, randomization="mass_gain")
    train(replace(config, policy=PolicyConfig("actor")), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def student_run(teacher_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("student")
    distill(teacher_run, run_dir, TINY)
    return run_dir


def test_student_is_an_ordinary_history_run_that_cost_no_target_steps(student_run: Path, teacher_run: Path) -> None:
    student = Policy.load(student_run)
    info = student.info
    assert info.kind == "distill" and info.env.history == 3 and info.privileged == "none"
    assert info.target_steps_used == 0 and info.steps_spent == 0 and info.complete
    assert info.record["teacher_run"] == str(teacher_run) and info.timesteps_done == 600
    assert student.normalizer is not None and student.normalizer.mean.shape == (3 * (4 + 1),)
    metrics = info.record["metrics"]
    assert [r["beta"] for r in metrics["rounds"]] == [1.0, 0.5]
    assert {"student_return_mean", "teacher_return_mean"} <= set(metrics)
    env = make_env(info.env)
    obs, _ = env.reset(seed=0)
    assert student.act(obs).shape == (1,)
    env.close()


def test_views_give_each_policy_its_own_observation(teacher_run: Path) -> None:
    teacher = load_teacher(teacher_run)
    spec = replace(teacher.info.env, history=3)
    env = make_env(spec, randomization=teacher.info.randomization, privileged=True)
    views = Views(history_layout(env), 0, 3)
    obs, info = env.reset(seed=0)
    obs, *_ = env.step(np.array([0.5]))
    np.testing.assert_array_equal(views.student(obs), obs[:15])
    np.testing.assert_array_equal(views.teacher(obs), np.concatenate([obs[:4], obs[-3:]]))
    assert teacher.act(views.teacher(obs)).shape == (1,)
    env.close()


def test_only_a_privileged_teacher_is_accepted(ppo_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a privileged teacher"):
        distill(ppo_run, tmp_path / "student", TINY)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="history=0 must be an integer >= 1"):
        DistillSettings(history=0)
    with pytest.raises(ValueError, match="beta"):
        DistillSettings(beta=1.5)
    with pytest.raises(ValueError, match="unknown"):
        DistillSettings.from_dict({"histroy": 4})


def test_script_writes_a_student(teacher_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "distill.py"), f"teacher={teacher_run}", "history=2", "iterations=1",
         "steps_per_iteration=200", "epochs=1", "eval_episodes=0", f"hydra.run.dir={out}"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_json(out / "metadata.json")["env"]["history"] == 2
    assert "0 target steps" in result.stdout
