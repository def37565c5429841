"""The evaluator builds each policy's own env: a history policy, its exported bundle and a memoryless
policy evaluated side by side."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim2real.evaluation import EvalSettings, PolicyEntry, evaluate_policies
from sim2real.export import export_bundle
from sim2real.policies import Policy
from sim2real.presets import target_spec
from sim2real.training import train
from tests.conftest import tiny_train_config


@pytest.fixture(scope="module")
def history_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("history_eval")
    config = tiny_train_config("ppo", timesteps=1000, randomization="latency3")
    train(replace(config, env=replace(config.env, history=2)), run_dir)
    return run_dir


def test_history_policy_bundle_and_memoryless_policy_together(history_run: Path, ppo_run: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    export_bundle(history_run, bundle)
    report = evaluate_policies([PolicyEntry(history_run, "history"), PolicyEntry(bundle, "history_bundle"),
                                PolicyEntry(ppo_run, "memoryless")], target_spec("delayed"), episodes=2, seeds=1,
                               out_dir=tmp_path / "report", workers=1, settings=EvalSettings(resamples=200, similarity=None))
    rows = {row.name: row for row in report.policies}
    assert set(rows) == {"history", "history_bundle", "memoryless"}
    # the bundle carries the history as its own state: the same returns as the run it came from
    for which in ("source_return", "target_return"):
        bundle, run = getattr(rows["history_bundle"], which), getattr(rows["history"], which)
        assert bundle.mean == pytest.approx(run.mean, abs=1e-6) and bundle.n == run.n == 2


def test_a_policy_refuses_observations_without_its_history(history_run: Path) -> None:
    with pytest.raises(ValueError, match="history=2"):
        Policy.load(history_run).act(np.zeros(4))
