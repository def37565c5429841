"""Teacher -> student distillation: a privileged teacher, a history student written as an ordinary run."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.evaluation.rollout import RolloutResult, privileged_rollout_returns
from sim2real.export import export_bundle
from sim2real.policies import Policy
from sim2real.policies.deploy import BUNDLE_FILE, DeployedPolicy
from sim2real.presets import load_preset, target_spec
from sim2real.randomization import DynamicsSpec, make_env
from sim2real.randomization.history import history_layout
from sim2real.runs import read_json
from sim2real.training import distill as distill_module
from sim2real.training import train
from sim2real.training.config import PolicyConfig
from sim2real.training.distill import (
    DistillSettings,
    Views,
    adaptation_module,
    check_randomization,
    distill,
    load_teacher,
)
from sim2real.training.report import evaluate_run
from tests.conftest import REPO, tiny_train_config


def randomization_spec(name: str) -> DynamicsSpec:
    return DynamicsSpec.from_dict(load_preset("randomization", name), default_name=name)


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


def test_a_randomization_on_another_privileged_scale_is_refused_before_anything_is_written(
        teacher_run: Path, tmp_path: Path) -> None:
    """The teacher learned its privileged input normalized over its own randomization's ranges: under wider
    ranges the same robot reads as another, and every label would come from a misinformed teacher."""
    teacher = load_teacher(teacher_run)
    check_randomization(teacher, randomization_spec("mass_gain"))  # the teacher's own ranges: fine
    with pytest.raises(ValueError, match=r"'wide_mass_gain'.*cart_mass"):
        distill(teacher_run, tmp_path / "student", TINY, randomization_spec("wide_mass_gain"))
    assert not (tmp_path / "student").exists()
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "distill.py"), f"teacher={teacher_run}", "randomization=latency3",
         f"hydra.run.dir={tmp_path / 'script'}"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2 and "action_latency" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "script").exists()


def test_the_final_check_runs_student_and_teacher_on_the_teachers_robot(
        student_run: Path, teacher_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A teacher trained on a target (heavy): the student's check runs there too, not on the nominal robot."""
    teacher = load_teacher(teacher_run)
    teacher = Policy(teacher.model, teacher.normalizer, replace(teacher.info, target=target_spec("heavy")))
    seen: dict[str, dict] = {}

    def recorded(role: str):
        def rollout(*args, **kwargs) -> RolloutResult:
            seen[role] = kwargs
            return RolloutResult(np.ones(1), np.ones(1, dtype=int), 0)
        return rollout

    monkeypatch.setattr(distill_module, "rollout_returns", recorded("student"))
    monkeypatch.setattr(distill_module, "privileged_rollout_returns", recorded("teacher"))
    distill_module._final_check(teacher, Policy.load(student_run), teacher.info.randomization, TINY)
    assert seen["student"]["target"].name == "heavy"
    assert seen["student"]["randomization"] == seen["teacher"]["randomization"] == teacher.info.randomization


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="history=0 must be an integer >= 1"):
        DistillSettings(history=0)
    with pytest.raises(ValueError, match="beta"):
        DistillSettings(beta=1.5)
    with pytest.raises(ValueError, match="unknown"):
        DistillSettings.from_dict({"histroy": 4})
    with pytest.raises(ValueError, match="train_episode_steps=0 must be an integer >= 1 or null"):
        DistillSettings(train_episode_steps=0)


def test_collection_episodes_are_cut_at_train_episode_steps(teacher_run: Path, tmp_path: Path) -> None:
    settings = replace(TINY, iterations=1, steps_per_iteration=200, train_episode_steps=4, eval_episodes=0)
    metadata = distill(teacher_run, tmp_path, settings)
    rounds = metadata["metrics"]["rounds"]
    assert rounds[0]["steps"] == 200 and metadata["settings"]["train_episode_steps"] == 4
    assert rounds[0]["episode_return_mean"] <= 4.0  # inverted_pendulum: 1 per step, so no episode ran past 4 steps


def test_script_writes_a_student(teacher_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "distill.py"), f"teacher={teacher_run}", "history=2", "iterations=1",
         "steps_per_iteration=200", "epochs=1", "eval_episodes=0", "randomization=mass_gain",
         "randomization.parameters.masses.dist=log_uniform", f"hydra.run.dir={out}"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = read_json(out / "metadata.json")
    assert metadata["env"]["history"] == 2
    assert metadata["randomization"]["parameters"]["masses"]["dist"] == "log_uniform"  # same ranges, another distribution
    assert "0 target steps" in result.stdout


