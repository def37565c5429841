"""Evaluation: seeded rollouts, transfer-gap statistics and reports."""

from sim2real.evaluation.rollout import RolloutResult, rollout_returns

__all__ = ["RolloutResult", "rollout_returns"]
