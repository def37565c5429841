"""The end-of-training check: the policy's return on nominal dynamics and on perturbed targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim2real.evaluation.rollout import privileged_rollout_returns, rollout_returns
from sim2real.policies.policy import Policy
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import update_metadata, write_json_atomic


def evaluate_run(run_dir: str | Path, targets: tuple[DynamicsSpec, ...], episodes: int, seed: int) -> list[dict[str, Any]]:
    """Evaluates a run's policy on nominal and each target; writes ``eval.json`` into the run folder.

    A privileged teacher acts on each target with the privileged observation that target's parameters give
    (what a student of it could at best reach there); targets with effects, which that observation does
    not hold, are left out of its table.
    """
    policy = Policy.load(run_dir)
    teacher = policy.info.privileged == "actor"
    results = []
    for target in (DynamicsSpec(), *targets):
        if teacher and target.effects.active:
            print(f"teacher: '{target.name}' left out (its effects are not in the privileged observation)")
            continue
        outcome = (privileged_rollout_returns(policy, episodes, seed, target=target) if teacher
                   else rollout_returns(policy, policy.info.env, episodes, seed, target=target))
        results.append({
            "target": target.name,
            "mean": float(outcome.returns.mean()),
            "std": float(outcome.returns.std()),
            "episodes": episodes,
            "mean_length": float(outcome.lengths.mean()),
        })
    nominal = results[0]["mean"]
    for row in results:
        row["gap_pct"] = 100.0 * (nominal - row["mean"]) / abs(nominal) if nominal else 0.0
    write_json_atomic(Path(run_dir) / "eval.json", {"seed": seed, "results": results})
    update_metadata(run_dir, eval={row["target"]: row["mean"] for row in results})
    return results


def format_eval_table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`evaluate_run`'s results."""
    lines = ["| dynamics | return (mean ± std) | episodes | gap vs nominal |", "|---|---|---|---|"]
    for row in results:
        lines.append(f"| {row['target']} | {row['mean']:.1f} ± {row['std']:.1f} | {row['episodes']} | {row['gap_pct']:+.1f}% |")
    return "\n".join(lines)