def test_script_never_writes_into_a_run_it_did_not_make(teacher_run: Path, tmp_path: Path) -> None:
    before = {p.relative_to(teacher_run): p.stat().st_mtime_ns for p in teacher_run.rglob("*")}
    command = [sys.executable, str(REPO / "scripts" / "distill.py"), f"teacher={teacher_run}", "history=2",
               "iterations=1", "steps_per_iteration=200", "epochs=1", "eval_episodes=0"]
    result = subprocess.run([*command, f"hydra.run.dir={teacher_run}"], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 2 and "holds a training run" in result.stderr, result.stderr[-2000:]
    assert {p.relative_to(teacher_run): p.stat().st_mtime_ns for p in teacher_run.rglob("*")} == before
    student = tmp_path / "student"
    assert subprocess.run([*command, f"hydra.run.dir={student}"], capture_output=True, cwd=REPO, timeout=300).returncode == 0
    model = (student / "model.zip").stat().st_mtime_ns
    again = subprocess.run([*command, f"hydra.run.dir={student}"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert again.returncode == 2 and "overwrite=true" in again.stderr, again.stderr[-2000:]
    assert (student / "model.zip").stat().st_mtime_ns == model
    bad = subprocess.run([*command, "history=0", f"hydra.run.dir={tmp_path / 'short'}"], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "history=0" in bad.stderr and not (tmp_path / "short").exists()


@pytest.fixture(scope="module")
def rma_run(teacher_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("rma_student")
    distill(teacher_run, run_dir, replace(TINY, method="rma", adaptation_hidden=(32,)))
    return run_dir


def test_rma_student_is_the_teacher_fed_its_estimate(rma_run: Path, teacher_run: Path) -> None:
    """The rma student is the teacher's own layers: fed the true privileged observation instead of its
    estimate, it acts exactly as the teacher; only the adaptation module was trained."""
    teacher, student = load_teacher(teacher_run), Policy.load(rma_run)
    module = adaptation_module(student)
    teacher_weights = teacher.model.policy.state_dict()
    for name, value in student.model.policy.state_dict().items():
        if "features_extractor." not in name:
            torch.testing.assert_close(value, teacher_weights[name], rtol=0, atol=0)
    env = make_env(student.info.env, randomization=teacher.info.randomization, privileged=True)
    views = Views(history_layout(env), 0, 3)
    obs, _ = env.reset(seed=3)
    for _ in range(20):
        stacked = views.student(obs)
        teacher_input = torch.as_tensor(teacher.normalize(views.teacher(obs))).unsqueeze(0)
        with torch.no_grad():
            seen = module.teacher_observation(student.obs_tensor(stacked).unsqueeze(0))
            torch.testing.assert_close(seen, teacher_input[:, :4], rtol=0, atol=1e-5)  # its own observation, mapped
            oracle = teacher.model.policy._predict(torch.cat([seen, teacher_input[:, 4:]], dim=-1), deterministic=True)
        np.testing.assert_allclose(oracle.numpy()[0], np.clip(teacher.act(views.teacher(obs)), -3, 3), atol=1e-5)
        obs, *_ = env.step(student.act(stacked))
    env.close()
    rounds = student.info.record["metrics"]["rounds"]
    assert student.info.record["settings"]["method"] == "rma" and len(rounds) == 2
    assert all(np.isfinite(r["action_error"]) for r in rounds)


@pytest.mark.parametrize("loss", ["privileged", "action"])
def test_rma_fit_lowers_the_estimation_error(loss: str, teacher_run: Path, tmp_path: Path) -> None:
    """The adaptation module learns: fitting cuts its error on the data's privileged observation (RMA) or,
    through the teacher's frozen layers, on the teacher's actions."""
    teacher = load_teacher(teacher_run)
    distill(teacher_run, tmp_path / "s", replace(TINY, method="rma", iterations=1, steps_per_iteration=1000, epochs=30,
                                                 eval_episodes=0, adaptation_loss=loss))
    student = Policy.load(tmp_path / "s")
    (fit,) = student.info.record["metrics"]["rounds"]
    assert fit["train_error_after"] < 0.5 * fit["train_error_before"]
    teacher_weights = teacher.model.policy.state_dict()
    for name, value in student.model.policy.state_dict().items():  # only the module trained
        if "features_extractor." not in name:
            torch.testing.assert_close(value, teacher_weights[name], rtol=0, atol=0)


def test_rma_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="distill method"):
        DistillSettings(method="rmaa")
    with pytest.raises(ValueError, match="adaptation_hidden"):
        DistillSettings(method="rma", adaptation_hidden=())
    with pytest.raises(ValueError, match="adaptation_loss"):
        DistillSettings(method="rma", adaptation_loss="latent")


def test_rma_student_exports_with_its_history(rma_run: Path, tmp_path: Path) -> None:
    """The adaptation module is part of the exported graph: closed-loop parity over >= 1000 steps."""
    export_bundle(rma_run, tmp_path / "bundle")
    manifest = read_json(tmp_path / "bundle" / BUNDLE_FILE)
    parity = manifest["parity"]
    assert manifest["state"]["history"]["steps"] == 3 and parity["closed_loop"] is True
    assert parity["observations"] >= 1000 and parity["episode_resets"] >= 1
    assert parity["onnx_max_abs_diff"] <= 1e-5 and parity["torchscript_max_abs_diff"] <= 1e-5
    deployed, student = DeployedPolicy.load(tmp_path / "bundle"), Policy.load(rma_run)
    env = make_env(student.info.env)
    obs, _ = env.reset(seed=5)
    deployed.reset()
    for _ in range(30):
        raw = obs[:4]  # the robot's current observation; the runtime keeps the history itself
        action = deployed.act(raw)
        np.testing.assert_allclose(action, student.act(obs), atol=1e-5)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()


def test_a_teacher_is_evaluated_on_each_target_with_that_targets_privileged_observation(teacher_run: Path) -> None:
    """train.py's final evaluation of a teacher: parameter targets with their privileged values; targets with
    effects (latency) left out, since the privileged observation does not hold them."""
    results = evaluate_run(teacher_run, (target_spec("heavy"), target_spec("delayed")), episodes=2, seed=0)
    assert [row["target"] for row in results] == ["nominal", "heavy"]
    teacher = load_teacher(teacher_run)
    heavy = privileged_rollout_returns(teacher, 2, 0, target=target_spec("heavy"))
    assert results[1]["mean"] == pytest.approx(float(heavy.returns.mean()))
    with pytest.raises(ValueError, match="effects"):
        privileged_rollout_returns(teacher, 1, 0, target=target_spec("delayed"))


def test_round_selection_keeps_the_best_scoring_round(teacher_run: Path, tmp_path: Path) -> None:
    """Every round is scored on the same episodes; the saved student is the best round's, weights and statistics."""
    settings = replace(TINY, iterations=3, eval_episodes=0, select_episodes=2)
    metadata = distill(teacher_run, tmp_path, settings)
    scores = [r["selection_return"] for r in metadata["metrics"]["rounds"]]
    kept = metadata["metrics"]["kept_round"]
    assert len(scores) == 3 and kept == int(np.argmax(scores)) and metadata["metrics"]["selection_return"] == max(scores)
    student = Policy.load(tmp_path)
    again = distill_module.rollout_returns(student, student.info.env, 2, 20_000 + settings.seed,
                                           randomization=student.info.randomization, target=student.info.target)
    assert float(np.mean(again.returns)) == pytest.approx(max(scores))
    assert metadata["metrics"]["selection_steps"] >= 3 * 2  # every scored episode's steps are reported


def test_round_selection_restores_an_earlier_round(student_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores = iter([5.0, 1.0])
    monkeypatch.setattr(distill_module, "rollout_returns",
                        lambda *args, **kwargs: RolloutResult(np.array([next(scores)]), np.array([7]), 0))
    student = Policy.load(student_run)
    selection = distill_module.RoundSelection(student.info.randomization, student.info.target, replace(TINY, select_episodes=1))
    obs = np.linspace(-0.2, 0.2, student.model.observation_space.shape[0]).astype(np.float32)
    before, mean_before = student.act(obs), student.normalizer.mean.copy()
    selection.score(student, 0)
    with torch.no_grad():
        for parameter in student.model.policy.parameters():
            parameter.add_(0.5)
    student.normalizer = distill_module.fitted_normalizer(np.ones((4, len(obs))))
    assert not np.allclose(student.act(obs), before)
    selection.score(student, 1)
    assert selection.restore_best(student) == {"kept_round": 0, "selection_return": 5.0, "selection_steps": 14}
    np.testing.assert_allclose(student.act(obs), before)
    np.testing.assert_array_equal(student.normalizer.mean, mean_before)


def test_select_episodes_is_checked() -> None:
    with pytest.raises(ValueError, match="select_episodes=-1 must be an integer >= 0"):
        DistillSettings(select_episodes=-1)
