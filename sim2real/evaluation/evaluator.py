"""The evaluator: policies on source and target, baselines, domain similarity, sweeps, report and plots.

:func:`evaluate_policies` is the library entry point (``scripts/evaluate.py`` is a thin Hydra edge
around it). It checks every input first (run folders, envs, target, counts, sweep grid), then runs all rollouts in
one parallel batch, each keyed by (policy, dynamics, seed), and writes ``report.json``, ``report.md``
and the plots into ``out_dir``. It evaluates given run folders only: baselines to train are the
pipeline's stages (:mod:`sim2real.pipeline`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.envs.registry import EnvSpec
from sim2real.evaluation.baselines import Baselines
from sim2real.evaluation.parallel import (
    RANDOM_POLICY,
    Results,
    RolloutJob,
    RolloutKey,
    bundle_run_info,
    episode_seed_bases,
    is_bundle,
    load_actor,
    run_keyed,
)
from sim2real.evaluation.provenance import expert_use, trained_on_target
from sim2real.evaluation.report import EvaluatedPolicy, Report, build_report, write_report
from sim2real.evaluation.similarity import SimilaritySettings, domain_similarity
from sim2real.evaluation.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
from sim2real.evaluation.sweep import SweepResult, SweepSpec, reference_coverage, sweep_jobs, sweep_result
from sim2real.policies import RunInfo, read_run_info
from sim2real.randomization.factory import validate_dynamics
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import write_json_atomic
from sim2real.validation import require_int

SOURCE, TARGET = "source", "target"
"""The dynamics of the main evaluation in a :class:`RolloutKey` (sweep cells go by their labels)."""


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
    info: RunInfo | None = None
    zero_shot: str | None = None
    budget: int | None = None

    @property
    def source_run(self) -> Path | None:
        """The run an adapted policy was adapted from (None for any other policy)."""
        return self.info.source_run if self.info is not None and self.info.is_transfer else None

    def env_or(self, env: EnvSpec) -> EnvSpec:
        """The env this policy acts in: its own run's (a history policy's observations carry its history),
        else the shared ``env`` (the random policy)."""
        return self.info.env if self.info is not None else env


def _check_run(run_dir: Path, env_name: str | None, what: str) -> RunInfo:
    try:
        info = bundle_run_info(run_dir) if is_bundle(run_dir) else read_run_info(run_dir)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if env_name is not None and info.env.name != env_name:
        raise ValueError(f"{what} '{run_dir}' is for env '{info.env.name}', but the policies are for '{env_name}'")
    return info


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
    env = _check_run(Path(entries[0].run_dir), None, "policy").env
    taken: set[str] = set()
    candidates = []
    for entry in entries:
        run_dir = Path(entry.run_dir)
        info = _check_run(run_dir, env.name, "policy")
        candidates.append(_Candidate(name=_unique_name(entry.name or run_dir.name, taken), role="policy",
                                     policy=str(run_dir), info=info))
    return candidates, env


def _zero_shot_runs(candidates: list[_Candidate], zero_shot: Path | None) -> list[Path]:
    """The zero-shot source runs: ``zero_shot`` if given, else the transfer runs' ``source_run``."""
    if zero_shot is not None:
        return [Path(zero_shot)]
    runs: list[Path] = []
    for candidate in candidates:
        source = candidate.source_run
        if source is None:
            continue
        if not source.is_dir():
            raise ValueError(f"policy '{candidate.name}': its source run '{source}' does not exist; "
                             "pass the zero-shot policy explicitly (zero_shot=RUN_DIR)")
        if not any(_same(source, run) for run in runs):
            runs.append(source)
    return runs


def _attach_zero_shot(candidates: list[_Candidate], runs: list[Path], env_name: str, explicit: bool) -> list[_Candidate]:
    """Marks or adds the zero-shot runs and points each policy at its reference; returns the added ones."""
    taken = {c.name for c in candidates}
    added: list[_Candidate] = []
    references: dict[str, str] = {}
    for run in runs:
        info = _check_run(run, env_name, "zero-shot policy")
        listed = next((c for c in candidates if _same(Path(c.policy), run)), None)
        if listed is None:
            listed = _Candidate(name=_unique_name(run.name, taken), role="zero_shot", policy=str(run), info=info)
            added.append(listed)
        else:
            listed.role = "zero_shot"
        references[str(run.resolve())] = listed.name
    for candidate in candidates:
        if candidate.role != "policy":
            continue
        if explicit:
            candidate.zero_shot = next(iter(references.values()), None)
        elif candidate.source_run is not None:
            candidate.zero_shot = references.get(str(candidate.source_run.resolve()))
    return added


