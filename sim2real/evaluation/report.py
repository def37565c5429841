"""The transfer-gap report: per-policy statistics, baseline-relative scores and negative-transfer flags.

:func:`build_report` is pure: it takes the returns of every evaluated policy (``(seeds, episodes)``
arrays on the source and on the target, episode ``(k, i)`` of every policy run with the same episode
seed) and computes everything else, so it can be tested on planted numbers. :func:`write_report`
writes ``report.json`` and ``report.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.evaluation.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Difference,
    Summary,
    as_strata,
    paired_difference,
    summarize,
)
from sim2real.runs import write_json_atomic, write_text_atomic

ROLES = ("policy", "zero_shot", "random", "scratch", "oracle")
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass
class EvaluatedPolicy:
    """Raw evaluation of one policy, the input of :func:`build_report`.

    Attributes:
        name: Unique display name.
        role: One of :data:`ROLES`.
        source_returns: ``(seeds, episodes)`` returns on the source (nominal) dynamics.
        target_returns: ``(seeds, episodes)`` returns on the target.
        run_dir: The run folder (None for the random policy).
        target_steps_used: Target steps the policy consumed (adaptation, or training for scratch/oracle).
        budget: The target-step budget: a transfer run's, or the one a scratch run was trained for (None otherwise).
        method: The transfer method (None if not a transfer run).
        zero_shot: Name of the zero-shot source policy it was adapted from (None: no comparison).
    """

    name: str
    role: str
    source_returns: np.ndarray
    target_returns: np.ndarray
    run_dir: str | None = None
    target_steps_used: int = 0
    budget: int | None = None
    method: str | None = None
    zero_shot: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"{self.name}: unknown role '{self.role}'; known: {', '.join(ROLES)}")
        self.source_returns = as_strata(self.source_returns)
        self.target_returns = as_strata(self.target_returns)


@dataclass
class PolicyResult:
    """One row of the report (see ``report.json``).

    Attributes:
        name: Display name.
        role: One of :data:`ROLES`.
        run_dir: Run folder, or None.
        method: Transfer method, or None.
        budget: Transfer budget, or None.
        target_steps_used: Target steps consumed.
        source_return: Summary of the returns on the source (nominal) dynamics.
        target_return: Summary of the returns on the target.
        gap: Source minus target return, paired bootstrap interval.
        normalized_score: ``100 (J - J_random) / (J_oracle - J_random)`` on the target, or None without both baselines.
        gap_closed: Share of the zero-shot-to-oracle gap closed, ``(J - J_zero) / (J_oracle - J_zero)``, or None.
        negative_transfer: True when reliably worse than the zero-shot policy or the same-budget scratch
            run (interval of the difference entirely below 0); None when there is nothing to compare with.
        versus: The differences behind ``negative_transfer``: ``{"zero_shot": ..., "scratch": ...}``.
    """

    name: str
    role: str
    run_dir: str | None
    method: str | None
    budget: int | None
    target_steps_used: int
    source_return: Summary
    target_return: Summary
    gap: Difference
    normalized_score: float | None = None
    gap_closed: float | None = None
    negative_transfer: bool | None = None
    versus: dict[str, Difference] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this row."""
        return {
            "name": self.name,
            "role": self.role,
            "run_dir": self.run_dir,
            "method": self.method,
            "budget": self.budget,
            "target_steps_used": self.target_steps_used,
            "source_return": self.source_return.to_dict(),
            "target_return": self.target_return.to_dict(),
            "gap": self.gap.to_dict(),
            "normalized_score": self.normalized_score,
            "gap_closed": self.gap_closed,
            "negative_transfer": self.negative_transfer,
            "versus": {key: diff.to_dict() for key, diff in self.versus.items()},
        }


