"""End-to-end evaluation with real policies: report files, determinism, worker independence, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sim2real.envs.registry import env_spec_from_dict
from sim2real.evaluation import (
    Baselines,
    EvalSettings,
    PolicyEntry,
    RolloutJob,
    SimilaritySettings,
    SweepSpec,
    evaluate_policies,
    run_jobs,
)
from sim2real.evaluation import evaluator as evaluator_module
from sim2real.evaluation.parallel import RANDOM_POLICY, episode_seed_bases
from sim2real.presets import target_spec
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import update_metadata
from sim2real.training import train
from tests.conftest import tiny_train_config

FAST = EvalSettings(resamples=500, similarity=None)


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A barely trained PPO policy (one rollout of updates): about as good as random."""
    run_dir = tmp_path_factory.mktemp("untrained")
    train(tiny_train_config("ppo", timesteps=128), run_dir)
    return run_dir


def test_end_to_end_report_with_random_baseline(ppo_run: Path, tmp_path: Path) -> None:
    report = evaluate_policies([PolicyEntry(ppo_run, "dr")], target_spec("heavy"), episodes=2, seeds=2,
                               out_dir=tmp_path, baselines=Baselines(random=True), workers=1, settings=FAST)
    data = json.loads((tmp_path / "report.json").read_text())
    assert [p["name"] for p in data["policies"]] == ["dr", "random"]
    dr, random = report.policy("dr"), report.policy("random")
    assert dr.source_return.n == dr.target_return.n == 4
    assert dr.source_return.mean > 5 * random.source_return.mean  # the trained policy balances far longer
    assert dr.target_steps_used == 0 and dr.run_dir == str(ppo_run)
    assert dr.normalized_score is None  # no oracle
    assert (tmp_path / "report.md").read_text().startswith("# Transfer report: inverted_pendulum on target 'heavy'")
    assert (tmp_path / "returns.png").stat().st_size > 10_000
    assert data["episode_seed_bases"] == episode_seed_bases(FAST.eval_seed, 2)


def test_random_policy_posing_as_adapted_is_flagged(ppo_run: Path, untrained_run: Path, tmp_path: Path) -> None:
    report = evaluate_policies([PolicyEntry(untrained_run, "posing")], DynamicsSpec(), episodes=3, seeds=2,
                               out_dir=tmp_path, zero_shot=ppo_run, workers=1, settings=FAST)
    posing = report.policy("posing")
    assert report.policy(ppo_run.name).role == "zero_shot"
    assert posing.negative_transfer is True
    assert posing.versus["zero_shot"].ci_high < 0
    # The good policy as "adapted" against the bad one as zero-shot: an improvement, not flagged.
    reverse = evaluate_policies([PolicyEntry(ppo_run, "good")], DynamicsSpec(), episodes=3, seeds=2,
                                out_dir=tmp_path / "reverse", zero_shot=untrained_run, workers=1, settings=FAST)
    assert reverse.policy("good").negative_transfer is False


def test_transfer_run_finds_its_zero_shot_source(ppo_run: Path, tmp_path: Path) -> None:
    adapted = tmp_path / "adapted"
    shutil.copytree(ppo_run, adapted)
    update_metadata(adapted, kind="transfer", source_run=str(ppo_run), method="finetune", budget=5000,
                    target_steps_used=4000)
    report = evaluate_policies([adapted], target_spec("heavy"), episodes=2, seeds=1, out_dir=tmp_path / "out",
                               workers=1, settings=FAST)
    row = report.policy("adapted")
    assert row.target_steps_used == 4000 and row.budget == 5000 and row.method == "finetune"
    assert report.policy(ppo_run.name).role == "zero_shot"
    # Same weights, same episode seeds: identical returns, an exactly zero difference, no flag.
    assert row.versus["zero_shot"].mean == 0.0 and row.negative_transfer is False


