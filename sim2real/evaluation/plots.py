"""Plots (matplotlib, Agg backend, PNG) of the transfer report (returns with intervals, robustness heatmaps,
sample-efficiency curves) and of training (automatic domain randomization's ranges)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim2real.evaluation.report import Report  # noqa: E402
from sim2real.evaluation.sweep import COVERAGE_FRACTION, SweepResult, reference_nominal  # noqa: E402
from sim2real.randomization.adr import AdrState  # noqa: E402
from sim2real.runs import atomic_path  # noqa: E402

SOURCE_COLOR, TARGET_COLOR = "#4C72B0", "#DD8452"


def _save(figure: Figure, path: Path, tight: bool = True) -> Path:
    if tight:  # a figure made with layout="constrained" keeps its own layout
        figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return path


def _errors(means: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    return np.vstack([np.maximum(means - lows, 0.0), np.maximum(highs - means, 0.0)])


def returns_bar_chart(report: Report, path: str | Path) -> Path:
    """Grouped bars of source vs target return per policy, with the report's confidence intervals."""
    rows = report.policies
    names = [f"{row.name}\n({row.role})" for row in rows]
    x = np.arange(len(rows))
    width = 0.38
    figure, axes = plt.subplots(figsize=(max(7.0, 1.5 * len(rows) + 2.0), 5.0))
    for offset, attribute, label, color in ((-width / 2, "source_return", "source (nominal)", SOURCE_COLOR),
                                            (width / 2, "target_return", f"target ({report.target})", TARGET_COLOR)):
        summaries = [getattr(row, attribute) for row in rows]
        means = np.array([s.mean for s in summaries])
        errors = _errors(means, np.array([s.ci_low for s in summaries]), np.array([s.ci_high for s in summaries]))
        axes.bar(x + offset, means, width, yerr=errors, capsize=4, label=label, color=color)
    axes.set_xticks(x, names, fontsize=9)
    axes.set_ylabel("episode return (mean)")
    axes.set_title(f"{report.env}: return on the source vs on target '{report.target}'\n"
                   f"(mean with {100 * report.confidence:g}% CI, {report.seeds} seeds x {report.episodes} episodes)",
                   fontsize=11)
    top = max([row.source_return.ci_high for row in rows] + [row.target_return.ci_high for row in rows] + [0.0])
    if top > 0:
        axes.set_ylim(top=1.18 * top)  # room for the legend above the bars
    axes.legend(loc="upper right", ncol=2, fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, Path(path))


def robustness_heatmap(result: SweepResult, path: str | Path, env: str = "") -> Path:
    """A heatmap of mean return over a two-group grid (a line with its interval for one group)."""
    figure, axes = plt.subplots(figsize=(6.4, 5.0))
    op = "x" if result.operation == "scale" else "+"
    title = f"{env + ': ' if env else ''}mean return of {result.policy}\nunder perturbations ({result.n} episodes per cell)"
    if len(result.groups) == 1:
        values = np.array(result.values[0])
        axes.plot(values, result.mean, marker="o", color=SOURCE_COLOR)
        axes.fill_between(values, result.ci_low, result.ci_high, alpha=0.25, color=SOURCE_COLOR)
        axes.set_xlabel(f"{result.groups[0]} ({op} nominal)")
        axes.set_ylabel("episode return (mean, CI band)")
        axes.grid(alpha=0.3)
    else:
        image = axes.imshow(result.mean, origin="lower", cmap="viridis", aspect="auto")
        rows, cols = result.values
        axes.set_yticks(range(len(rows)), [f"{v:g}" for v in rows])
        axes.set_xticks(range(len(cols)), [f"{v:g}" for v in cols])
        axes.set_ylabel(f"{result.groups[0]} ({op} nominal)")
        axes.set_xlabel(f"{result.groups[1]} ({op} nominal)")
        threshold = (np.nanmax(result.mean) + np.nanmin(result.mean)) / 2.0
        for (i, j), value in np.ndenumerate(result.mean):
            axes.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                      color="black" if value > threshold else "white")
        figure.colorbar(image, ax=axes, label="episode return (mean)")
    axes.set_title(title, fontsize=10)
    return _save(figure, Path(path))


