"""Merges the reports of a sweep (a Hydra multirun folder) into one: per policy across runs, and across tasks.

* Per (env, target, policy): every run (one ``report.json``) contributes its means; intervals are
  Student-t intervals of the mean over runs (:func:`~sim2real.evaluation.stats.t_interval`: a bootstrap
  of two or three runs cannot reach beyond them), so they reflect seed-to-seed variation of training and
  adaptation.
* Across tasks (envs x targets x seeds, the rliable protocol, :mod:`sim2real.evaluation.cross_task`): each
  run's reference-normalized score (0 = random, 1 = the env's fixed expert reference) per method; IQM,
  median, mean and optimality gap with stratified-bootstrap intervals; the probability that each method
  improves on fine-tuning and on scratch; a performance profile. Only the fixed reference score can be
  pooled across tasks: the oracle-relative score changes with each run's oracle.

Every report is checked before anything is written (a truncated or wrong-shaped one is named), and two
copies of one report (same content) count once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.evaluation import cross_task
from sim2real.evaluation.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, t_interval
from sim2real.runs import write_json_atomic, write_text_atomic

GROUP_KEYS = ("env", "target", "name", "role", "method", "budget")
SUMMARY_FIELDS = ("source_return", "target_return", "gap")
OPTIONAL_NUMBERS = ("normalized_score", "gap_closed", "reference_score", "target_steps_used", "target_steps_incl_expert")
REFERENCE_METHODS = ("finetune", "scratch")
"""The methods every other one is compared with (probability of improvement)."""


@dataclass(frozen=True)
class LoadedReport:
    """A checked ``report.json``.

    Attributes:
        path: Where it was read.
        data: Its content.
        digest: SHA-256 of its canonical JSON (equal content, equal digest).
    """

    path: Path
    data: dict[str, Any]
    digest: str


def find_reports(folder: str | Path) -> list[Path]:
    """Every ``report.json`` under ``folder``; ``ValueError`` if there is none or ``folder`` is not a folder."""
    folder = Path(folder)
    if folder.is_file():
        raise ValueError(f"'{folder}' is a file, not a folder: give the multirun folder that holds the report.json files")
    if not folder.is_dir():
        raise ValueError(f"'{folder}' does not exist: give the multirun folder that holds the report.json files")
    reports = sorted(path for path in folder.rglob("report.json") if path.is_file())
    if not reports:
        raise ValueError(f"no report.json under '{folder}': is it a multirun folder of scripts/pipeline.py or evaluate.py?")
    return reports


def read_report(path: Path) -> LoadedReport:
    """Reads and checks one report; ``ValueError`` naming the file and what is wrong."""
    try:
        text = path.read_text()
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"'{path}' is not readable JSON ({err}): a truncated or damaged report") from None
    except OSError as err:
        raise ValueError(f"'{path}' cannot be read: {err}") from None
    _check_report(data, path)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return LoadedReport(path, data, digest)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_report(data: Any, path: Path) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"'{path}' is not an evaluator report: a JSON {type(data).__name__}, not an object")
    for key in ("env", "target"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"'{path}' is not an evaluator report: '{key}' is missing or not a string")
    rows = data.get("policies")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"'{path}' is not an evaluator report: 'policies' is missing, empty or not a list")
    for index, row in enumerate(rows):
        where = f"'{path}' policies[{index}]"
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not isinstance(row.get("role"), str):
            raise ValueError(f"{where} is not a policy row (it needs 'name' and 'role' strings)")
        for field in SUMMARY_FIELDS:
            if not isinstance(row.get(field), dict) or not _is_number(row[field].get("mean")):
                raise ValueError(f"{where} ('{row['name']}'): '{field}.mean' is missing or not a finite number")
        for field in OPTIONAL_NUMBERS:
            if row.get(field) is not None and not _is_number(row[field]):
                raise ValueError(f"{where} ('{row['name']}'): '{field}' is {row[field]!r}, not a number or null")


def load_reports(paths: list[Path]) -> tuple[list[LoadedReport], list[dict[str, str]]]:
    """The distinct reports, and ``[{path, same_as}]`` for every copy of one already read."""
    unique: dict[str, LoadedReport] = {}
    duplicates = []
    for path in paths:
        report = read_report(path)
        if report.digest in unique:
            duplicates.append({"path": str(path), "same_as": str(unique[report.digest].path)})
        else:
            unique[report.digest] = report
    return list(unique.values()), duplicates


def aggregate_reports(paths: list[Path], seed: int = 0, confidence: float = DEFAULT_CONFIDENCE,
                      resamples: int = DEFAULT_RESAMPLES) -> dict[str, Any]:
    """Per-policy summaries across runs and the cross-task aggregates (see the module docstring)."""
    reports, duplicates = load_reports(paths)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for report in reports:
        for row in report.data["policies"]:
            groups[_group_key(report.data, row)].append(row)
    rows = [_summarize_group(dict(zip(GROUP_KEYS, key)), members, confidence)
            for key, members in sorted(groups.items(), key=_order)]
    warnings = [f"'{d['path']}' is a copy of '{d['same_as']}': counted once" for d in duplicates]
    across = cross_task_aggregate(reports, seed, confidence, resamples)
    warnings.extend(across.pop("warnings"))
    return {"runs": [str(r.path) for r in reports], "n_runs": len(reports), "confidence": confidence, "duplicates": duplicates,
            "policies": rows, "cross_task": across, "warnings": warnings}


def _group_key(report: dict[str, Any], row: dict[str, Any]) -> tuple[Any, ...]:
    # Baselines carry their budget in their name (scratch_20000); only adapted policies are split by budget.
    budget = row.get("budget") if row.get("role") == "policy" else None
    return (report["env"], report["target"], row["name"], row["role"], row.get("method"), budget)


def _order(item: tuple[tuple[Any, ...], list[dict[str, Any]]]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v).zfill(12) if isinstance(v, int) else str(v) for v in item[0])


def _summarize_group(key: dict[str, Any], members: list[dict[str, Any]], confidence: float) -> dict[str, Any]:
    out = dict(key)
    out["n_runs"] = len(members)
    for field in (*SUMMARY_FIELDS, "reference_score"):
        values = np.array([_mean_of(m.get(field)) for m in members if _mean_of(m.get(field)) is not None], dtype=float)
        out[field] = None if values.size == 0 else t_interval(values, confidence).to_dict()
    for field in ("normalized_score", "gap_closed"):
        values = [m[field] for m in members if m.get(field) is not None]
        out[field] = float(np.mean(values)) if values else None
        out[f"{field}_runs"] = len(values)  # runs where it was defined (the oracle beat its references)
    steps = [m.get("target_steps_used") for m in members]
    out["target_steps_used"] = float(np.mean([s for s in steps if s is not None])) if any(s is not None for s in steps) else None
    incl = [m.get("target_steps_incl_expert", m.get("target_steps_used")) for m in members]
    out["target_steps_incl_expert"] = None if any(s is None for s in incl) else float(np.mean(incl))
    free = {m.get("expert_free") for m in members}
    out["expert_free"] = free.pop() if len(free) == 1 else None
    out["negative_transfer_runs"] = sum(bool(m.get("negative_transfer")) for m in members)
    return out


def _mean_of(value: Any) -> float | None:
    """A summary's mean, or a bare number (the reference score is one number per run)."""
    if isinstance(value, dict):
        return value.get("mean")
    return value