def _baseline_candidates(baselines: Baselines, candidates: list[_Candidate], env: EnvSpec) -> list[_Candidate]:
    """Checks the given baseline runs; returns them as candidates."""
    taken = {c.name for c in candidates}
    added = []
    if baselines.random:
        added.append(_Candidate(name=_unique_name("random", taken), role="random", policy=RANDOM_POLICY))
    for budget, run in sorted(baselines.scratch.items()):
        info = _check_run(Path(run), env.name, f"scratch baseline ({budget} steps)")
        added.append(_Candidate(name=_unique_name(f"scratch_{budget}", taken), role="scratch", policy=str(run),
                                info=info, budget=budget))
    if baselines.oracle is not None:
        info = _check_run(baselines.oracle, env.name, "oracle baseline")
        added.append(_Candidate(name=_unique_name("oracle", taken), role="oracle", policy=str(baselines.oracle),
                                info=info))
    return added


def _steps_used(candidate: _Candidate, target: DynamicsSpec) -> int:
    """Target steps the policy consumed: an adaptation's, a baseline's training on the target, or the
    training of any policy that was trained on the target itself (an oracle given as a policy is no free lunch)."""
    info = candidate.info
    if info is None:
        return 0
    if info.target_steps_used is None and candidate.role not in ("scratch", "oracle") \
            and not trained_on_target(info, target):
        return 0
    return info.steps_spent


def _evaluation_jobs(candidates: list[_Candidate], env: EnvSpec, target: DynamicsSpec, bases: list[int],
                     episodes: int) -> dict[RolloutKey, RolloutJob]:
    """Per candidate, dynamics (source: nominal, and the target) and evaluation seed: one job."""
    return {RolloutKey(c.name, name, k): RolloutJob(policy=c.policy, env=c.env_or(env), seed=base, episodes=episodes,
                                                    target=dynamics)
            for c in candidates for name, dynamics in ((SOURCE, None), (TARGET, target)) for k, base in enumerate(bases)}


def _reference_policy(candidates: list[_Candidate]) -> _Candidate | None:
    """The policy whose rollouts define the source domain: the zero-shot run, else the first trained policy."""
    for role in ("zero_shot", "policy"):
        for candidate in candidates:
            if candidate.role == role and candidate.info is not None and not candidate.info.is_transfer:
                return candidate
    return next((c for c in candidates if c.role == "policy"), None)


