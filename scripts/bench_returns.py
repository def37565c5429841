"""The source-policy return table: each robot's default algorithm (``env=X`` alone), trained with the default
domain randomization, evaluated on nominal dynamics.

    python scripts/bench_returns.py                                   # every robot in RETURN_TARGETS, seeds 0 1 2
    python scripts/bench_returns.py --envs hopper half_cheetah --seeds 0 --out benchmarks/returns
    python scripts/bench_returns.py --envs walker2d --steps walker2d=600000 --jobs 3   # longer, 3 runs at once
    python scripts/bench_returns.py --envs hopper --seeds 0 1 --evaluate-only           # the table of finished runs alone

Each (robot, seed) trains with ``scripts/train.py`` into ``<out>/<env>/seed_<k>`` (an interrupted run is
resumed, a finished one is reused, a shorter finished one extended), ``--jobs`` of them at a time (each
single-threaded; with more than one, each run's output goes to ``<out>/<env>/seed_<k>.log``), then its deterministic policy plays ``--episodes`` episodes on nominal
dynamics. Prints, and writes to ``<out>/returns.json`` and ``returns.md``: steps, the mean nominal return
with a 95% interval (over seeds: a Student-t interval of the seeds' means, since training seeds, not
episodes, carry most of the variation; with one seed: a bootstrap over its episodes, which says nothing
about another seed), the stated target, and the mean wall time and training speed of one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim2real.cli import exit_interrupted
from sim2real.evaluation.rollout import rollout_returns
from sim2real.evaluation.stats import summarize, t_interval
from sim2real.policies import Policy
from sim2real.processes import sigterm_interrupts
from sim2real.runs import load_metadata, write_json_atomic, write_text_atomic

REPO = Path(__file__).resolve().parent.parent

RETURN_TARGETS: dict[str, tuple[int, float]] = {
    "inverted_pendulum": (30_000, 1000.0),
    "inverted_double_pendulum": (150_000, 9000.0),
    "reacher": (200_000, -5.0),
    "hopper": (400_000, 2500.0),  # 300k: it still falls after ~300 steps (see the README's "Source policies")
    "walker2d": (500_000, 3000.0),  # 300k: 1643 (see the README's "Source policies")
    "half_cheetah": (150_000, 4000.0),
    "ant": (300_000, 2000.0),
    "swimmer": (200_000, 300.0),  # TD3 with gamma 0.9999 (RL Zoo's 1M-step TD3: 359); ~40 until 100k (seed 1: until 180k)
    "pusher": (200_000, -35.0),
}
"""Training steps of each robot's default, and the nominal return it should reach."""


def run_record(run_dir: Path) -> dict[str, Any]:
    """A run folder's ``metadata.json`` (empty before its training started)."""
    return load_metadata(run_dir) if (run_dir / "metadata.json").is_file() else {}


def unfinished(record: dict[str, Any], timesteps: int) -> str | None:
    """Why a run (its ``metadata.json``) still needs training to reach ``timesteps``; ``None`` when it is done."""
    done = int(record.get("timesteps_done", 0))
    if not record:
        return "no run there"
    if not record.get("complete"):
        return f"interrupted at {done:,} steps"
    return None if done >= timesteps else f"finished at {done:,} steps"


RUNNING: set[subprocess.Popen[Any]] = set()
"""The training processes running now (``main`` passes a SIGTERM on to them)."""


def run_child(command: list[str], **kwargs: Any) -> int:
    """Runs a training process to its end and returns its exit code. Ctrl-C reaches the child too (and a SIGTERM,
    passed on by ``main``), which saves a checkpoint before it exits: this waits for that, where
    ``subprocess.run`` kills it after 0.25 s."""
    with subprocess.Popen(command, **kwargs) as process:
        RUNNING.add(process)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.wait()
            raise
        finally:
            RUNNING.discard(process)


