"""The whole chain: DR source training, zero-shot check, baselines, transfer methods, optionally a privileged
teacher and its distilled history student, gap report, export."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sim2real.pipeline.config import MethodRun, PipelineConfig
from sim2real.pipeline.stages import Stage, run_stages, settled
from sim2real.policies import Policy, RunInfo, read_run_info
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import update_metadata, write_json_atomic
from sim2real.training.checks import ON_POLICY, constructor_default
from sim2real.training.config import TrainConfig, algo_config_from_dict

SOURCE, ZERO_SHOT, ORACLE, REPORT, EXPORT = "source", "zero_shot", "baselines/oracle", "report", "export"
TEACHER, STUDENT = "teacher", "student"
POLICY_ARTIFACTS = ("model.zip", "metadata.json")  # what later stages read of a policy stage


def scratch_folder(config: PipelineConfig) -> str:
    """Folder of the from-scratch baseline (named by its budget)."""
    return f"baselines/scratch_{config.budget}"


def build_stages(config: PipelineConfig, out_dir: Path) -> list[Stage]:
    """The pipeline's stages, in order, each with a fingerprint chaining its inputs'.

    Stage costs are rough relative estimates (about one unit per PPO training step on a small env) used
    only for the progress percentage and the remaining-time estimate.
    """
    source_dir = config.source_run or out_dir / SOURCE
    source_fp = {"reuse": str(config.source_run)} if config.source_run else _train_fingerprint(config.source)
    stages: list[Stage] = []
    if config.source_run is None:
        stages.append(Stage(SOURCE, out_dir / SOURCE, config.source.timesteps, source_fp,
                            lambda folder: _train(config.source, folder), POLICY_ARTIFACTS))
    source_stage = tuple(stages)  # the stages that read the source policy depend on its files
    stages.append(Stage(ZERO_SHOT, out_dir / ZERO_SHOT, 2 * config.zero_shot_episodes * 1000,
                        {"source": source_fp, "target": config.target.to_dict(), "episodes": config.zero_shot_episodes},
                        lambda folder: _zero_shot(config, source_dir, folder), ("zero_shot.json",), source_stage))
    baseline_fp = {"source": source_fp, "target": config.target.to_dict(), "seed": config.seed}
    oracle_dir = config.oracle_run or (out_dir / ORACLE if config.oracle_timesteps else None)
    if config.oracle_timesteps and config.oracle_run is None:
        stages.append(Stage(ORACLE, out_dir / ORACLE, config.oracle_timesteps,
                            {**baseline_fp, "timesteps": config.oracle_timesteps},
                            lambda folder: _train_baseline(config, source_dir, folder, config.oracle_timesteps, False),
                            POLICY_ARTIFACTS, source_stage))
    oracle_stage = tuple(s for s in stages if s.name == ORACLE)
    if config.scratch:
        stages.append(Stage(scratch_folder(config), out_dir / scratch_folder(config), config.budget,
                            {**baseline_fp, "timesteps": config.budget, "within_budget": True},
                            lambda folder: _train_baseline(config, source_dir, folder, config.budget, True),
                            POLICY_ARTIFACTS, source_stage))
    expert = oracle_dir
    expert_fp = {"reuse": str(config.oracle_run)} if config.oracle_run else {"oracle": config.oracle_timesteps}
    for method in config.methods:
        fp = {**baseline_fp, "method": method.name, "settings": method.raw, "budget": config.budget,
              "expert": expert_fp if expert else None}
        stages.append(Stage(f"transfer/{method.name}", out_dir / "transfer" / method.name, config.budget, fp,
                            _transfer_action(config, source_dir, method, expert), POLICY_ARTIFACTS,
                            source_stage + (oracle_stage if expert and method.wants_expert else ())))
    if config.student is not None:
        teacher = config.student.teacher
        teacher_fp = {**_train_fingerprint(teacher), "policy": asdict(teacher.policy)}
        stages.append(Stage(TEACHER, out_dir / TEACHER, teacher.timesteps, teacher_fp,
                            lambda folder: _train(teacher, folder), POLICY_ARTIFACTS))
        settings = config.student.settings
        stages.append(Stage(STUDENT, out_dir / STUDENT, settings.iterations * settings.steps_per_iteration,
                            {"teacher": teacher_fp, "settings": settled(asdict(settings))},
                            lambda folder: _distill(out_dir / TEACHER, folder, settings), POLICY_ARTIFACTS,
                            (stages[-1],)))
    report_fp = {"upstream": [s.digest for s in stages], "episodes": config.episodes, "seeds": config.eval_seeds}
    stages.append(Stage(REPORT, out_dir / REPORT, config.episodes * config.eval_seeds * 500 * (len(config.methods) + 4),
                        report_fp, lambda folder: _report(config, source_dir, out_dir, oracle_dir, folder), ("report.json",),
                        tuple(stages)))
    if config.export:
        stages.append(Stage(EXPORT, out_dir / EXPORT, config.export_observations * 15,
                            {"report": stages[-1].digest, "observations": config.export_observations},
                            lambda folder: _export_best(config, out_dir, folder), ("bundle/bundle.json",),
                            (stages[-1], *stages[:-1])))
    return stages


def run_pipeline(config: PipelineConfig, out_dir: str | Path, printer: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs (or resumes) the pipeline into ``out_dir``; returns its summary (also ``pipeline.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = build_stages(config, out_dir)
    progress = run_stages(stages, printer)
    summary = {
        "env": config.env.name,
        "target": config.target.name,
        "budget": config.budget,
        "seed": config.seed,
        "wall_time_s": round(sum(float(s.summary.get("wall_time_s") or 0.0) for s in stages), 1),
        "wall_time_this_run_s": round(progress.elapsed, 1),
        "stages": {s.name: {"folder": str(s.folder), **s.summary} for s in stages},
    }
    write_json_atomic(out_dir / "pipeline.json", summary)
    return summary


def _train_fingerprint(config: Any) -> dict[str, Any]:
    # the checkpoint selection only when on: stages recorded before the pipeline offered it still match
    selection = ({"selection": {"every": config.select_every, "episodes": config.select_episodes}}
                 if config.select_every else {})
    return settled({"env": config.env.name, "algo": asdict(config.algo) | {"network": asdict(config.algo.network)},
                    "randomization": config.randomization.to_dict(), "timesteps": config.timesteps,
                    "seed": config.seed, "train_episode_steps": config.train_episode_steps, **selection})


def _train(train_config: TrainConfig, folder: Path) -> dict[str, Any]:
    """Trains (or resumes) a policy in simulation into ``folder``."""
    from sim2real.training import train

    train(train_config, folder, resume=True)
    info = read_run_info(folder)
    return {"timesteps": info.timesteps_done, "train_fps": info.train_fps,
            "wall_time_s": info.record.get("wall_time_s")}  # summed over resumed segments


def _distill(teacher_dir: Path, folder: Path, settings: Any) -> dict[str, Any]:
    """Distills the history student from the teacher, in the teacher's randomization (0 target steps)."""
    from sim2real.seeding import seed_everything
    from sim2real.training.distill import distill

    seed_everything(settings.seed)
    metadata = distill(teacher_dir, folder, settings)
    return {"timesteps": metadata["timesteps_done"], "target_steps_used": 0, "wall_time_s": metadata["wall_time_s"]}


