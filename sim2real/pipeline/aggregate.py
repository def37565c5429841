"""Merges the reports of a sweep (a Hydra multirun folder) into one, with intervals across runs (seeds)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.evaluation.stats import summarize
from sim2real.runs import write_json_atomic, write_text_atomic

GROUP_KEYS = ("env", "target", "name", "role", "method", "budget")


def find_reports(folder: str | Path) -> list[Path]:
    """Every ``report.json`` under ``folder``; ``ValueError`` if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"'{folder}' is not a folder")
    reports = sorted(folder.rglob("report.json"))
    if not reports:
        raise ValueError(f"no report.json under '{folder}': is it a multirun folder of scripts/pipeline.py or evaluate.py?")
    return reports


def aggregate_reports(paths: list[Path], seed: int = 0) -> dict[str, Any]:
    """Groups policy rows by (env, target, name, role, method, budget) and summarizes them across runs.

    Each run contributes its per-run means; the intervals are bootstrap intervals over runs, so they
    reflect seed-to-seed variation of training and adaptation, not only evaluation noise.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        report = json.loads(path.read_text())
        for row in report.get("policies", []):
            # Baselines carry their budget in their name (scratch_20000); only adapted policies are split by budget.
            budget = row.get("budget") if row.get("role") == "policy" else None
            key = (report.get("env"), report.get("target"), row["name"], row.get("role"), row.get("method"), budget)
            groups[key].append(row)
    rows = [_summarize_group(dict(zip(GROUP_KEYS, key)), members, seed) for key, members in sorted(groups.items(), key=_order)]
    return {"runs": [str(p) for p in paths], "n_runs": len(paths), "policies": rows}


def _order(item: tuple[tuple[Any, ...], list[dict[str, Any]]]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v).zfill(12) if isinstance(v, int) else str(v) for v in item[0])


def _summarize_group(key: dict[str, Any], members: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    out = dict(key)
    out["n_runs"] = len(members)
    for field in ("source_return", "target_return", "gap"):
        values = np.array([m[field]["mean"] for m in members], dtype=float)
        out[field] = summarize(values[None, :], seed=seed).to_dict() if values.size > 1 else _single(values)
    for field in ("normalized_score", "gap_closed", "target_steps_used"):
        values = [m[field] for m in members if m.get(field) is not None]
        out[field] = float(np.mean(values)) if values else None
    out["negative_transfer_runs"] = sum(bool(m.get("negative_transfer")) for m in members)
    return out


def _single(values: np.ndarray) -> dict[str, Any]:
    value = float(values[0])
    return {"mean": value, "std": 0.0, "iqm": value, "ci_low": value, "ci_high": value, "n": 1}


def format_markdown(aggregate: dict[str, Any]) -> str:
    """The aggregate as a Markdown table."""
    lines = [f"Aggregated over {aggregate['n_runs']} runs (95% bootstrap intervals across runs).", "",
             "| env | target | policy | budget | runs | source return | target return | gap | normalized | gap closed | neg. transfer |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in aggregate["policies"]:
        lines.append(
            f"| {row['env']} | {row['target']} | {row['name']} | {row['budget'] or '-'} | {row['n_runs']} | "
            f"{_ci(row['source_return'])} | {_ci(row['target_return'])} | {_ci(row['gap'])} | "
            f"{_opt(row['normalized_score'])} | {_opt(row['gap_closed'], pct=True)} | "
            f"{row['negative_transfer_runs']}/{row['n_runs']} |")
    return "\n".join(lines) + "\n"


def _ci(summary: dict[str, Any]) -> str:
    return f"{summary['mean']:.1f} [{summary['ci_low']:.1f}, {summary['ci_high']:.1f}]"


def _opt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.0f}%" if pct else f"{value:.1f}"


def plot_aggregate(aggregate: dict[str, Any], out_dir: Path) -> list[Path]:
    """A bar chart of target returns per target, and target return vs budget per method if several budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in aggregate["policies"]:
        by_target[f"{row['env']} / {row['target']}"].append(row)
    for title, rows in by_target.items():
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4.5))
        labels = [r["name"] if not r["budget"] else f"{r['name']}\n@{r['budget']}" for r in rows]
        means = np.array([r["target_return"]["mean"] for r in rows])
        low = means - np.array([r["target_return"]["ci_low"] for r in rows])
        high = np.array([r["target_return"]["ci_high"] for r in rows]) - means
        ax.bar(range(len(rows)), means, yerr=[low, high], capsize=4, color="tab:blue", alpha=0.8)
        ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("target return (mean over runs, 95% CI)")
        ax.set_title(f"Target return across runs: {title}")
        fig.tight_layout()
        path = out_dir / f"aggregate_{title.replace(' / ', '__')}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    curves: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in aggregate["policies"]:
        if row["method"] and row["budget"]:
            curves[(f"{row['env']} / {row['target']}", row["method"])].append(row)
    if any(len({r["budget"] for r in rows}) > 1 for rows in curves.values()):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for (title, method), rows in sorted(curves.items()):
            rows = sorted(rows, key=lambda r: r["budget"])
            x = [r["budget"] for r in rows]
            y = [r["target_return"]["mean"] for r in rows]
            ax.errorbar(x, y, yerr=[[v - r["target_return"]["ci_low"] for v, r in zip(y, rows)],
                                    [r["target_return"]["ci_high"] - v for v, r in zip(y, rows)]],
                        marker="o", capsize=3, label=f"{method} ({title})")
        ax.set_xlabel("target budget (steps)")
        ax.set_ylabel("target return")
        ax.set_title("Sample efficiency across runs")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / "aggregate_sample_efficiency.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def write_aggregate(folder: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Aggregates every report under ``folder`` into ``out_dir`` (default: ``folder``)."""
    out = Path(out_dir or folder)
    out.mkdir(parents=True, exist_ok=True)
    aggregate = aggregate_reports(find_reports(folder))
    write_json_atomic(out / "aggregate.json", aggregate)
    write_text_atomic(out / "aggregate.md", format_markdown(aggregate))
    aggregate["plots"] = [str(p) for p in plot_aggregate(aggregate, out)]
    write_json_atomic(out / "aggregate.json", aggregate)
    return aggregate