def _similarity(reference: _Candidate | None, env: EnvSpec, target: DynamicsSpec,
                settings: SimilaritySettings | None) -> dict[str, Any] | None:
    if settings is None or reference is None or reference.info is None:
        return None
    randomization = reference.info.randomization
    result = domain_similarity(load_actor(reference.policy), reference.env_or(env), randomization, target, settings)
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
        baselines: Random / scratch / oracle baselines, as given run folders (None: none).
        zero_shot: The zero-shot source policy adapted policies are compared with (default: each transfer
            run's ``source_run``).
        workers: Processes for the rollouts (None: ``min(2, cpu count)``; 1: in-process). Results do not
            depend on it.
        settings: Seeds, statistics, similarity and sweep settings.

    Returns:
        The report (also written to ``out_dir``).
    """
    settings = settings or EvalSettings()
    episodes, seeds = require_int("episodes", episodes, minimum=1), require_int("seeds", seeds, minimum=1)
    require_int("workers", workers, minimum=1, optional=True)
    out_dir = Path(out_dir)
    candidates, env = _policy_candidates(policies)
    validate_dynamics(env, target)
    if settings.sweep is not None:
        settings.sweep.validate(env)
    explicit = zero_shot is not None
    candidates += _attach_zero_shot(candidates, _zero_shot_runs(candidates, Path(zero_shot) if explicit else None),
                                    env.name, explicit)
    reference = _reference_policy(candidates)
    if baselines is not None:
        candidates += _baseline_candidates(baselines, candidates, env)
    swept = _swept_policies(candidates, settings.sweep)
    out_dir.mkdir(parents=True, exist_ok=True)

    bases = episode_seed_bases(settings.eval_seed, seeds)
    jobs = _evaluation_jobs(candidates, env, target, bases, episodes)
    for candidate in swept:
        jobs |= sweep_jobs(candidate.policy, candidate.name, candidate.env_or(env), settings.sweep, settings.eval_seed)  # type: ignore[arg-type]
    results = run_keyed(jobs, workers)

    report = build_report(_evaluated(candidates, results, seeds, target), env=env, target=target.name,
                          target_spec=target.to_dict(), confidence=settings.confidence, resamples=settings.resamples,
                          seed=settings.bootstrap_seed)
    report.context.update(eval_seed=settings.eval_seed, episode_seed_bases=bases,
                          physics_blowups=_blowups(candidates, results))
    similarity = _similarity(reference, env, target, settings.similarity)
    if similarity is not None:
        report.context["similarity"] = similarity
        if similarity["warning"]:
            report.warnings.append(similarity["warning"])
            warnings.warn(similarity["warning"], stacklevel=2)
    sweeps = [sweep_result(c.name, settings.sweep, results, settings.confidence, settings.resamples,  # type: ignore[arg-type]
                           settings.bootstrap_seed) for c in swept]
    reference = settings.sweep.coverage_reference if settings.sweep is not None else None
    sweep_dicts = [s.to_dict() for s in sweeps]
    if sweeps and reference is not None:
        shared = reference_coverage(sweeps, reference)
        for data in sweep_dicts:
            data["coverage_reference"] = shared[data["policy"]]
    report.context["sweeps"] = [{**data, "file": f"sweep_{_slug(data['policy'])}.json"} for data in sweep_dicts]
    for data in sweep_dicts:
        write_json_atomic(out_dir / f"sweep_{_slug(data['policy'])}.json", data)
    if settings.plots:
        report.context["plots"] = [str(p) for p in _write_plots(report, sweeps, out_dir, reference)]
    write_report(report, out_dir)
    return report


def _swept_policies(candidates: list[_Candidate], sweep: SweepSpec | None) -> list[_Candidate]:
    """The candidates to sweep (by default the adapted and zero-shot ones); rejects unknown names."""
    if sweep is None:
        return []
    by_name = {c.name: c for c in candidates}
    default = [c.name for c in candidates if c.role in ("policy", "zero_shot")]
    return [by_name[name] for name in sweep.swept(list(by_name), default)]


def _returns(results: Results, policy: str, dynamics: str, seeds: int) -> np.ndarray:
    """``(seeds, episodes)`` returns of one policy on one dynamics."""
    return np.stack([results[RolloutKey(policy, dynamics, k)].returns for k in range(seeds)])


def _evaluated(candidates: list[_Candidate], results: Results, seeds: int, target: DynamicsSpec) -> list[EvaluatedPolicy]:
    """The candidates' returns, with each adapted policy's expert and its cost read from the run folders."""
    return [EvaluatedPolicy(
        name=c.name, role=c.role,
        source_returns=_returns(results, c.name, SOURCE, seeds), target_returns=_returns(results, c.name, TARGET, seeds),
        run_dir=None if c.policy == RANDOM_POLICY else c.policy, target_steps_used=_steps_used(c, target),
        budget=c.budget if c.budget is not None else c.info.budget if c.info else None,
        method=c.info.method if c.info else None, zero_shot=c.zero_shot,
        expert=expert_use(c.info, target) if c.info is not None else None,
    ) for c in candidates]


def _blowups(candidates: list[_Candidate], results: Results) -> dict[str, int]:
    """Episodes cut by a physics instability, per policy, on the source and the target."""
    counts = dict.fromkeys((c.name for c in candidates), 0)
    for key, result in results.items():
        if key.dynamics in (SOURCE, TARGET):
            counts[key.policy] += int(result.blowups)
    return counts


def _write_plots(report: Report, sweeps: list[SweepResult], out_dir: Path, reference: str | None = None) -> list[Path]:
    from sim2real.evaluation import plots

    paths = [plots.returns_bar_chart(report, out_dir / "returns.png")]
    paths += [plots.robustness_heatmap(s, out_dir / f"sweep_{_slug(s.policy)}.png", env=report.env) for s in sweeps]
    if len(sweeps) > 1 and len(sweeps[0].groups) == 2:
        paths.append(plots.robustness_comparison(sweeps, out_dir / "sweep_comparison.png", env=report.env,
                                                 reference=reference))
    curve = plots.sample_efficiency_plot(report, out_dir / "sample_efficiency.png")
    if curve is not None:
        paths.append(curve)
    return paths