def _zero_shot(config: PipelineConfig, source_dir: Path, folder: Path) -> dict[str, Any]:
    from sim2real.evaluation import rollout_returns

    policy = Policy.load(source_dir)
    n, seed = config.zero_shot_episodes, 10_000 + config.seed
    nominal = rollout_returns(policy, config.env, n, seed).returns
    target = rollout_returns(policy, config.env, n, seed, target=config.target).returns
    gap_pct = 100.0 * (nominal.mean() - target.mean()) / abs(nominal.mean()) if nominal.mean() else 0.0
    result = {"source_return": float(nominal.mean()), "target_return": float(target.mean()), "episodes": n,
              "gap_pct": round(float(gap_pct), 1)}
    write_json_atomic(folder / "zero_shot.json", result)
    print(f"  zero-shot: source {nominal.mean():.1f}, target {target.mean():.1f} ({gap_pct:+.1f}% gap, {n} episodes)")
    return result


def baseline_train_config(source: RunInfo, target: DynamicsSpec, timesteps: int, seed: int,
                          within_budget: bool = False) -> TrainConfig:
    """A baseline's training config: the source run's env and algorithm, on ``target``, no randomization.

    ``within_budget``: ``timesteps`` is a target-step budget the run must not exceed (the same-budget scratch
    baseline). An on-policy algorithm trains whole rollouts, and SB3 finishes the one that crosses the budget
    (20,480 steps for 20,000 with 4 x 512); its rollout is planned as fine-tuning plans it instead
    (:func:`~sim2real.transfer.finetune.ppo_rollout_plan`: whole rollouts, stretched to fill the budget).
    """
    algo = algo_config_from_dict(dict(source.algo_config or {"name": source.algo}), source.env.name)
    if within_budget and algo.name in ON_POLICY:
        from sim2real.transfer.finetune import ppo_rollout_plan

        n_steps, batch_size = (algo.hyperparams.get(name, constructor_default(algo.name, name))
                               for name in ("n_steps", "batch_size"))
        n_steps, rollouts = ppo_rollout_plan(int(timesteps), algo.n_envs, n_steps, batch_size)
        algo = dataclasses.replace(algo, hyperparams={**algo.hyperparams, "n_steps": n_steps})
        timesteps = n_steps * algo.n_envs * rollouts
    return TrainConfig(env=source.env, algo=algo, randomization=DynamicsSpec(), target=target, timesteps=int(timesteps),
                       seed=seed, checkpoint_every=0, eval_episodes=0, progress_bar=False)