@dataclass
class Report:
    """The whole evaluation (see ``report.json``).

    Attributes:
        env: Env name.
        target: Target name.
        target_spec: The target's dynamics as a dict.
        episodes: Episodes per evaluation seed.
        seeds: Evaluation seeds.
        confidence: Coverage of every interval.
        policies: One row per evaluated policy, baselines included.
        context: Anything else recorded (episode seeds, settings, similarity, sweeps, sample efficiency, plots).
        warnings: Messages a reader must see (no-op target, missing baselines, ...).
    """

    env: str
    target: str
    target_spec: dict[str, Any]
    episodes: int
    seeds: int
    confidence: float
    policies: list[PolicyResult]
    context: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def policy(self, name: str) -> PolicyResult:
        """The row named ``name``; ``KeyError`` listing the names."""
        for row in self.policies:
            if row.name == name:
                return row
        raise KeyError(f"no policy '{name}' in the report; names: {', '.join(r.name for r in self.policies)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``report.json``."""
        return {
            "env": self.env,
            "target": self.target,
            "target_spec": self.target_spec,
            "episodes": self.episodes,
            "seeds": self.seeds,
            "confidence": self.confidence,
            "policies": [row.to_dict() for row in self.policies],
            **self.context,
            "warnings": list(self.warnings),
        }


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if abs(denominator) < 1e-9 else float(numerator / denominator)


def _by_role(evaluated: list[EvaluatedPolicy], role: str) -> list[EvaluatedPolicy]:
    return [entry for entry in evaluated if entry.role == role]


def _scratch_for(entry: EvaluatedPolicy, scratch: list[EvaluatedPolicy]) -> EvaluatedPolicy | None:
    """The scratch run with the entry's budget; the only scratch run if there is just one."""
    if entry.budget is None or entry.role != "policy" or not scratch:
        return None
    matching = [run for run in scratch if run.budget == entry.budget]
    if matching:
        return matching[0]
    return scratch[0] if len(scratch) == 1 else None


def _comparisons(entry: EvaluatedPolicy, by_name: dict[str, EvaluatedPolicy], scratch: list[EvaluatedPolicy],
                 seed: int, confidence: float, resamples: int) -> dict[str, Difference]:
    versus: dict[str, Difference] = {}
    references = {"zero_shot": by_name.get(entry.zero_shot or ""), "scratch": _scratch_for(entry, scratch)}
    for key, reference in references.items():
        if reference is None or reference.name == entry.name:
            continue
        if reference.target_returns.shape != entry.target_returns.shape:
            raise ValueError(f"{entry.name} and {reference.name} were evaluated on different episode counts")
        versus[key] = paired_difference(entry.target_returns, reference.target_returns, seed, confidence, resamples)
    return versus


def build_report(evaluated: list[EvaluatedPolicy], env: str, target: str, target_spec: dict[str, Any] | None = None,
                 confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Report:
    """Computes every statistic of the report from raw returns.

    Args:
        evaluated: Every evaluated policy, baselines included (at most one ``random`` and one ``oracle``).
        env: Env name.
        target: Target name.
        target_spec: The target's dynamics as a dict (for the record).
        confidence: Coverage of the intervals.
        resamples: Bootstrap resamples.
        seed: Seed of the bootstrap.
    """
    if not evaluated:
        raise ValueError("nothing to report: no evaluated policies")
    names = [entry.name for entry in evaluated]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be unique, got {names}")
    shape = evaluated[0].source_returns.shape
    for entry in evaluated:
        if entry.source_returns.shape != shape or entry.target_returns.shape != shape:
            raise ValueError(f"{entry.name}: returns of shape {entry.target_returns.shape}, expected {shape} (seeds, episodes)")
    by_name = {entry.name: entry for entry in evaluated}
    random, oracle = _single(evaluated, "random"), _single(evaluated, "oracle")
    scratch = _by_role(evaluated, "scratch")
    rows = []
    for entry in evaluated:
        source = summarize(entry.source_returns, seed, confidence, resamples)
        shifted = summarize(entry.target_returns, seed, confidence, resamples)
        row = PolicyResult(
            name=entry.name, role=entry.role, run_dir=entry.run_dir, method=entry.method, budget=entry.budget,
            target_steps_used=entry.target_steps_used, source_return=source, target_return=shifted,
            gap=paired_difference(entry.source_returns, entry.target_returns, seed, confidence, resamples),
        )
        mean = shifted.mean
        if random is not None and oracle is not None:
            j_random, j_oracle = float(random.target_returns.mean()), float(oracle.target_returns.mean())
            score = _ratio(mean - j_random, j_oracle - j_random)
            row.normalized_score = None if score is None else 100.0 * score
        zero = by_name.get(entry.zero_shot or "")
        if oracle is not None and zero is not None and zero.name != entry.name:
            j_zero = float(zero.target_returns.mean())
            row.gap_closed = _ratio(mean - j_zero, float(oracle.target_returns.mean()) - j_zero)
        row.versus = _comparisons(entry, by_name, scratch, seed, confidence, resamples)
        if row.versus:
            row.negative_transfer = any(diff.reliably_negative for diff in row.versus.values())
        rows.append(row)
    report = Report(env=env, target=target, target_spec=dict(target_spec or {}), episodes=shape[1], seeds=shape[0],
                    confidence=confidence, policies=rows)
    report.warnings.extend(_baseline_warnings(evaluated, random, oracle))
    report.context["sample_efficiency"] = sample_efficiency(report)
    return report


def _single(evaluated: list[EvaluatedPolicy], role: str) -> EvaluatedPolicy | None:
    entries = _by_role(evaluated, role)
    if len(entries) > 1:
        raise ValueError(f"at most one '{role}' baseline, got {[e.name for e in entries]}")
    return entries[0] if entries else None


def _baseline_warnings(evaluated: list[EvaluatedPolicy], random: EvaluatedPolicy | None,
                       oracle: EvaluatedPolicy | None) -> list[str]:
    warnings = []
    if random is not None and oracle is not None and oracle.target_returns.mean() <= random.target_returns.mean():
        warnings.append("the oracle does not beat the random policy on the target: normalized scores are meaningless")
    transfers = [e for e in evaluated if e.role == "policy" and e.budget is not None]
    if transfers and not _by_role(evaluated, "scratch"):
        warnings.append("no from-scratch baseline: negative transfer is checked against the zero-shot policy only")
    return warnings


def sample_efficiency(report: Report) -> dict[str, list[dict[str, Any]]]:
    """Target return against target steps used, per method with at least two budgets (zero-shot at 0 steps)."""
    by_method: dict[str, list[PolicyResult]] = {}
    for row in report.policies:
        if row.role == "policy" and row.method:
            by_method.setdefault(row.method, []).append(row)
    zero_shot = [row for row in report.policies if row.role == "zero_shot"]
    curves = {}
    for method, rows in by_method.items():
        if len({row.target_steps_used for row in rows}) < 2:
            continue
        points = [*(zero_shot[:1]), *sorted(rows, key=lambda row: row.target_steps_used)]
        curves[method] = [{"name": row.name, "target_steps_used": 0 if row.role == "zero_shot" else row.target_steps_used,
                           "mean": row.target_return.mean, "ci_low": row.target_return.ci_low,
                           "ci_high": row.target_return.ci_high} for row in points]
    return curves


def _interval(mean: float, low: float, high: float) -> str:
    return f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def _optional(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def format_markdown(report: Report) -> str:
    """The report as Markdown: a header, the table and the warnings."""
    level = f"{100 * report.confidence:g}%"
    lines = [
        f"# Transfer report: {report.env} on target '{report.target}'",
        "",
        f"{report.seeds} seeds x {report.episodes} episodes per policy and dynamics; intervals: {level} stratified bootstrap.",
        "",
        f"| policy | role | target steps | source return ({level} CI) | target return ({level} CI) | gap ({level} CI) "
        "| normalized score | gap closed | negative transfer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report.policies:
        negative = "–" if row.negative_transfer is None else ("**yes**" if row.negative_transfer else "no")
        lines.append(
            f"| {row.name} | {row.role} | {row.target_steps_used} "
            f"| {_interval(row.source_return.mean, row.source_return.ci_low, row.source_return.ci_high)} "
            f"| {_interval(row.target_return.mean, row.target_return.ci_low, row.target_return.ci_high)} "
            f"| {_interval(row.gap.mean, row.gap.ci_low, row.gap.ci_high)} "
            f"| {_optional(row.normalized_score, '.1f')} | {_optional(row.gap_closed, '.2f')} | {negative} |"
        )
    similarity = report.context.get("similarity")
    if similarity:
        verdict = "distinguishable" if similarity["distinguishable"] else "NOT distinguishable"
        lines += ["", f"Domain similarity (MMD² of (s, a, s' - s) in the source domain with vs without the target, "
                      f"policy {similarity.get('reference_policy', '?')}): {similarity['mmd2']:.4f}, "
                      f"p = {similarity['p_value']:.3f} ({verdict})."]
    if report.warnings:
        lines += ["", "Warnings:", *[f"- {warning}" for warning in report.warnings]]
    plots = report.context.get("plots")
    if plots:
        lines += ["", "Plots: " + ", ".join(f"`{Path(p).name}`" for p in plots)]
    return "\n".join(lines) + "\n"


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Writes ``report.json`` and ``report.md`` into ``out_dir`` atomically; returns their paths."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / REPORT_JSON, out_dir / REPORT_MD
    write_json_atomic(json_path, report.to_dict())
    write_text_atomic(md_path, format_markdown(report))
    return json_path, md_path