def method_labels(reports: list[LoadedReport]) -> dict[tuple[int, str], str]:
    """The method each (report index, row name) belongs to across tasks.

    Adapted policies go by their method, baselines by their role; where the sweep has several budgets of
    any method, every budgeted label carries ``@budget`` (so each method is compared with the fine-tuning
    and scratch runs of its own budget, and never with another budget's).
    """
    base: dict[tuple[int, str], tuple[str, Any]] = {}
    for index, report in enumerate(reports):
        for row in report.data["policies"]:
            label = (row.get("method") or row["name"]) if row["role"] == "policy" else row["role"]
            base[(index, row["name"])] = (label, row.get("budget") if row["role"] in ("policy", "scratch") else None)
    budgets: dict[str, set[Any]] = defaultdict(set)
    for label, budget in base.values():
        budgets[label].add(budget)
    split = any(len(values - {None}) > 1 for values in budgets.values())
    return {key: f"{label}@{budget}" if split and budget is not None else label for key, (label, budget) in base.items()}


def _task_scores(reports: list[LoadedReport]) -> tuple[dict[str, dict[str, list[float]]], dict[str, bool | None],
                                                       list[str]]:
    """``{method: {task: [run scores]}}`` (reference scores as fractions), expert-free flags, excluded tasks."""
    labels = method_labels(reports)
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    free: dict[str, set[Any]] = defaultdict(set)
    excluded: set[str] = set()
    for index, report in enumerate(reports):
        task = f"{report.data['env']}/{report.data['target']}"
        for row in report.data["policies"]:
            if row.get("reference_score") is None:
                excluded.add(task)
                continue
            label = labels[(index, row["name"])]
            scores[label][task].append(float(row["reference_score"]) / 100.0)
            free[label].add(row.get("expert_free"))
    flags = {label: (values.pop() if len(values) == 1 else None) for label, values in free.items()}
    return {k: dict(v) for k, v in scores.items()}, flags, sorted(excluded)


