"""Evaluation: seeded rollouts, transfer-gap statistics, baselines, domain similarity, sweeps, reports and plots."""

from sim2real.evaluation.baselines import Baselines
from sim2real.evaluation.evaluator import EvalSettings, PolicyEntry, evaluate_policies
from sim2real.evaluation.parallel import (
    RANDOM_POLICY,
    RandomActor,
    Results,
    RolloutJob,
    RolloutKey,
    episode_seed_bases,
    run_jobs,
    run_keyed,
)
from sim2real.evaluation.report import (
    EvaluatedPolicy,
    PolicyResult,
    Report,
    build_report,
    format_markdown,
    write_report,
)
from sim2real.evaluation.rollout import RolloutResult, rollout_returns
from sim2real.evaluation.similarity import SimilarityResult, SimilaritySettings, domain_similarity, mmd_test
from sim2real.evaluation.stats import (
    Difference,
    Summary,
    bootstrap_interval,
    interquartile_mean,
    paired_difference,
    summarize,
    t_interval,
)
from sim2real.evaluation.sweep import SweepResult, SweepSpec, robustness_sweep

__all__ = [
    "RANDOM_POLICY",
    "Baselines",
    "Difference",
    "EvalSettings",
    "EvaluatedPolicy",
    "PolicyEntry",
    "PolicyResult",
    "RandomActor",
    "Report",
    "Results",
    "RolloutJob",
    "RolloutKey",
    "RolloutResult",
    "SimilarityResult",
    "SimilaritySettings",
    "Summary",
    "SweepResult",
    "SweepSpec",
    "bootstrap_interval",
    "build_report",
    "domain_similarity",
    "episode_seed_bases",
    "evaluate_policies",
    "format_markdown",
    "interquartile_mean",
    "mmd_test",
    "paired_difference",
    "robustness_sweep",
    "rollout_returns",
    "run_jobs",
    "run_keyed",
    "summarize",
    "t_interval",
    "write_report",
]