def test_a_policy_trained_on_the_target_counts_its_training_as_target_steps(ppo_run: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    on_target = tmp_path / "on_target"
    train(replace(tiny_train_config("ppo", timesteps=128), target=target_spec("heavy")), on_target)
    report = evaluate_policies([PolicyEntry(ppo_run, "dr"), PolicyEntry(on_target, "on_target")], target_spec("heavy"),
                               episodes=1, seeds=1, out_dir=tmp_path / "r", workers=1, settings=FAST)
    assert report.policy("dr").target_steps_used == 0                     # trained on nominal dynamics
    assert report.policy("on_target").target_steps_used >= 128           # every step was a target step


def test_results_do_not_depend_on_the_worker_count(ppo_run: Path) -> None:
    env = env_spec_from_dict({"name": "inverted_pendulum"})
    heavy = target_spec("heavy")
    jobs = [RolloutJob(policy=str(ppo_run), env=env, seed=7, episodes=2, target=heavy),
            RolloutJob(policy=RANDOM_POLICY, env=env, seed=8, episodes=3),
            RolloutJob(policy=str(ppo_run), env=env, seed=9, episodes=2)]
    serial, parallel = run_jobs(jobs, workers=1), run_jobs(jobs, workers=2)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a.returns, b.returns)
        np.testing.assert_array_equal(a.lengths, b.lengths)
    again = run_jobs(jobs[1:2], workers=1)[0]
    np.testing.assert_array_equal(again.returns, serial[1].returns)  # the random baseline is seeded
    other = run_jobs([RolloutJob(policy=RANDOM_POLICY, env=env, seed=99, episodes=3)], workers=1)[0]
    assert not np.array_equal(other.returns, serial[1].returns)


@pytest.fixture()
def no_rollouts(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("a rollout started before the input was checked")

    monkeypatch.setattr(evaluator_module, "run_keyed", forbidden)


@pytest.mark.usefixtures("no_rollouts")
def test_bad_input_fails_before_any_rollout(ppo_run: Path, tmp_path: Path) -> None:
    heavy = target_spec("heavy")
    with pytest.raises(ValueError, match="not a run folder"):
        evaluate_policies([tmp_path], heavy, episodes=2, seeds=1, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="does not exist"):
        evaluate_policies([tmp_path / "missing"], heavy, episodes=2, seeds=1, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="episodes=0"):
        evaluate_policies([ppo_run], heavy, episodes=0, seeds=1, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="seeds=0"):
        evaluate_policies([ppo_run], heavy, episodes=2, seeds=0, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="no policies"):
        evaluate_policies([], heavy, episodes=2, seeds=1, out_dir=tmp_path / "o")
    misfit = DynamicsSpec.from_dict({"name": "hopper_only", "parameters": {"thigh_mass": {"op": "scale", "value": 2.0}}})
    with pytest.raises(ValueError, match="thigh_mass"):
        evaluate_policies([ppo_run], misfit, episodes=2, seeds=1, out_dir=tmp_path / "o")
    broken = DynamicsSpec.from_dict({"name": "broken", "effects": {"disabled_actuators": [3]}})
    with pytest.raises(ValueError, match="out of range"):
        evaluate_policies([ppo_run], broken, episodes=2, seeds=1, out_dir=tmp_path / "o")
    typo = EvalSettings(similarity=None, sweep=SweepSpec(groups={"masses": (1.0,)}, policies=("random", "oracel")))
    with pytest.raises(ValueError, match=r"sweep.policies: unknown \['oracel'\]; known: .*random"):
        evaluate_policies([ppo_run], heavy, episodes=2, seeds=1, out_dir=tmp_path / "o", settings=typo,
                          baselines=Baselines(random=True))
    with pytest.raises(ValueError, match=r"baselines: unknown keys \['train_missing'\]"):
        Baselines.from_dict({"train_missing": True})


@pytest.mark.usefixtures("no_rollouts")
def test_policies_of_different_envs_are_rejected(ppo_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "hopper_run"
    shutil.copytree(ppo_run, other)
    update_metadata(other, env={"name": "hopper", "id": "Hopper-v5", "kwargs": {}, "max_episode_steps": None})
    with pytest.raises(ValueError, match="hopper"):
        evaluate_policies([ppo_run, other], target_spec("heavy"), episodes=2, seeds=1, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="oracle baseline"):
        evaluate_policies([ppo_run], target_spec("heavy"), episodes=2, seeds=1, out_dir=tmp_path / "o",
                          baselines=Baselines(oracle=other))


def test_domain_similarity_is_reported_and_warns_for_a_no_op_target(ppo_run: Path, tmp_path: Path) -> None:
    settings = EvalSettings(resamples=200, similarity=SimilaritySettings(episodes=2, max_steps=150, max_samples=300))
    with pytest.warns(UserWarning, match="no-op"):
        report = evaluate_policies([ppo_run], target_spec("low_friction"), episodes=1, seeds=1, out_dir=tmp_path,
                                   workers=1, settings=settings)
    similarity = report.context["similarity"]
    assert not similarity["distinguishable"] and abs(similarity["mmd2"]) < 0.01
    assert similarity["p_value"] == 1.0 and any("no-op" in w for w in report.warnings)
    assert "NOT distinguishable" in (tmp_path / "report.md").read_text()
