"""The evaluator's report shows an expert-assisted method's expert and its cost, read from the run folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim2real.evaluation import Baselines, EvalSettings, PolicyEntry, evaluate_policies
from sim2real.policies import read_run_info
from sim2real.presets import target_spec
from sim2real.training import train
from sim2real.transfer import prepare_transfer, run_transfer
from tests.conftest import REPO, tiny_train_config

TARGET = "heavy"


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (weak) PPO run trained on the target: the expert BC learns from."""
    run_dir = tmp_path_factory.mktemp("oracle")
    train(tiny_train_config("ppo", timesteps=2048, randomization="none", target=TARGET), run_dir)
    return run_dir


def test_expert_and_its_target_steps_appear_in_the_report(ppo_run: Path, oracle: Path, tmp_path: Path) -> None:
    method, setup, info = prepare_transfer(ppo_run, target_spec(TARGET), "bc", {"expert": str(oracle), "epochs": 2},
                                           1000, seed=0)
    run_transfer(method, setup, info, tmp_path / "bc")
    report = evaluate_policies([PolicyEntry(tmp_path / "bc", "bc")], target_spec(TARGET), episodes=2, seeds=1,
                               out_dir=tmp_path / "report", baselines=Baselines(oracle=oracle), workers=1,
                               settings=EvalSettings(similarity=None, plots=False, resamples=200))
    oracle_steps = read_run_info(oracle).timesteps_done
    bc = report.policy("bc")
    assert bc.expert_free is False and bc.expert.expert_run == str(oracle)
    assert bc.expert.target_steps == oracle_steps and bc.target_steps_incl_expert == 1000 + oracle_steps
    assert next(row for row in report.policies if row.role == "zero_shot").expert_free is True
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"| bc | policy | **no** | expert {oracle.name} ({oracle_steps} target steps) | 1000 | {1000 + oracle_steps} |" \
        in markdown
    assert report.context["headline"]["expert_assisted"] == ["bc"]


@pytest.mark.slow
def test_default_pipeline_report_has_the_expert_column(tmp_path: Path) -> None:
    """The default pipeline's methods include BC and DAgger with the oracle as expert: the column shows it."""
    tiny = ["env=inverted_pendulum", "source.timesteps=3000", "source.progress_bar=false", "oracle_timesteps=3000",
            "budget=2000", "episodes=2", "eval_seeds=1", "workers=1", "zero_shot_episodes=2", "export=false",
            "methods=[finetune,bc]", "+method_settings.bc.epochs=3", f"hydra.run.dir={tmp_path}"]
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "pipeline.py"), *tiny], capture_output=True,
                          text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    rows = {row["name"]: row for row in report["policies"]}
    oracle_steps = rows["oracle"]["target_steps_used"]
    assert rows["bc"]["expert"]["label"] == "oracle" and rows["bc"]["expert"]["target_steps"] == oracle_steps
    assert rows["bc"]["target_steps_incl_expert"] == rows["bc"]["target_steps_used"] + oracle_steps
    assert rows["finetune"]["expert_free"] is True and report["headline"]["best_expert_free"] == "finetune"
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| expert-free | expert |" in markdown and f"expert oracle ({oracle_steps} target steps)" in markdown
