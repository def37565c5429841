"""The transfer-gap report: per-policy statistics, baseline-relative scores and negative-transfer flags.

:func:`build_report` is pure: it takes the returns of every evaluated policy (``(seeds, episodes)``
arrays on the source and on the target, episode ``(k, i)`` of every policy run with the same episode
seed) and computes everything else, so it can be tested on planted numbers. :func:`write_report`
writes ``report.json`` and ``report.md``.

Three rules keep the figures honest:

* The oracle-relative metrics (normalized score, gap closed) are ratios with the oracle in the
  denominator. They are given only where the oracle beats the zero-shot source (and the random policy)
  significantly, i.e. the paired interval of the difference lies above 0; otherwise they are None ("–")
  and a warning says why. A weak oracle would otherwise turn two negative differences into a positive
  "gap closed".
* A method that learned from an expert or a dataset shows where that came from and what the expert
  itself cost in target steps (:mod:`sim2real.evaluation.provenance`), and "target steps incl. expert".
  The headline best method is chosen among expert-free methods; expert-assisted ones are listed apart.
* Beside the oracle-relative score, a reference-normalized score uses fixed (random, expert) returns
  shipped with the toolkit (:mod:`sim2real.evaluation.references`), so it means the same in every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.evaluation.provenance import ExpertUse
from sim2real.evaluation.references import ReferenceScores, differs_from_registered, reference_scores
from sim2real.evaluation.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Difference,
    Summary,
    as_strata,
    paired_difference,
    summarize,
)
from sim2real.evaluation.sweep import COVERAGE_FRACTION
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
        expert: The expert or dataset an adapted policy learned from (None: expert-free).
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
    expert: ExpertUse | None = None

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
        normalized_score: ``100 (J - J_random) / (J_oracle - J_random)`` on the target; None without both
            baselines or where the oracle does not beat them significantly (see ``undefined``).
        gap_closed: Share of the zero-shot-to-oracle gap closed, ``(J - J_zero) / (J_oracle - J_zero)``; None
            without an oracle and a zero-shot reference, or where the oracle does not beat the zero-shot
            policy significantly.
        negative_transfer: True when reliably worse than the zero-shot policy or the same-budget scratch
            run (interval of the difference entirely below 0); None when there is nothing to compare with.
        versus: The differences behind ``negative_transfer``: ``{"zero_shot": ..., "scratch": ...}``.
        reference_score: ``100 (J - J_random_ref) / (J_expert_ref - J_random_ref)`` with the env's fixed
            reference returns (None if the env has none).
        expert: The expert or dataset the policy learned from (adapted policies; None: none).
        expert_free: Whether the policy was made without an expert or dataset (None for the baselines
            scratch, oracle and random, which are not methods).
        target_steps_incl_expert: ``target_steps_used`` plus the expert's own target steps (None if the
            expert's cost is unknown).
        undefined: Why a metric is None although its baselines exist: ``{"gap_closed": reason, ...}``.
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
    reference_score: float | None = None
    expert: ExpertUse | None = None
    expert_free: bool | None = None
    target_steps_incl_expert: int | None = None
    undefined: dict[str, str] = field(default_factory=dict)

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
            "reference_score": self.reference_score,
            "expert": None if self.expert is None else self.expert.to_dict(),
            "expert_free": self.expert_free,
            "target_steps_incl_expert": self.target_steps_incl_expert,
            "undefined": dict(self.undefined),
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
    """The scratch run with the entry's budget (None if there is none: a scratch run trained with another
    budget says nothing about whether transfer was worth this one's)."""
    if entry.budget is None or entry.role != "policy" or not scratch:
        return None
    matching = [run for run in scratch if run.budget == entry.budget]
    return matching[0] if matching else None


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


class _OracleMargins:
    """The oracle's paired margin over each reference policy on the target, computed once per reference."""

    def __init__(self, oracle: EvaluatedPolicy, confidence: float, resamples: int, seed: int) -> None:
        self.oracle, self.confidence, self.resamples, self.seed = oracle, confidence, resamples, seed
        self.margins: dict[str, Difference] = {}

    def over(self, reference: EvaluatedPolicy) -> Difference:
        """``oracle - reference`` on the target, with its paired interval."""
        if reference.name not in self.margins:
            self.margins[reference.name] = paired_difference(self.oracle.target_returns, reference.target_returns,
                                                             self.seed, self.confidence, self.resamples)
        return self.margins[reference.name]

    def shortfall(self, reference: EvaluatedPolicy) -> str | None:
        """Why the oracle cannot scale scores against ``reference`` (None: it beats it significantly)."""
        margin = self.over(reference)
        if margin.reliably_positive:
            return None
        level = f"{100 * self.confidence:g}%"
        return (f"the oracle '{self.oracle.name}' does not beat '{reference.name}' significantly on the target "
                f"(oracle {self.oracle.target_returns.mean():.1f} - {reference.name} {reference.target_returns.mean():.1f}"
                f" = {margin.mean:.1f}, {level} CI [{margin.ci_low:.1f}, {margin.ci_high:.1f}], not above 0)")

    def to_dict(self) -> dict[str, Any]:
        """``{reference: {mean, ci_low, ci_high, n, significant}}`` for the report's record."""
        return {name: {**diff.to_dict(), "significant": diff.reliably_positive} for name, diff in self.margins.items()}


