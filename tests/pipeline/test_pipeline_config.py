"""The pipeline validates its whole config before the first stage starts."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from sim2real.pipeline import build_stages, pipeline_config_from_dict
from sim2real.presets import CONFIG_DIR, to_dict
from tests.conftest import REPO


def config_dict(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return to_dict(compose(config_name="pipeline", overrides=list(overrides)))


def test_default_config_is_valid_and_plans_every_stage(tmp_path: Path) -> None:
    config = pipeline_config_from_dict(config_dict())
    names = [stage.name for stage in build_stages(config, tmp_path)]
    assert names[:4] == ["source", "zero_shot", "baselines/oracle", f"baselines/scratch_{config.budget}"]
    assert names[-2:] == ["report", "export"]
    assert {f"transfer/{m.name}" for m in config.methods} <= set(names)
    assert {m.name for m in config.methods} == {"finetune", "bc", "dagger", "dann", "sysid"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["methods=[finetune,nope]"], "unknown transfer method 'nope'; known: "),
        (["budget=10"], "budget=10 is less than one episode of inverted_double_pendulum (1000 steps)"),
        (["budget=0"], "budget=0 must be an integer >= 1"),
        (["target=nominal"], "target 'nominal' changes nothing"),
        (["methods=[bc]", "oracle_timesteps=0"], "methods ['bc'] learn from an expert on the target"),
        (["+method_settings.danm.l2sp=0.1"], "method_settings for unknown methods ['danm']; known: "),
        (["+method_settings.finetune.l2sp_weight=0.1"], "method 'finetune': unknown keys ['l2sp_weight']; valid: "),
        (["source_run=/nonexistent/run"], "run folder '/nonexistent/run' does not exist"),
        (["episodes=0"], "episodes=0 must be an integer >= 1"),
        (["+randomization.parameters.masses={dist:uniform,low:2,high:1}"], "low=2 > high=1"),
        (["student={history:2}"], "student needs teacher_timesteps"),
        (["student={teacher_timesteps:1000,hist:2}"], "student: unknown keys ['hist']"),
        (["student={teacher_timesteps:1000,history:0}"], "history=0 must be an integer >= 1"),
        (["student={teacher_timesteps:1000}", "randomization=none"], "privileged observations are the randomized"),
        (["student={teacher_timesteps:1000,teacher_privileged_noise:-0.1}"], "policy.privileged_noise=-0.1"),
        (["student={teacher_timesteps:1000,method:rmaa}"], "distill method='rmaa'"),
        (["student={teacher_timesteps:1000,teacher_train_episode_steps:0}"],
         "student.teacher_train_episode_steps=0 must be an integer >= 1 or null"),
        (["source.train_episode_steps=5000"], "train_episode_steps=5000 exceeds inverted_double_pendulum's episode length"),
        (["source.select_every=200000"], "select_every=200000 is more than timesteps=150000"),
        (["source.select_every=-1"], "select_every=-1 must be an integer >= 0"),
        (["source.select_every=10000", "randomization=adr"], "give select_every=0 with ADR"),
        (["source.select_every=10000", "source.select_episodes=0"], "select_episodes=0 must be an integer >= 1"),
    ],
)
def test_bad_input_is_rejected_up_front(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        pipeline_config_from_dict(config_dict(*overrides))
    assert message in str(err.value)


def test_a_student_block_adds_a_teacher_and_its_student_before_the_report(tmp_path: Path) -> None:
    config = pipeline_config_from_dict(config_dict("student={teacher_timesteps:2000,history:3,iterations:2}", "seed=4"))
    teacher, settings = config.student.teacher, config.student.settings
    assert teacher.policy.privileged == "actor" and teacher.timesteps == 2000 and teacher.seed == 4
    assert teacher.randomization == config.source.randomization and teacher.algo == config.source.algo
    assert (settings.history, settings.iterations, settings.seed) == (3, 2, 4)
    stages = build_stages(config, tmp_path)
    names = [stage.name for stage in stages]
    assert names[-4:] == ["teacher", "student", "report", "export"]
    assert stages[names.index("student")].inputs == (stages[names.index("teacher")],)
    assert pipeline_config_from_dict(config_dict()).student is None
    noisy = pipeline_config_from_dict(config_dict("student={teacher_timesteps:2000,teacher_privileged_noise:0.3,method:rma}"))
    assert noisy.student.teacher.policy.privileged_noise == 0.3 and noisy.student.settings.method == "rma"
    short = pipeline_config_from_dict(config_dict(
        "student={teacher_timesteps:2000,teacher_train_episode_steps:200,train_episode_steps:100}",
        "source.train_episode_steps=300"))
    assert short.source.train_episode_steps == 300 and short.student.teacher.train_episode_steps == 200
    assert short.student.settings.train_episode_steps == 100
    unset = {stage.name: stage for stage in build_stages(config, tmp_path)}
    cut = {stage.name: stage for stage in build_stages(replace(config, source=replace(config.source, train_episode_steps=300)), tmp_path)}
    assert cut["source"].fingerprint["train_episode_steps"] == 300 and cut["source"].digest != unset["source"].digest
    # left unset, the setting is not in the fingerprint: pipelines recorded before it existed still resume
    assert "train_episode_steps" not in unset["source"].fingerprint
    assert not {"train_episode_steps", "lr_schedule", "select_episodes"} & set(unset["student"].fingerprint["settings"])
    annealed = replace(config, student=replace(config.student, settings=replace(settings, lr_schedule="cosine")))
    assert build_stages(annealed, tmp_path)[names.index("student")].fingerprint["settings"]["lr_schedule"] == "cosine"


def test_an_adr_source_recorded_before_nominal_probability_and_boundary_episodes_keeps_its_fingerprint(tmp_path: Path) -> None:
    plain = build_stages(pipeline_config_from_dict(config_dict("randomization=adr")), tmp_path)[0]
    assert not {"nominal_probability", "boundary_episodes"} & set(plain.fingerprint["randomization"]["adr"])  # as recorded before
    anchored = build_stages(pipeline_config_from_dict(config_dict(
        "randomization=adr", "randomization.adr.nominal_probability=0.2")), tmp_path)[0]
    assert anchored.fingerprint["randomization"]["adr"]["nominal_probability"] == 0.2
    assert anchored.digest != plain.digest


def test_the_source_keeps_its_best_checkpoint_when_asked_and_the_teacher_does_not_inherit_it(tmp_path: Path) -> None:
    plain = pipeline_config_from_dict(config_dict("student={teacher_timesteps:2000}"))
    kept = pipeline_config_from_dict(config_dict("source.select_every=25000", "source.select_episodes=4",
                                                 "student={teacher_timesteps:2000}"))
    assert (kept.source.select_every, kept.source.select_episodes) == (25000, 4)
    assert kept.student.teacher.select_every == 0  # a privileged teacher cannot be scored on observations alone
    before = {stage.name: stage for stage in build_stages(plain, tmp_path)}
    after = {stage.name: stage for stage in build_stages(kept, tmp_path)}
    assert "selection" not in before["source"].fingerprint  # off: as recorded before the pipeline offered it
    assert after["source"].fingerprint["selection"] == {"every": 25000, "episodes": 4}
    assert after["source"].digest != before["source"].digest
    assert after["teacher"].digest == before["teacher"].digest


def test_methods_that_learn_from_an_expert_get_the_oracle() -> None:
    config = pipeline_config_from_dict(config_dict("methods=[finetune,bc,dagger]"))
    assert [m.wants_expert for m in config.methods] == [False, True, True]


def test_script_rejects_bad_input_before_any_stage(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "pipeline.py"), "methods=[finetune,distill]",
                             f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode != 0
    assert "unknown transfer method 'distill'" in result.stderr
    assert not (tmp_path / "source").exists()


def test_source_run_of_another_env_is_rejected(ppo_run: Path) -> None:
    with pytest.raises(ValueError, match="is for env 'inverted_pendulum', not 'inverted_double_pendulum'"):
        pipeline_config_from_dict(config_dict(f"source_run={ppo_run}"))


def test_oracle_run_must_match_env_and_target(ppo_run: Path) -> None:
    with pytest.raises(ValueError, match="oracle_run '.*' is for env 'inverted_pendulum', not 'inverted_double_pendulum'"):
        pipeline_config_from_dict(config_dict(f"oracle_run={ppo_run}"))
    with pytest.raises(ValueError, match="oracle_run '.*' was trained on target 'nominal', not 'overloaded'"):
        pipeline_config_from_dict(config_dict("env=inverted_pendulum", f"oracle_run={ppo_run}"))


def test_the_scratch_baseline_spends_at_most_its_budget_in_whole_rollouts(ppo_run: Path, tmp_path: Path) -> None:
    """SB3 finishes the rollout that crosses a budget (4 x 512 steps: 20,480 for 20,000); the same-budget scratch
    run is planned in whole rollouts within it, as fine-tuning is, so it never has more target data than the
    methods it judges. The oracle is not a budgeted run."""
    from sim2real.evaluation.baselines import scratch_runs
    from sim2real.pipeline.runner import _train_baseline, baseline_train_config
    from sim2real.policies import read_run_info
    from sim2real.presets import target_spec
    from sim2real.transfer.finetune import ppo_rollout_plan

    source = read_run_info(ppo_run)
    algo = source.algo_config
    for budget in (20_000, 1_000):
        config = baseline_train_config(source, target_spec("heavy"), budget, seed=0, within_budget=True)
        n_steps, rollouts = ppo_rollout_plan(budget, algo["n_envs"], algo["hyperparams"]["n_steps"],
                                             algo["hyperparams"]["batch_size"])
        assert config.algo.hyperparams["n_steps"] == n_steps
        assert config.timesteps == n_steps * algo["n_envs"] * rollouts <= budget
    assert baseline_train_config(source, target_spec("heavy"), 1_000, seed=0).timesteps == 1_000
    pipeline = SimpleNamespace(target=target_spec("heavy"), seed=0)
    _train_baseline(pipeline, ppo_run, tmp_path / "scratch", 1_000, within_budget=True)
    assert config.timesteps - algo["n_envs"] < read_run_info(tmp_path / "scratch").timesteps_done <= 1_000
    assert scratch_runs(tmp_path / "scratch") == {1_000: tmp_path / "scratch"}  # paired by budget, not its steps