def cross_task_aggregate(reports: list[LoadedReport], seed: int = 0, confidence: float = DEFAULT_CONFIDENCE,
                         resamples: int = DEFAULT_RESAMPLES) -> dict[str, Any]:
    """The rliable-protocol aggregates over every (env, target) task and run, per method."""
    scores, flags, excluded = _task_scores(reports)
    tasks = sorted({task for by_task in scores.values() for task in by_task})
    warnings = []
    if excluded:
        warnings.append(f"tasks without fixed reference returns are left out of the cross-task aggregates: "
                        f"{', '.join(excluded)}")
    methods: dict[str, Any] = {}
    for label, by_task in sorted(scores.items()):
        covered = sorted(by_task)
        entry = {"expert_free": flags.get(label), "tasks": len(covered), "runs": sum(len(v) for v in by_task.values()),
                 **cross_task.to_jsonable(cross_task.aggregate_estimates([by_task[t] for t in covered], seed, confidence,
                                                                         resamples))}
        entry["improvement"], unmatched = _improvements(label, scores, seed, confidence, resamples)
        methods[label] = entry
        if unmatched:
            warnings.append(f"method '{label}' is compared with no {' or '.join(unmatched)} run: none of its budget "
                            "on its tasks")
        if len(covered) < len(tasks):
            warnings.append(f"method '{label}' covers {len(covered)} of {len(tasks)} tasks: its aggregates are over "
                            "those only")
    taus = cross_task.profile_thresholds([list(v.values()) for v in scores.values()]) if scores else np.zeros(0)
    profiles = {label: cross_task.performance_profile(list(by_task.values()), taus, seed, confidence, resamples)
                for label, by_task in sorted(scores.items())}
    return {"score": "reference-normalized score / 100 (0 = random, 1 = the env's expert reference)",
            "confidence": confidence, "resamples": resamples, "tasks": tasks, "excluded_tasks": excluded,
            "methods": methods, "profile": {"tau": [float(t) for t in taus], "methods": profiles},
            "warnings": warnings}


def _improvements(label: str, scores: dict[str, dict[str, list[float]]], seed: int, confidence: float,
                  resamples: int) -> tuple[dict[str, Any], list[str]]:
    """``P(label > reference)`` for fine-tuning and scratch (same budget where labels carry one), and the
    references a budgeted label found no run of its budget on its tasks for."""
    out: dict[str, Any] = {}
    unmatched = []
    budget = label.partition("@")[2]
    for reference in REFERENCE_METHODS:
        other = f"{reference}@{budget}" if budget else reference
        if other == label:
            continue
        shared = sorted(set(scores[label]) & set(scores.get(other, {})))
        if not shared:
            if budget and any(key.startswith(f"{reference}@") for key in scores):
                unmatched.append(reference)
            continue
        estimate = cross_task.probability_of_improvement([scores[label][t] for t in shared],
                                                         [scores[other][t] for t in shared], seed, confidence, resamples)
        out[f"over_{reference}"] = {"versus": other, "tasks": len(shared), **estimate.to_dict()}
    return out, unmatched