def robustness_comparison(results: list[SweepResult], path: str | Path, env: str = "",
                          reference: str | None = None) -> Path:
    """Two-group sweeps of several policies side by side on one colour scale. Each panel's title gives how many
    cells reach half of that policy's nominal cell; with ``reference`` (a policy among ``results``) also how many
    reach half of that policy's nominal cell, one line for all panels, and the outlines mark those cells
    (otherwise the cells at half of the panel's own nominal)."""
    low = min(float(np.nanmin(r.mean)) for r in results)
    high = max(float(np.nanmax(r.mean)) for r in results)
    if high <= low:  # every cell alike: a zero-width scale would colour equal grids differently
        low, high = low - 0.5, high + 0.5
    shared = reference_nominal(results, reference) if reference is not None else None
    figure, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.6), squeeze=False, layout="constrained")
    op = "x" if results[0].operation == "scale" else "+"
    for result, panel in zip(results, axes[0]):
        image = panel.imshow(result.mean, origin="lower", cmap="viridis", aspect="auto", vmin=low, vmax=high)
        rows, cols = result.values
        panel.set_yticks(range(len(rows)), [f"{v:.2g}" for v in rows])
        panel.set_xticks(range(len(cols)), [f"{v:.2g}" for v in cols])
        panel.set_ylabel(f"{result.groups[0]} ({op} nominal)")
        panel.set_xlabel(f"{result.groups[1]} ({op} nominal)")
        own = result.covered()
        common = result.covered(nominal=shared) if shared is not None else None
        outlined = own if reference is None else common
        for (i, j), value in np.ndenumerate(result.mean):
            panel.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7,
                       color="black" if value > (low + high) / 2 else "white")
            if outlined is not None and outlined[i, j]:
                panel.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2))
        count = "" if own is None else (f"\n{int(own.sum())}/{result.mean.size} cells >= "
                                        f"{COVERAGE_FRACTION:.0%} of own nominal ({result.nominal_return:.0f})")
        if common is not None:
            count += (f"\n{int(common.sum())}/{result.mean.size} cells >= {COVERAGE_FRACTION:.0%} of "
                      f"{reference}'s ({shared:.0f}, outlined)")
        panel.set_title(f"{result.policy}{count}", fontsize=9)
    figure.colorbar(image, ax=axes[0].tolist(), label="episode return (mean)")
    figure.suptitle(f"{env + ': ' if env else ''}robustness, {results[0].n} episodes per cell", fontsize=10)
    return _save(figure, Path(path), tight=False)


def sample_efficiency_plot(report: Report, path: str | Path) -> Path | None:
    """Target return vs target steps used per method (CI band), with the oracle and scratch runs; None if no curve."""
    curves: dict[str, list[dict[str, Any]]] = report.context.get("sample_efficiency") or {}
    if not curves:
        return None
    figure, axes = plt.subplots(figsize=(6.8, 4.6))
    for method, points in curves.items():
        steps = np.array([p["target_steps_used"] for p in points], dtype=float)
        means = np.array([p["mean"] for p in points])
        line = axes.plot(steps, means, marker="o", label=method)[0]
        axes.fill_between(steps, [p["ci_low"] for p in points], [p["ci_high"] for p in points], alpha=0.2,
                          color=line.get_color())
    scratch = [row for row in report.policies if row.role == "scratch"]
    if scratch:
        axes.errorbar([r.target_steps_used for r in scratch], [r.target_return.mean for r in scratch],
                      yerr=_errors(np.array([r.target_return.mean for r in scratch]),
                                   np.array([r.target_return.ci_low for r in scratch]),
                                   np.array([r.target_return.ci_high for r in scratch])),
                      fmt="s", color="gray", capsize=4, label="from scratch")
    for row in report.policies:
        if row.role in ("oracle", "random"):
            axes.axhline(row.target_return.mean, linestyle="--", color="green" if row.role == "oracle" else "red",
                         label=f"{row.role} ({row.target_return.mean:.0f})")
    axes.set_xlabel("target steps used")
    axes.set_ylabel(f"return on target '{report.target}'")
    axes.set_title(f"{report.env}: sample efficiency on target '{report.target}'")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best", framealpha=0.9)
    return _save(figure, Path(path))


