"""The benchmark suite: envs x shifts x methods x seeds, one pipeline run per cell, and the leaderboard.

A suite (``configs/benchmark.yaml``) lists envs, each with its shifts (targets built on the nominal
dynamics), the methods and the seeds. Every (env, shift) becomes one Hydra multirun of
``scripts/pipeline.py`` over the seeds, into fixed folders ``<out>/<env>/<shift>/seed<k>`` (an env's
first shift trains the source policy of each seed, the others reuse it), so the
launcher is the user's choice (``hydra/launcher=slurm``) and rerunning the same command resumes (the
pipeline skips its complete stages). :func:`write_leaderboard` then aggregates every report under
``<out>`` (:mod:`sim2real.pipeline.aggregate`) into ``leaderboard.json``, ``leaderboard.md`` and plots:
methods ranked by the IQM of their reference-normalized scores across tasks, expert-free methods first.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sim2real.pipeline.aggregate import (
    aggregate_reports,
    find_reports,
    format_markdown,
    plot_aggregate,
    prepare_out_dir,
)
from sim2real.runs import write_json_atomic, write_text_atomic
from sim2real.validation import require_choice, require_int, require_known_keys

SUITE_FILE = Path(__file__).resolve().parents[2] / "configs" / "benchmark.yaml"
SHIFT_KINDS = ("friction", "gravity", "kinematic", "morphology")
PIPELINE_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pipeline.py"


@dataclass(frozen=True)
class Shift:
    """A target built on the nominal dynamics: each parameter handle scaled by its factor.

    Attributes:
        name: Folder and target name (``gravity_x2``).
        kind: One of :data:`SHIFT_KINDS`.
        factors: ``{handle: factor}``.
    """

    name: str
    kind: str
    factors: Mapping[str, float]

    def overrides(self) -> list[str]:
        """Pipeline overrides that make this target."""
        description = ", ".join(f"{handle} x{factor:g}" for handle, factor in self.factors.items())
        out = ["target=nominal", f"target.name={self.name}", f"target.description='{self.kind}: {description}'"]
        out += [f"+target.parameters.{handle}={{op:scale,value:{factor!r}}}" for handle, factor in self.factors.items()]
        return out


@dataclass(frozen=True)
class EnvSuite:
    """One env of a suite: its shifts and its own pipeline overrides."""

    env: str
    shifts: tuple[Shift, ...]
    pipeline: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suite:
    """A benchmark suite (one entry of ``configs/benchmark.yaml``).

    Attributes:
        name: ``small`` or ``full``.
        seeds: Seeds of every cell.
        methods: Transfer methods compared in every cell.
        pipeline: Pipeline overrides common to every cell (an env's own come after and win).
        envs: The envs and their shifts.
    """

    name: str
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    pipeline: tuple[str, ...]
    envs: tuple[EnvSuite, ...]

    @property
    def cells(self) -> int:
        """Pipeline runs in the suite."""
        return len(self.seeds) * sum(len(env.shifts) for env in self.envs)


def _shift(name: str, data: Mapping[str, Any]) -> Shift:
    require_known_keys(f"shift '{name}'", data, ("kind", "parameters"))
    kind = require_choice(f"shift '{name}' kind", data.get("kind"), SHIFT_KINDS)
    factors = dict(data.get("parameters") or {})
    if not factors:
        raise ValueError(f"shift '{name}' scales no parameter: give parameters: {{handle: factor}}")
    for handle, factor in factors.items():
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"shift '{name}': {handle}={factor!r} must be a number > 0")
    return Shift(name, kind, {str(k): float(v) for k, v in factors.items()})


def load_suite(size: str, path: Path = SUITE_FILE) -> Suite:
    """Reads one suite of the benchmark file; ``ValueError`` naming what is wrong."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict):
        raise ValueError(f"'{path}' must map suite names to suites")
    size = require_choice("size", size, sorted(raw))
    data = raw[size]
    require_known_keys(f"suite '{size}'", data, ("seeds", "methods", "pipeline", "envs"))
    envs = []
    for env, entry in dict(data.get("envs") or {}).items():
        require_known_keys(f"suite '{size}' env '{env}'", entry, ("shifts", "pipeline"))
        shifts = tuple(_shift(name, shift) for name, shift in dict(entry.get("shifts") or {}).items())
        envs.append(EnvSuite(str(env), shifts, tuple(entry.get("pipeline") or ())))
    seeds = tuple(require_int("seed", seed, minimum=0) for seed in data.get("seeds") or ())
    if not envs or not seeds or not data.get("methods"):
        raise ValueError(f"suite '{size}' needs envs, seeds and methods")
    return Suite(size, seeds, tuple(data["methods"]), tuple(data.get("pipeline") or ()), tuple(envs))


@dataclass(frozen=True)
class Sweep:
    """One Hydra multirun: an (env, shift) over the suite's seeds."""

    env: str
    shift: Shift
    folder: Path
    argv: list[str]


def merge_overrides(*groups: list[str] | tuple[str, ...]) -> list[str]:
    """Hydra overrides in order, a later one replacing an earlier one of the same key (Hydra refuses duplicates).

    Example:
        >>> merge_overrides(["budget=5000", "episodes=5"], ["budget=2000"])
        ['budget=2000', 'episodes=5']
    """
    merged: dict[str, str] = {}
    for group in groups:
        for override in group:
            merged[override.partition("=")[0].lstrip("+")] = override
    return list(merged.values())


def sweeps(suite: Suite, out: Path, extra: list[str] | tuple[str, ...] = ()) -> list[Sweep]:
    """The multirun commands of the suite (``extra``: overrides for every run, e.g. a launcher).

    The source policy depends on the env and the seed, not on the shift: an env's first shift trains it,
    and the later shifts reuse that run (``source_run``), so a sweep must finish before the next starts.
    """
    methods = "[" + ",".join(suite.methods) + "]"
    seeds = ",".join(str(seed) for seed in suite.seeds)
    commands = []
    for env in suite.envs:
        shared_source: list[str] = []
        for shift in env.shifts:
            folder = out / env.env / shift.name
            overrides = merge_overrides(shift.overrides(), suite.pipeline, env.pipeline, shared_source, extra)
            shared_source = shared_source or [f"source_run={folder}/seed${{seed}}/source"]
            argv = [sys.executable, str(PIPELINE_SCRIPT), "-m", f"env={env.env}", f"seed={seeds}", f"methods={methods}",
                    *overrides, f"hydra.sweep.dir={folder}", "hydra.sweep.subdir=seed${seed}"]
            commands.append(Sweep(env.env, shift, folder, argv))
    return commands


def run_suite(suite: Suite, out: Path, extra: list[str] | tuple[str, ...] = (),
              run: Callable[[list[str]], int] | None = None, printer: Callable[[str], None] = print) -> list[str]:
    """Runs (or resumes) every sweep; returns the ``env/shift`` of those that failed."""
    run = run or (lambda argv: subprocess.run(argv, check=False).returncode)
    failed = []
    commands = sweeps(suite, out, extra)
    for index, sweep in enumerate(commands, start=1):
        printer(f"[{index}/{len(commands)}] {sweep.env} / {sweep.shift.name} ({len(suite.seeds)} seeds) -> {sweep.folder}")
        if run(sweep.argv) != 0:
            failed.append(f"{sweep.env}/{sweep.shift.name}")
            printer(f"  failed: {sweep.env} / {sweep.shift.name} (rerun the same command to resume)")
    return failed


def leaderboard_rows(aggregate: dict[str, Any]) -> list[dict[str, Any]]:
    """Methods ranked by the IQM of their reference scores: expert-free first, then expert-assisted, then baselines."""
    methods = (aggregate.get("cross_task") or {}).get("methods") or {}
    baselines = ("zero_shot", "scratch", "oracle", "random")

    def group(label: str, entry: dict[str, Any]) -> int:
        if label.partition("@")[0] in baselines:
            return 2
        return 0 if entry.get("expert_free") else 1

    ranked = sorted(methods.items(), key=lambda item: (group(*item), -item[1]["iqm"]["value"]))
    return [{"method": label, "group": ("expert-free", "expert-assisted", "baseline")[group(label, entry)], **entry}
            for label, entry in ranked]


def format_leaderboard(suite_name: str, aggregate: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """``leaderboard.md``: the ranking, then the per-policy table and warnings of the aggregate."""
    across = aggregate.get("cross_task") or {}
    lines = [f"# Leaderboard: benchmark suite '{suite_name}'", "",
             f"{len(across.get('tasks', []))} tasks ({', '.join(across.get('tasks', []))}), {aggregate['n_runs']} runs. "
             f"Score: {across.get('score', 'reference score')}; intervals: "
             f"{100 * across.get('confidence', 0.95):g}% stratified bootstrap over runs within tasks.", "",
             "| rank | method | group | IQM | median | mean | optimality gap | P(> finetune) | P(> scratch) | tasks | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rank, row in enumerate(rows, start=1):
        cells = [_estimate(row[name]) for name in ("iqm", "median", "mean", "optimality_gap")]
        better = [_estimate(row["improvement"].get(f"over_{ref}")) for ref in ("finetune", "scratch")]
        lines.append(f"| {rank} | {row['method']} | {row['group']} | {' | '.join(cells)} | {' | '.join(better)} "
                     f"| {row['tasks']} | {row['runs']} |")
    lines += ["", "## Per task and policy", "", format_markdown(aggregate)]
    return "\n".join(lines)


def _estimate(value: dict[str, Any] | None) -> str:
    return "–" if not value else f"{value['value']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]"


def write_leaderboard(out: Path, suite_name: str, seed: int = 0) -> dict[str, Any]:
    """Aggregates every report under ``out`` into ``leaderboard.json``, ``leaderboard.md`` and plots."""
    aggregate = aggregate_reports(find_reports(out), seed=seed)
    prepare_out_dir(out)
    aggregate["plots"] = [str(p) for p in plot_aggregate(aggregate, out)]
    rows = leaderboard_rows(aggregate)
    write_json_atomic(out / "leaderboard.json", {"suite": suite_name, "leaderboard": rows, "aggregate": aggregate})
    write_text_atomic(out / "leaderboard.md", format_leaderboard(suite_name, aggregate, rows))
    return {"suite": suite_name, "leaderboard": rows, "aggregate": aggregate}