def format_markdown(aggregate: dict[str, Any]) -> str:
    """The aggregate as Markdown: the per-policy table, the cross-task table, the warnings."""
    level = 100 * aggregate.get("confidence", DEFAULT_CONFIDENCE)
    lines = [f"Aggregated over {aggregate['n_runs']} runs ({level:g}% Student-t intervals of the mean across runs).", "",
             "| env | target | policy | budget | runs | expert-free | target steps incl. expert | source return "
             "| target return | gap | normalized | reference score | gap closed | neg. transfer |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in aggregate["policies"]:
        free = "–" if row.get("expert_free") is None else ("yes" if row["expert_free"] else "**no**")
        steps = "?" if row.get("target_steps_incl_expert") is None else f"{row['target_steps_incl_expert']:.0f}"
        lines.append(
            f"| {row['env']} | {row['target']} | {row['name']} | {row['budget'] or '-'} | {row['n_runs']} | {free} | "
            f"{steps} | {_ci(row['source_return'])} | {_ci(row['target_return'])} | {_ci(row['gap'])} | "
            f"{_defined(row, 'normalized_score', '.1f')} | {_ci(row.get('reference_score'))} | "
            f"{_defined(row, 'gap_closed', '.0%')} | {row['negative_transfer_runs']}/{row['n_runs']} |")
    lines += _cross_task_lines(aggregate.get("cross_task") or {})
    if aggregate.get("warnings"):
        lines += ["", "Warnings:", *[f"- {w}" for w in aggregate["warnings"]]]
    return "\n".join(lines) + "\n"


def _cross_task_lines(across: dict[str, Any]) -> list[str]:
    methods = across.get("methods") or {}
    if not methods:
        return []
    lines = ["", f"Across {len(across['tasks'])} tasks ({', '.join(across['tasks'])}), score = {across['score']}; "
                 f"{100 * across['confidence']:g}% stratified-bootstrap intervals over runs within tasks:", "",
             "| method | expert-free | tasks | runs | IQM | median | mean | optimality gap | P(> finetune) | P(> scratch) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, entry in methods.items():
        free = "–" if entry["expert_free"] is None else ("yes" if entry["expert_free"] else "**no**")
        cells = [_estimate(entry[name]) for name in cross_task.ESTIMATORS]
        improve = [_estimate(entry["improvement"].get(f"over_{ref}")) for ref in REFERENCE_METHODS]
        lines.append(f"| {label} | {free} | {entry['tasks']} | {entry['runs']} | {' | '.join(cells)} | {' | '.join(improve)} |")
    return lines


def _estimate(value: dict[str, Any] | None) -> str:
    return "–" if not value else f"{value['value']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]"


def _ci(summary: dict[str, Any] | None) -> str:
    return "–" if summary is None else f"{summary['mean']:.1f} [{summary['ci_low']:.1f}, {summary['ci_high']:.1f}]"


def _defined(row: dict[str, Any], field: str, fmt: str) -> str:
    """The mean over the runs where the metric was defined, with their count when some were not."""
    value, runs = row.get(field), row.get(f"{field}_runs", row["n_runs"])
    if value is None:
        return "–"
    text = format(value, fmt)
    return text if runs == row["n_runs"] else f"{text} ({runs}/{row['n_runs']} runs)"


def plot_aggregate(aggregate: dict[str, Any], out_dir: Path) -> list[Path]:
    """Target returns per task, target return vs budget per method (several budgets), the performance profile."""
    from sim2real.evaluation import plots

    paths = plots.aggregate_bar_charts(aggregate["policies"], out_dir, aggregate["confidence"])
    curve = plots.aggregate_budget_curves(aggregate["policies"], out_dir / "aggregate_sample_efficiency.png")
    if curve is not None:
        paths.append(curve)
    profile = (aggregate.get("cross_task") or {}).get("profile") or {}
    if profile.get("methods"):
        paths.append(plots.performance_profile_plot(profile, out_dir / "performance_profile.png"))
    return paths


def prepare_out_dir(out: Path) -> Path:
    """Creates ``out`` if needed and checks that files can be written there; ``ValueError`` saying why not."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out '{out}' is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out '{out}' cannot be created: {err.strerror or err}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out '{out}' is not writable")
    return out


def write_aggregate(folder: str | Path, out_dir: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Aggregates every report under ``folder`` into ``out_dir`` (default: ``folder``).

    Every report is read and checked, and ``out_dir`` checked for writing, before anything is written.
    """
    paths = find_reports(folder)
    aggregate = aggregate_reports(paths, seed=seed)
    out = prepare_out_dir(Path(out_dir or folder))
    try:
        aggregate["plots"] = [str(p) for p in plot_aggregate(aggregate, out)]
        write_json_atomic(out / "aggregate.json", aggregate)
        write_text_atomic(out / "aggregate.md", format_markdown(aggregate))
    except OSError as err:
        raise ValueError(f"cannot write into --out '{out}': {err.strerror or err}") from None
    return aggregate