def aggregate_bar_charts(rows: list[dict[str, Any]], out_dir: Path, confidence: float) -> list[Path]:
    """One bar chart of target return (mean over runs, interval across runs at ``confidence``) per (env, target)
    of an aggregate."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_task.setdefault(f"{row['env']} / {row['target']}", []).append(row)
    paths = []
    for title, task_rows in by_task.items():
        figure, axes = plt.subplots(figsize=(max(6.0, 0.9 * len(task_rows) + 2.0), 4.5))
        labels = [r["name"] if not r["budget"] else f"{r['name']}\n@{r['budget']}" for r in task_rows]
        means = np.array([r["target_return"]["mean"] for r in task_rows])
        errors = _errors(means, np.array([r["target_return"]["ci_low"] for r in task_rows]),
                         np.array([r["target_return"]["ci_high"] for r in task_rows]))
        axes.bar(range(len(task_rows)), means, yerr=errors, capsize=4, color=SOURCE_COLOR, alpha=0.8)
        axes.set_xticks(range(len(task_rows)), labels, rotation=30, ha="right", fontsize=8)
        axes.set_ylabel(f"target return (mean over runs, {confidence:.0%} CI)")
        axes.set_title(f"Target return across runs: {title}")
        paths.append(_save(figure, out_dir / f"aggregate_{title.replace(' / ', '__')}.png"))
    return paths


def aggregate_budget_curves(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Target return against budget per (task, method) of an aggregate; None unless some method has several budgets."""
    curves: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["method"] and row["budget"]:
            curves.setdefault((f"{row['env']} / {row['target']}", row["method"]), []).append(row)
    if not any(len({r["budget"] for r in points}) > 1 for points in curves.values()):
        return None
    figure, axes = plt.subplots(figsize=(7.0, 4.5))
    for (title, method), points in sorted(curves.items()):
        points = sorted(points, key=lambda r: r["budget"])
        means = np.array([r["target_return"]["mean"] for r in points])
        errors = _errors(means, np.array([r["target_return"]["ci_low"] for r in points]),
                         np.array([r["target_return"]["ci_high"] for r in points]))
        axes.errorbar([r["budget"] for r in points], means, yerr=errors, marker="o", capsize=3,
                      label=f"{method} ({title})")
    axes.set_xlabel("target budget (steps)")
    axes.set_ylabel("target return")
    axes.set_title("Sample efficiency across runs")
    axes.legend(fontsize=8)
    return _save(figure, path)


def performance_profile_plot(profile: dict[str, Any], path: Path) -> Path:
    """Fraction of runs whose reference-normalized score exceeds tau, per method, with bootstrap bands (rliable's
    score-distribution plot)."""
    taus = np.asarray(profile["tau"], dtype=float)
    figure, axes = plt.subplots(figsize=(7.0, 4.6))
    for label, curve in profile["methods"].items():
        line = axes.plot(taus, curve["fraction"], label=label)[0]
        axes.fill_between(taus, curve["ci_low"], curve["ci_high"], alpha=0.2, color=line.get_color())
    axes.set_xlabel("reference-normalized score tau (0 = random, 1 = expert reference)")
    axes.set_ylabel("fraction of runs with score > tau")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("Performance profile across tasks and runs")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best", framealpha=0.9)
    return _save(figure, path)


def adr_ranges_plot(state: AdrState, path: str | Path) -> Path:
    """The trajectory of automatic domain randomization's ranges: one panel per dimension, its range
    (shaded) against training steps."""
    steps = [entry["timesteps"] for entry in state.trajectory]
    figure, axes = plt.subplots(len(state.names), 1, figsize=(6.4, 1.6 * len(state.names) + 0.8), sharex=True, squeeze=False)
    for i, (name, panel) in enumerate(zip(state.names, axes[:, 0])):
        low = [entry["low"][i] for entry in state.trajectory]
        high = [entry["high"][i] for entry in state.trajectory]
        panel.fill_between(steps, low, high, step="post", alpha=0.35, color=SOURCE_COLOR)
        panel.step(steps, low, where="post", color=SOURCE_COLOR)
        panel.step(steps, high, where="post", color=SOURCE_COLOR)
        panel.set_ylabel(name if name == "action_latency" else f"{name}\n(x nominal)", fontsize=8)
        panel.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("training steps")
    axes[0, 0].set_title("automatic domain randomization: ranges during training", fontsize=10)
    return _save(figure, Path(path))