def _train_baseline(config: PipelineConfig, source_dir: Path, folder: Path, timesteps: int,
                    within_budget: bool) -> dict[str, Any]:
    """Trains (or resumes, or reuses a complete) scratch or oracle run on the target into ``folder``."""
    from sim2real.training import train

    train(baseline_train_config(read_run_info(source_dir), config.target, timesteps, config.seed, within_budget), folder,
          resume=True)
    if within_budget:  # trained in whole rollouts within it: the budget, not its step count, pairs it with the methods
        update_metadata(folder, budget=int(timesteps))
    info = read_run_info(folder)
    return {"timesteps": info.timesteps_done, "wall_time_s": info.record.get("wall_time_s")}


def _transfer_action(config: PipelineConfig, source_dir: Path, method: MethodRun,
                     expert: Path | None) -> Callable[[Path], dict[str, Any]]:
    def action(folder: Path) -> dict[str, Any]:
        from sim2real.transfer import METHODS, load_setup, run_transfer

        settings = method.settings
        if expert is not None and method.wants_expert:
            settings = dataclasses.replace(settings, expert=str(expert))
        setup, source = load_setup(source_dir, config.target, config.budget, config.seed)
        run_transfer(METHODS.get(method.name)(settings), setup, source, folder)
        return {"target_steps_used": read_run_info(folder).target_steps_used}

    return action


def _report(config: PipelineConfig, source_dir: Path, out_dir: Path, oracle_dir: Path | None,
            folder: Path) -> dict[str, Any]:
    from sim2real.evaluation import Baselines, PolicyEntry, evaluate_policies

    policies = [PolicyEntry(source_dir, "zero_shot_source")]
    policies += [PolicyEntry(out_dir / "transfer" / m.name, m.name) for m in config.methods]
    if config.student is not None:
        policies.append(PolicyEntry(out_dir / STUDENT, STUDENT))
    baselines = Baselines(
        random=config.random_baseline,
        scratch={config.budget: out_dir / scratch_folder(config)} if config.scratch else {},
        oracle=oracle_dir,
    )
    report = evaluate_policies(policies, config.target, config.episodes, config.eval_seeds, folder,
                               baselines=baselines, zero_shot=source_dir, workers=config.workers)
    best = best_policy(report.to_dict())
    return {"best": best, "report": str(folder / "report.json")}


def best_policy(report: dict[str, Any]) -> dict[str, Any]:
    """The expert-free adapted or zero-shot policy with the highest mean target return (what a robot without
    an oracle could deploy; the report's headline picks the same way). Expert-assisted ones only if no other.

    Example:
        >>> row = lambda name, mean, free: {"name": name, "role": "policy", "run_dir": name, "expert_free": free,
        ...                                 "target_return": {"mean": mean}}
        >>> best_policy({"policies": [row("dagger", 9.0, False), row("sysid", 8.0, True)]})["name"]
        'sysid'
    """
    rows = [r for r in report["policies"] if r["role"] in ("policy", "zero_shot") and r.get("run_dir")]
    rows = [r for r in rows if r.get("expert_free") is not False] or rows
    best = max(rows, key=lambda r: r["target_return"]["mean"])
    return {"name": best["name"], "run_dir": best["run_dir"], "target_return": best["target_return"]["mean"]}


def _export_best(config: PipelineConfig, out_dir: Path, folder: Path) -> dict[str, Any]:
    from sim2real.export import ExportSettings, export_bundle
    from sim2real.export.bundle import recover_interrupted_export
    from sim2real.runs import read_json

    best = read_json(out_dir / REPORT / "stage.json")["summary"]["best"]
    recover_interrupted_export(folder / "bundle")  # under the pipeline's lock
    manifest = export_bundle(best["run_dir"], folder / "bundle",
                             ExportSettings(observations=config.export_observations, overwrite=True))
    return {"policy": best["name"], "bundle": str(folder / "bundle"), "parity": manifest.get("parity")}