def train_run(env: str, seed: int, timesteps: int, run_dir: Path, log: Path | None = None) -> None:
    """Trains (or resumes, or extends, or reuses) one run through the training script; its output goes to
    ``log`` (appended) when given, else to this process's."""
    done = run_record(run_dir)
    if unfinished(done, timesteps) is None:
        return
    where = [f"resume={run_dir}"] if done else [
        f"env={env}", f"seed={seed}", f"hydra.run.dir={run_dir}"]
    command = [sys.executable, str(REPO / "scripts" / "train.py"), *where, f"timesteps={timesteps}",
               "eval_episodes=0", "progress_bar=false"]
    if log is None:
        code = run_child(command, cwd=REPO)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            code = run_child([*command, "torch_threads=1"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise RuntimeError(f"training {env} seed {seed} failed (exit code {code})" + (f": see {log}" if log else ""))


def train_all(jobs: list[tuple[str, int, int, Path]], parallel: int) -> None:
    """Trains every (env, seed, steps, run folder), ``parallel`` at a time; the first failure (or Ctrl-C) stops
    the queue: the runs already started finish or save their checkpoints, no new one starts."""
    if parallel == 1:
        for job in jobs:
            train_run(*job)
        return
    pool = ThreadPoolExecutor(parallel)
    try:
        for future in as_completed([pool.submit(train_run, *job, log=job[3].with_suffix(".log")) for job in jobs]):
            future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def parse_steps(items: list[str]) -> dict[str, int]:
    """``--steps ENV=N ...`` as ``{env: N}``; ``ValueError`` naming a bad item."""
    steps = {}
    for item in items:
        env, _, value = item.partition("=")
        if env not in RETURN_TARGETS or not value.isdecimal() or int(value) < 1:
            raise ValueError(f"--steps {item!r}: expected ENV=N with ENV one of {sorted(RETURN_TARGETS)} "
                             f"and N a positive step count")
        if env in steps:
            raise ValueError(f"--steps names {env} twice ({env}={steps[env]} and {item})")
        steps[env] = int(value)
    return steps


def evaluate(env: str, runs: list[Path], episodes: int, timesteps: int, target: float) -> dict:
    """The row of one robot: its nominal returns over every seed, wall time and speed."""
    policies = [Policy.load(run) for run in runs]
    returns = np.stack([rollout_returns(policy, policy.info.env, episodes, seed=10_000).returns for policy in policies])
    summary = t_interval(returns.mean(axis=1)) if len(runs) > 1 else summarize(returns, seed=0)
    interval = "student-t over seeds" if len(runs) > 1 else "bootstrap over one seed's episodes"
    metadata = [load_metadata(run) for run in runs]
    return {"env": env, "algo": metadata[0]["algo"], "timesteps": timesteps, "seeds": len(runs), "episodes": episodes,
            "mean": summary.mean, "ci_low": summary.ci_low, "ci_high": summary.ci_high, "interval": interval,
            "seed_means": returns.mean(axis=1).round(1).tolist(), "target": target,
            "timesteps_done": [int(m["timesteps_done"]) for m in metadata],
            "reached": bool(summary.mean >= target),
            "wall_time_s": float(np.mean([m["wall_time_s"] for m in metadata])),
            "train_fps": float(np.mean([m.get("train_fps", 0.0) for m in metadata]))}


def markdown(rows: list[dict]) -> str:
    lines = ["| env | algo | steps | nominal return (mean, 95% CI) | per seed | target | reached | wall time / run | fps |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['env']} | {r['algo']} | {r['timesteps']:,} | {r['mean']:.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}] ({r['interval']}) "
                     f"| {', '.join(f'{v:g}' for v in r['seed_means'])} | >= {r['target']:g} | {'yes' if r['reached'] else 'no'} "
                     f"| {r['wall_time_s'] / 60:.1f} min | {r['train_fps']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(RETURN_TARGETS), choices=list(RETURN_TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10, help="nominal evaluation episodes per seed")
    parser.add_argument("--steps", nargs="+", default=[], metavar="ENV=N",
                        help="training steps for these robots instead of the table's (e.g. walker2d=600000)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once (each single-threaded)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_returns")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="train nothing: evaluate the finished runs in --out, refusing if one is missing or short")
    args = parser.parse_args()
    if args.episodes < 1 or any(seed < 0 for seed in args.seeds) or args.jobs < 1:
        parser.error(f"--episodes={args.episodes} and --jobs={args.jobs} must be >= 1 and --seeds={args.seeds} >= 0")
    try:
        steps = {env: RETURN_TARGETS[env][0] for env in args.envs} | parse_steps(args.steps)
    except ValueError as err:
        parser.error(str(err))
    if unused := sorted(set(steps) - set(args.envs)):
        parser.error(f"--steps names {unused}, which --envs {args.envs} leaves out")
    for name, values in (("--envs", args.envs), ("--seeds", args.seeds)):
        if len(set(values)) < len(values):
            parser.error(f"{name} {values} repeats a value: each run is one (robot, seed)")
    runs = {env: [args.out / env / f"seed_{seed}" for seed in args.seeds] for env in args.envs}
    if longer := [f"{run} was trained for {held:,} steps" for env in args.envs for run in runs[env]
                  if (held := int(run_record(run).get("timesteps", 0))) > steps[env]]:
        parser.error(f"{'; '.join(longer)}, more than the {', '.join(f'{e}={steps[e]:,}' for e in args.envs)} "
                     f"asked: ask for those steps with --steps, or use another --out")
    if args.evaluate_only and (short := [f"{run}: {why}" for env in args.envs for run in runs[env]
                                         if (why := unfinished(run_record(run), steps[env]))]):
        parser.error(f"--evaluate-only trains nothing, and these runs are not finished at the steps asked: "
                     f"{'; '.join(short)}; run without --evaluate-only to train them")
    torch.set_num_threads(1)
    if not args.evaluate_only:
        try:
            with sigterm_interrupts(children=lambda: list(RUNNING)):  # `kill` stops the trainings too, checkpointed
                train_all([(env, seed, steps[env], run) for env in args.envs for seed, run in zip(args.seeds, runs[env])],
                          args.jobs)
        except KeyboardInterrupt as err:
            exit_interrupted(err, "the same command resumes the runs from their checkpoints")
    rows = []
    for env in args.envs:
        rows.append(evaluate(env, runs[env], args.episodes, steps[env], RETURN_TARGETS[env][1]))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    write_json_atomic(args.out / "returns.json", {"rows": rows})
    write_text_atomic(args.out / "returns.md", markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
