"""The evaluator: policies on source and target, baselines, domain similarity, sweeps, report and plots.

:func:`evaluate_policies` is the library entry point (``scripts/evaluate.py`` is a thin Hydra edge
around it). It checks every input first (run folders, envs, target, counts, sweep grid), trains missing
baselines if asked, then runs all rollouts in one parallel batch and writes ``report.json``,
``report.md`` and the plots into ``out_dir``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.envs.registry import EnvSpec, env_spec_from_record
from sim2real.evaluation.baselines import Baselines, train_baseline
from sim2real.evaluation.parallel import RANDOM_POLICY, RolloutJob, episode_seed_bases, run_jobs
from sim2real.evaluation.report import EvaluatedPolicy, Report, build_report, write_report
from sim2real.evaluation.similarity import SimilaritySettings, domain_similarity
from sim2real.evaluation.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
from sim2real.evaluation.sweep import SweepSpec, sweep_jobs, sweep_result
from sim2real.randomization.factory import validate_dynamics
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import write_json_atomic
from sim2real.training.loading import check_run_dir, load_policy


@dataclass(frozen=True)
class PolicyEntry:
    """A policy to evaluate.

    Attributes:
        run_dir: Its run folder (trained or adapted).
        name: Display name (default: the folder's name).
    """

    run_dir: Path
    name: str | None = None


@dataclass(frozen=True)
class EvalSettings:
    """Statistics, seeding and optional parts of an evaluation.

    Attributes:
        eval_seed: Root of the episode seeds: seed ``k``'s episode ``i`` resets with ``child_seeds(eval_seed)[k] + i``.
        confidence: Coverage of every interval.
        resamples: Bootstrap resamples.
        bootstrap_seed: Seed of the bootstrap.
        similarity: Domain-similarity settings (None: skip).
        sweep: Robustness sweep (None: skip).
        plots: Write PNG plots.
    """

    eval_seed: int = 1000
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    bootstrap_seed: int = 0
    similarity: SimilaritySettings | None = field(default_factory=SimilaritySettings)
    sweep: SweepSpec | None = None
    plots: bool = True


@dataclass
class _Candidate:
    """A policy to roll out, before its returns exist."""

    name: str
    role: str
    policy: str
    metadata: dict[str, Any] = field(default_factory=dict)
    zero_shot: str | None = None
    budget: int | None = None


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _env_spec(metadata: dict[str, Any]) -> EnvSpec:
    return env_spec_from_record(metadata["env"])


def _check_run(run_dir: Path, env_name: str | None, what: str) -> dict[str, Any]:
    try:
        metadata = check_run_dir(run_dir)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if env_name is not None and metadata["env"]["name"] != env_name:
        raise ValueError(f"{what} '{run_dir}' is for env '{metadata['env']['name']}', but the policies are for '{env_name}'")
    return metadata


def _unique_name(name: str, taken: set[str]) -> str:
    candidate, index = name, 2
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    taken.add(candidate)
    return candidate


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _policy_candidates(policies: list[PolicyEntry | Path | str]) -> tuple[list[_Candidate], EnvSpec]:
    if not policies:
        raise ValueError("no policies to evaluate: give at least one run folder")
    entries = [p if isinstance(p, PolicyEntry) else PolicyEntry(Path(p)) for p in policies]
    first = _check_run(Path(entries[0].run_dir), None, "policy")
    env_name = first["env"]["name"]
    taken: set[str] = set()
    candidates = []
    for entry in entries:
        run_dir = Path(entry.run_dir)
        metadata = _check_run(run_dir, env_name, "policy")
        name = _unique_name(entry.name or run_dir.name, taken)
        candidates.append(_Candidate(name=name, role="policy", policy=str(run_dir), metadata=metadata))
    return candidates, _env_spec(first)


def _zero_shot_runs(candidates: list[_Candidate], zero_shot: Path | None) -> list[Path]:
    """The zero-shot source runs: ``zero_shot`` if given, else the transfer runs' ``source_run``."""
    if zero_shot is not None:
        return [Path(zero_shot)]
    runs: list[Path] = []
    for candidate in candidates:
        source = candidate.metadata.get("source_run")
        if candidate.metadata.get("kind") != "transfer" or not source:
            continue
        if not Path(source).is_dir():
            raise ValueError(f"policy '{candidate.name}': its source run '{source}' does not exist; "
                             "pass the zero-shot policy explicitly (zero_shot=RUN_DIR)")
        if not any(_same(Path(source), run) for run in runs):
            runs.append(Path(source))
    return runs


def _attach_zero_shot(candidates: list[_Candidate], runs: list[Path], env_name: str, explicit: bool) -> list[_Candidate]:
    """Marks or adds the zero-shot runs and points each policy at its reference; returns the added ones."""
    taken = {c.name for c in candidates}
    added: list[_Candidate] = []
    references: dict[str, str] = {}
    for run in runs:
        metadata = _check_run(run, env_name, "zero-shot policy")
        listed = next((c for c in candidates if _same(Path(c.policy), run)), None)
        if listed is None:
            listed = _Candidate(name=_unique_name(run.name, taken), role="zero_shot", policy=str(run), metadata=metadata)
            added.append(listed)
        else:
            listed.role = "zero_shot"
        references[str(run.resolve())] = listed.name
    for candidate in candidates:
        if candidate.role != "policy":
            continue
        if explicit:
            candidate.zero_shot = next(iter(references.values()), None)
        elif candidate.metadata.get("kind") == "transfer" and candidate.metadata.get("source_run"):
            candidate.zero_shot = references.get(str(Path(candidate.metadata["source_run"]).resolve()))
    return added


def _transfer_budgets(candidates: list[_Candidate]) -> list[int]:
    budgets = {int(c.metadata["budget"]) for c in candidates if c.role == "policy" and c.metadata.get("budget")}
    return sorted(budgets)


def _baseline_candidates(baselines: Baselines, candidates: list[_Candidate], env: EnvSpec, target: DynamicsSpec,
                         out_dir: Path, source_metadata: dict[str, Any]) -> list[_Candidate]:
    """Checks given baseline runs, trains the missing ones if asked; returns them as candidates."""
    taken = {c.name for c in candidates}
    scratch = {budget: Path(run) for budget, run in baselines.scratch.items()}
    oracle = baselines.oracle
    for budget, run in scratch.items():
        _check_run(run, env.name, f"scratch baseline ({budget} steps)")
    if oracle is not None:
        _check_run(oracle, env.name, "oracle baseline")
    if baselines.train_missing:
        for budget in _transfer_budgets(candidates):
            if budget not in scratch:
                scratch[budget] = train_baseline(out_dir / "baselines" / f"scratch_{budget}", source_metadata, target,
                                                 budget, baselines.train_seed)
        if oracle is None:
            steps = baselines.oracle_timesteps or int(source_metadata.get("timesteps") or 0)
            if steps <= 0:
                raise ValueError("cannot train the oracle: set baselines.oracle_timesteps")
            oracle = train_baseline(out_dir / "baselines" / "oracle", source_metadata, target, steps, baselines.train_seed)
    added = []
    if baselines.random:
        added.append(_Candidate(name=_unique_name("random", taken), role="random", policy=RANDOM_POLICY))
    for budget, run in sorted(scratch.items()):
        added.append(_Candidate(name=_unique_name(f"scratch_{budget}", taken), role="scratch", policy=str(run),
                                metadata=check_run_dir(run), budget=budget))
    if oracle is not None:
        added.append(_Candidate(name=_unique_name("oracle", taken), role="oracle", policy=str(oracle),
                                metadata=check_run_dir(oracle)))
    return added


def _steps_used(candidate: _Candidate) -> int:
    if "target_steps_used" in candidate.metadata:
        return int(candidate.metadata["target_steps_used"])
    if candidate.role in ("scratch", "oracle"):
        return int(candidate.metadata.get("timesteps_done") or candidate.metadata.get("timesteps") or 0)
    return 0


def _evaluation_jobs(candidates: list[_Candidate], env: EnvSpec, target: DynamicsSpec, bases: list[int],
                     episodes: int) -> list[RolloutJob]:
    """Per candidate: the source jobs (nominal) then the target jobs, one per evaluation seed."""
    return [RolloutJob(policy=c.policy, env=env, seed=base, episodes=episodes, target=dynamics)
            for c in candidates for dynamics in (None, target) for base in bases]


def _reference_policy(candidates: list[_Candidate]) -> _Candidate | None:
    """The policy whose rollouts define the source domain: the zero-shot run, else the first trained policy."""
    for role in ("zero_shot", "policy"):
        for candidate in candidates:
            if candidate.role == role and candidate.metadata.get("kind") != "transfer":
                return candidate
    return next((c for c in candidates if c.role == "policy"), None)


def _similarity(reference: _Candidate | None, env: EnvSpec, target: DynamicsSpec,
                settings: SimilaritySettings | None) -> dict[str, Any] | None:
    if settings is None or reference is None:
        return None
    randomization = DynamicsSpec.from_dict(reference.metadata.get("randomization"), default_name="source")
    result = domain_similarity(load_policy(reference.policy).act, env, randomization, target, settings)
    return {"reference_policy": reference.name, "source_randomization": randomization.name, **result.to_dict()}


def evaluate_policies(
    policies: list[PolicyEntry | Path | str],
    target: DynamicsSpec,
    episodes: int,
    seeds: int,
    out_dir: str | Path,
    baselines: Baselines | None = None,
    zero_shot: Path | str | None = None,
    workers: int | None = None,
    settings: EvalSettings | None = None,
) -> Report:
    """Evaluates policies on the source (nominal) dynamics and on ``target``; writes the report and plots.

    Args:
        policies: Run folders (or :class:`PolicyEntry` with a display name), all for the same env.
        target: The target dynamics (e.g. ``sim2real.presets.target_spec("high_gravity")``).
        episodes: Episodes per evaluation seed (>= 1).
        seeds: Evaluation seeds (>= 1); every policy sees the same episode seeds.
        out_dir: Where ``report.json``, ``report.md`` and the PNG plots go.
        baselines: Random / scratch / oracle baselines (None: none).
        zero_shot: The zero-shot source policy adapted policies are compared with (default: each transfer
            run's ``source_run``).
        workers: Processes for the rollouts (None: ``min(2, cpu count)``; 1: in-process). Results do not
            depend on it.
        settings: Seeds, statistics, similarity and sweep settings.

    Returns:
        The report (also written to ``out_dir``).
    """
    settings = settings or EvalSettings()
    episodes, seeds = _positive("episodes", episodes), _positive("seeds", seeds)
    if workers is not None:
        _positive("workers", workers)
    out_dir = Path(out_dir)
    candidates, env = _policy_candidates(policies)
    validate_dynamics(env, target)
    if settings.sweep is not None:
        settings.sweep.validate(env)
    explicit = zero_shot is not None
    candidates += _attach_zero_shot(candidates, _zero_shot_runs(candidates, Path(zero_shot) if explicit else None),
                                    env.name, explicit)
    _check_sweep_names(settings.sweep, candidates)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = _reference_policy(candidates)
    if baselines is not None:
        source_metadata = (reference or candidates[0]).metadata
        candidates += _baseline_candidates(baselines, candidates, env, target, out_dir, source_metadata)

    bases = episode_seed_bases(settings.eval_seed, seeds)
    jobs = _evaluation_jobs(candidates, env, target, bases, episodes)
    swept = _swept_policies(candidates, settings.sweep)
    for candidate in swept:
        jobs += sweep_jobs(candidate.policy, env, settings.sweep, settings.eval_seed)  # type: ignore[arg-type]
    results = run_jobs(jobs, workers)

    evaluated = _evaluated(candidates, results, seeds)
    report = build_report(evaluated, env=env.name, target=target.name, target_spec=target.to_dict(),
                          confidence=settings.confidence, resamples=settings.resamples, seed=settings.bootstrap_seed)
    report.context.update(eval_seed=settings.eval_seed, episode_seed_bases=bases,
                          physics_blowups=_blowups(candidates, results, seeds))
    similarity = _similarity(reference, env, target, settings.similarity)
    if similarity is not None:
        report.context["similarity"] = similarity
        if similarity["warning"]:
            report.warnings.append(similarity["warning"])
            warnings.warn(similarity["warning"], stacklevel=2)
    sweeps = _sweep_results(swept, settings, results[len(candidates) * 2 * seeds:])
    report.context["sweeps"] = [{**s.to_dict(), "file": f"sweep_{_slug(s.policy)}.json"} for s in sweeps]
    for sweep in sweeps:
        write_json_atomic(out_dir / f"sweep_{_slug(sweep.policy)}.json", sweep.to_dict())
    if settings.plots:
        report.context["plots"] = [str(p) for p in _write_plots(report, sweeps, out_dir)]
    write_report(report, out_dir)
    return report


def _check_sweep_names(sweep: SweepSpec | None, candidates: list[_Candidate]) -> None:
    """Rejects unknown names in ``sweep.policies`` before any long work (baselines may still be added)."""
    if sweep is None or sweep.policies is None:
        return
    known = [c.name for c in candidates]
    unknown = [n for n in sweep.policies if n not in known and not n.startswith(("random", "scratch_", "oracle"))]
    if unknown:
        raise ValueError(f"sweep.policies: unknown {unknown}; known: {', '.join(known)} and the baselines")


def _swept_policies(candidates: list[_Candidate], sweep: SweepSpec | None) -> list[_Candidate]:
    if sweep is None:
        return []
    if sweep.policies is None:
        return [c for c in candidates if c.role in ("policy", "zero_shot")]
    names = {c.name: c for c in candidates}
    unknown = [name for name in sweep.policies if name not in names]
    if unknown:
        raise ValueError(f"sweep.policies: unknown {unknown}; known: {', '.join(names)}")
    return [names[name] for name in sweep.policies]


def _evaluated(candidates: list[_Candidate], results: list[Any], seeds: int) -> list[EvaluatedPolicy]:
    evaluated = []
    for index, candidate in enumerate(candidates):
        chunk = results[index * 2 * seeds:(index + 1) * 2 * seeds]
        metadata = candidate.metadata
        evaluated.append(EvaluatedPolicy(
            name=candidate.name, role=candidate.role,
            source_returns=np.stack([r.returns for r in chunk[:seeds]]),
            target_returns=np.stack([r.returns for r in chunk[seeds:]]),
            run_dir=None if candidate.policy == RANDOM_POLICY else candidate.policy,
            target_steps_used=_steps_used(candidate),
            budget=candidate.budget if candidate.budget is not None else _budget(metadata),
            method=metadata.get("method"), zero_shot=candidate.zero_shot,
        ))
    return evaluated


def _budget(metadata: dict[str, Any]) -> int | None:
    return int(metadata["budget"]) if metadata.get("budget") else None


def _blowups(candidates: list[_Candidate], results: list[Any], seeds: int) -> dict[str, int]:
    return {c.name: int(sum(r.blowups for r in results[i * 2 * seeds:(i + 1) * 2 * seeds]))
            for i, c in enumerate(candidates)}


def _sweep_results(swept: list[_Candidate], settings: EvalSettings, results: list[Any]) -> list[Any]:
    if settings.sweep is None:
        return []
    per_policy = len(settings.sweep.cells()) * settings.sweep.seeds
    return [sweep_result(c.name, settings.sweep, results[i * per_policy:(i + 1) * per_policy], settings.confidence,
                         settings.resamples, settings.bootstrap_seed) for i, c in enumerate(swept)]


def _write_plots(report: Report, sweeps: list[Any], out_dir: Path) -> list[Path]:
    from sim2real.evaluation import plots

    paths = [plots.returns_bar_chart(report, out_dir / "returns.png")]
    paths += [plots.robustness_heatmap(s, out_dir / f"sweep_{_slug(s.policy)}.png", env=report.env) for s in sweeps]
    curve = plots.sample_efficiency_plot(report, out_dir / "sample_efficiency.png")
    if curve is not None:
        paths.append(curve)
    return paths
