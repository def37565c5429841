"""The source-policy return table: each robot's default algorithm (``env=X`` alone), trained with the default
domain randomization, evaluated on nominal dynamics.

    python scripts/bench_returns.py                                   # every robot in RETURN_TARGETS, seeds 0 1 2
    python scripts/bench_returns.py --envs hopper half_cheetah --seeds 0 --out benchmarks/returns

Each (robot, seed) trains with ``scripts/train.py`` into ``<out>/<env>/seed_<k>`` (an interrupted run is
resumed, a finished one is reused), then its deterministic policy plays ``--episodes`` episodes on nominal
dynamics. Prints, and writes to ``<out>/returns.json`` and ``returns.md``: steps, the mean nominal return
with a 95% interval (over seeds: a Student-t interval of the seeds' means, since training seeds, not
episodes, carry most of the variation; with one seed: a bootstrap over its episodes, which says nothing
about another seed), the stated target, and the mean wall time and training speed of one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from sim2real.evaluation.rollout import rollout_returns
from sim2real.evaluation.stats import summarize, t_interval
from sim2real.policies import Policy
from sim2real.runs import load_metadata, write_json_atomic, write_text_atomic

REPO = Path(__file__).resolve().parent.parent

RETURN_TARGETS: dict[str, tuple[int, float]] = {
    "inverted_pendulum": (30_000, 1000.0),
    "inverted_double_pendulum": (150_000, 9000.0),
    "reacher": (200_000, -5.0),
    "hopper": (300_000, 2500.0),
    "walker2d": (300_000, 3000.0),
    "half_cheetah": (150_000, 4000.0),
    "ant": (300_000, 2000.0),
}
"""Training steps of each robot's default, and the nominal return it should reach."""


def train_run(env: str, seed: int, timesteps: int, run_dir: Path) -> None:
    """Trains (or resumes, or reuses) one run through the training script."""
    done = load_metadata(run_dir) if run_dir.is_dir() else {}
    if done.get("complete") and done.get("timesteps_done", 0) >= timesteps:
        return
    where = [f"resume={run_dir}"] if (run_dir / "metadata.json").is_file() else [
        f"env={env}", f"seed={seed}", f"hydra.run.dir={run_dir}"]
    command = [sys.executable, str(REPO / "scripts" / "train.py"), *where, f"timesteps={timesteps}",
               "eval_episodes=0", "progress_bar=false"]
    subprocess.run(command, check=True, cwd=REPO)


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
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_returns")
    args = parser.parse_args()
    if args.episodes < 1 or any(seed < 0 for seed in args.seeds):
        parser.error(f"--episodes={args.episodes} must be >= 1 and --seeds={args.seeds} >= 0")
    torch.set_num_threads(1)
    rows = []
    for env in args.envs:
        timesteps, target = RETURN_TARGETS[env]
        runs = [args.out / env / f"seed_{seed}" for seed in args.seeds]
        for seed, run in zip(args.seeds, runs):
            train_run(env, seed, timesteps, run)
        rows.append(evaluate(env, runs, args.episodes, timesteps, target))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    write_json_atomic(args.out / "returns.json", {"rows": rows})
    write_text_atomic(args.out / "returns.md", markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