def _score_shortfall(margins: _OracleMargins, evaluated: list[EvaluatedPolicy], random: EvaluatedPolicy) -> str | None:
    """Why the normalized score is undefined: the oracle must beat the random and every zero-shot policy."""
    for reference in [random, *_by_role(evaluated, "zero_shot")]:
        reason = margins.shortfall(reference)
        if reason is not None:
            return reason
    return None


def _steps_incl_expert(entry: EvaluatedPolicy) -> int | None:
    if entry.expert is None:
        return entry.target_steps_used
    return None if entry.expert.target_steps is None else entry.target_steps_used + entry.expert.target_steps


def build_report(evaluated: list[EvaluatedPolicy], env: Any, target: str, target_spec: dict[str, Any] | None = None,
                 confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Report:
    """Computes every statistic of the report from raw returns.

    Args:
        evaluated: Every evaluated policy, baselines included (at most one ``random`` and one ``oracle``).
        env: The env spec, or its name (also picks the fixed reference returns; a spec that differs from
            the registered robot of its name gets none).
        target: Target name.
        target_spec: The target's dynamics as a dict (for the record, and to pick a published reference pair).
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
    differs = None if isinstance(env, str) else differs_from_registered(env)
    env = env if isinstance(env, str) else env.name
    published = reference_scores(env, target_spec)
    reference = None if differs else published
    margins = None if oracle is None else _OracleMargins(oracle, confidence, resamples, seed)
    score_shortfall = None
    if margins is not None and random is not None:
        score_shortfall = _score_shortfall(margins, evaluated, random)
    rows = []
    for entry in evaluated:
        row = _row(entry, seed, confidence, resamples)
        mean = row.target_return.mean
        if reference is not None:
            row.reference_score = reference.normalize(mean)
        if margins is not None and random is not None:
            if score_shortfall is None:
                j_random = float(random.target_returns.mean())
                score = _ratio(mean - j_random, float(margins.oracle.target_returns.mean()) - j_random)
                row.normalized_score = None if score is None else 100.0 * score
            else:
                row.undefined["normalized_score"] = score_shortfall
        zero = by_name.get(entry.zero_shot or "")
        if margins is not None and zero is not None and zero.name != entry.name:
            shortfall = margins.shortfall(zero)
            if shortfall is None:
                j_zero = float(zero.target_returns.mean())
                row.gap_closed = _ratio(mean - j_zero, float(margins.oracle.target_returns.mean()) - j_zero)
            else:
                row.undefined["gap_closed"] = shortfall
        row.versus = _comparisons(entry, by_name, scratch, seed, confidence, resamples)
        if row.versus:
            row.negative_transfer = any(diff.reliably_negative for diff in row.versus.values())
        rows.append(row)
    report = Report(env=env, target=target, target_spec=dict(target_spec or {}), episodes=shape[1], seeds=shape[0],
                    confidence=confidence, policies=rows)
    report.context["reference_scores"] = None if reference is None else reference.to_dict()
    report.context["oracle_margins"] = {} if margins is None else margins.to_dict()
    report.warnings.extend(_metric_warnings(rows))
    report.warnings.extend(_baseline_warnings(evaluated, reference, env, differs if published else None))
    report.context["headline"] = headline(report)
    report.context["sample_efficiency"] = sample_efficiency(report)
    return report


def _row(entry: EvaluatedPolicy, seed: int, confidence: float, resamples: int) -> PolicyResult:
    """A row's own figures: returns, gap and expert accounting (the comparisons come after)."""
    return PolicyResult(
        name=entry.name, role=entry.role, run_dir=entry.run_dir, method=entry.method, budget=entry.budget,
        target_steps_used=entry.target_steps_used,
        source_return=summarize(entry.source_returns, seed, confidence, resamples),
        target_return=summarize(entry.target_returns, seed, confidence, resamples),
        gap=paired_difference(entry.source_returns, entry.target_returns, seed, confidence, resamples),
        expert=entry.expert, expert_free=None if entry.role in BASELINE_ROLES else entry.expert is None,
        target_steps_incl_expert=_steps_incl_expert(entry),
    )


BASELINE_ROLES = ("random", "scratch", "oracle")
"""Roles that are yardsticks, not methods: never 'expert-free' or 'expert-assisted', never the headline."""


def _single(evaluated: list[EvaluatedPolicy], role: str) -> EvaluatedPolicy | None:
    entries = _by_role(evaluated, role)
    if len(entries) > 1:
        raise ValueError(f"at most one '{role}' baseline, got {[e.name for e in entries]}")
    return entries[0] if entries else None


def _metric_warnings(rows: list[PolicyResult]) -> list[str]:
    """One warning per distinct reason an oracle-relative metric was left undefined."""
    reasons: dict[str, set[str]] = {}
    for row in rows:
        for metric, reason in row.undefined.items():
            reasons.setdefault(reason, set()).add(metric.replace("_", " "))
    return [f"{' and '.join(sorted(metrics))} undefined ('–'): {reason}. A ratio against a difference that is not "
            "reliably positive is meaningless (two negative differences make a positive 'gap closed'). What to do: "
            "if the oracle is the weaker, train it longer or with a stronger algorithm (the pipeline's oracle_timesteps); "
            "if it only ties the zero-shot source, there is no gap to close on this target (the shift is mild for this "
            "policy); if the interval straddles 0, evaluate more episodes and seeds. Meanwhile compare policies by "
            "target return, the reference score and the differences to the zero-shot and scratch baselines"
            for reason, metrics in reasons.items()]


def _baseline_warnings(evaluated: list[EvaluatedPolicy], reference: ReferenceScores | None, env: str,
                       withheld: str | None = None) -> list[str]:
    """``withheld``: why the env's published reference pair does not apply to this robot (None if it does or
    there is none)."""
    warnings = []
    transfers = [e for e in evaluated if e.role == "policy" and e.budget is not None]
    scratch = _by_role(evaluated, "scratch")
    if transfers and not scratch:
        warnings.append("no from-scratch baseline: negative transfer is checked against the zero-shot policy only")
    unmatched = [e for e in transfers if scratch and _scratch_for(e, scratch) is None]
    if unmatched:
        warnings.append(f"no from-scratch baseline with the budget of {', '.join(f'{e.name} ({e.budget})' for e in unmatched)} "
                        f"(scratch budgets: {', '.join(str(s.budget) for s in scratch)}): negative transfer is checked "
                        "against the zero-shot policy only for them")
    unknown = [e.name for e in evaluated if e.expert is not None and e.expert.target_steps is None]
    if unknown:
        warnings.append(f"the expert cost of {', '.join(unknown)} is unknown (see the expert column): "
                        "'target steps incl. expert' is left out for them")
    if withheld is not None:
        warnings.append(f"the reference score is left out: the published (random, expert) pair of '{env}' is for "
                        f"the registered robot, and {withheld}")
    elif reference is None:
        warnings.append(f"no fixed reference returns for env '{env}': the reference score is left out "
                        "(add a (random, expert) pair in sim2real/evaluation/references.py)")
    return warnings


def headline(report: Report) -> dict[str, Any]:
    """The best expert-free method (highest mean target return), with the expert-assisted methods apart.

    Methods are the adapted policies (role ``policy``); expert-assisted ones learned from an expert or a
    dataset whose cost is not in their own target steps, so they are never the headline.
    """
    methods = sorted((r for r in report.policies if r.role == "policy"), key=lambda r: -r.target_return.mean)
    free = [r for r in methods if r.expert_free]
    best = free[0] if free else None
    versus_zero = best.versus.get("zero_shot") if best is not None else None
    return {
        "best_expert_free": None if best is None else best.name,
        "beats_zero_shot": None if versus_zero is None else versus_zero.reliably_positive,
        "expert_free": [r.name for r in free],
        "expert_assisted": [r.name for r in methods if r.expert_free is False],
    }


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


def _expert_cell(row: PolicyResult) -> str:
    if row.expert is None:
        return "–"
    cost = "cost unknown" if row.expert.target_steps is None else f"{row.expert.target_steps} target steps"
    privileged = ", privileged" if row.expert.privileged else ""
    return f"{row.expert.kind} {row.expert.label} ({cost}{privileged})"


def _free_cell(row: PolicyResult) -> str:
    return "–" if row.expert_free is None else ("yes" if row.expert_free else "**no**")


def _reference_line(report: Report) -> str:
    reference = report.context.get("reference_scores")
    if not reference:
        return "Reference score: none for this env."
    shift = f" for {reference['shift']}" if reference.get("shift") else ""
    origin = f"{reference['source']}, not published" if reference.get("measured") else f"from {reference['source']}"
    return (f"Reference score: 0 = random {reference['random']:g}, 100 = expert {reference['expert']:g}{shift}, "
            f"fixed returns {origin}. Normalized score: 0 = random, 100 = this run's oracle.")


def _headline_lines(report: Report) -> list[str]:
    head = report.context.get("headline") or {}
    rows = {row.name: row for row in report.policies}
    lines = ["", "Headline (methods that used no expert or dataset):"]
    best = head.get("best_expert_free")
    if best is None:
        lines.append("- no expert-free method was evaluated")
    else:
        row = rows[best]
        verdict = {True: "reliably above the zero-shot source", False: "not reliably above the zero-shot source",
                   None: "no zero-shot source to compare with"}[head.get("beats_zero_shot")]
        lines.append(f"- best expert-free method: **{best}**, target return "
                     f"{_interval(row.target_return.mean, row.target_return.ci_low, row.target_return.ci_high)} "
                     f"with {row.target_steps_used} target steps ({verdict})")
    assisted = head.get("expert_assisted") or []
    if assisted:
        lines.append("- expert-assisted, not ranked with them (their expert's target steps are not in their own count):")
        for name in assisted:
            row = rows[name]
            total = "unknown" if row.target_steps_incl_expert is None else str(row.target_steps_incl_expert)
            lines.append(f"  - {name}: target return {row.target_return.mean:.1f}, {row.target_steps_used} target steps, "
                         f"{total} incl. {_expert_cell(row)}")
    return lines


def _robustness_lines(sweeps: list[dict[str, Any]]) -> list[str]:
    """One line per swept policy: its nominal cell's return and how many grid cells reach half of it."""
    if not sweeps:
        return []
    lines = ["", "Robustness sweep (" + " x ".join(sweeps[0]["groups"]) + f"): cells whose mean return reaches "
                 f"{COVERAGE_FRACTION:.0%} of the policy's own nominal cell:"]
    for sweep in sweeps:
        cells = int(np.prod([len(values) for values in sweep["values"]]))
        covered = sweep.get("cells_at_half_nominal")
        nominal = sweep.get("nominal_return")
        line = f"- {sweep['policy']}: " + ("– (no nominal cell, or a nominal return <= 0)" if covered is None
                                            else f"{covered} of {cells} (nominal cell {nominal:.1f})")
        shared = sweep.get("coverage_reference")
        if shared is not None:
            line += (f"; against {COVERAGE_FRACTION:.0%} of {shared['policy']}'s nominal cell: " + (
                "– (its nominal return is missing or <= 0)" if shared["cells"] is None
                else f"{shared['cells']} of {cells} (line {COVERAGE_FRACTION * shared['nominal_return']:.1f})"))
        lines.append(line)
    return lines


def format_markdown(report: Report) -> str:
    """The report as Markdown: a header, the table, the headline and the warnings."""
    level = f"{100 * report.confidence:g}%"
    lines = [
        f"# Transfer report: {report.env} on target '{report.target}'",
        "",
        f"{report.seeds} seeds x {report.episodes} episodes per policy and dynamics; intervals: {level} expanded-percentile bootstrap over all episodes.",
        "",
        f"| policy | role | expert-free | expert | target steps | target steps incl. expert "
        f"| source return ({level} CI) | target return ({level} CI) | gap ({level} CI) "
        "| normalized score | reference score | gap closed | negative transfer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report.policies:
        negative = "–" if row.negative_transfer is None else ("**yes**" if row.negative_transfer else "no")
        lines.append(
            f"| {row.name} | {row.role} | {_free_cell(row)} | {_expert_cell(row)} | {row.target_steps_used} "
            f"| {'?' if row.target_steps_incl_expert is None else row.target_steps_incl_expert} "
            f"| {_interval(row.source_return.mean, row.source_return.ci_low, row.source_return.ci_high)} "
            f"| {_interval(row.target_return.mean, row.target_return.ci_low, row.target_return.ci_high)} "
            f"| {_interval(row.gap.mean, row.gap.ci_low, row.gap.ci_high)} "
            f"| {_optional(row.normalized_score, '.1f')} | {_optional(row.reference_score, '.1f')} "
            f"| {_optional(row.gap_closed, '.2f')} | {negative} |"
        )
    lines += ["", _reference_line(report)]
    lines += _headline_lines(report)
    similarity = report.context.get("similarity")
    if similarity:
        verdict = "distinguishable" if similarity["distinguishable"] else "NOT distinguishable"
        lines += ["", f"Domain similarity (MMD² of (s, a, s' - s) in the source domain with vs without the target, "
                      f"policy {similarity.get('reference_policy', '?')}): {similarity['mmd2']:.4f}, "
                      f"p = {similarity['p_value']:.3f} ({verdict})."]
    lines += _robustness_lines(report.context.get("sweeps") or [])
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
