"""Per-action latency of the exported runtime vs SB3 predict vs torch forward, on one run's policy.

    python scripts/bench_export.py                          # trains a small PPO on InvertedPendulum first
    python scripts/bench_export.py --algo sac --env hopper --timesteps 2000
    python scripts/bench_export.py --run outputs/train/<run>
    python scripts/bench_export.py --history 4              # a history policy vs its memoryless twin
    python scripts/bench_export.py --algo recurrent_ppo     # an LSTM policy (state as graph input/output)

Every path computes the same actions from raw observations (normalization included). onnxruntime runs
with 1 intra-op thread and torch with 1 thread, the settings with the lowest single-observation latency.
Times are medians over repeats; the ratios are what to compare across machines. A stateful policy
(history or LSTM) is timed stepping its state, as on a robot: the runtime and the torch graphs take the
current observation and carry the state; SB3 predict takes the stacked observation (history) or carries
the LSTM state itself. With ``--history K`` a memoryless twin (same algorithm, env and steps) is trained and
timed too, and the runtime's cost per action of the history policy is compared with it (target <= 2x).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sim2real.export import build_deployable, export_bundle, record_rollouts, run_dynamics
from sim2real.policies import load_policy
from sim2real.policies.deploy import TORCHSCRIPT_FILE, DeployedPolicy
from sim2real.presets import load_preset
from sim2real.training import train, train_config_from_dict

TARGET_SPEEDUP = 15.0
TARGET_HISTORY_COST = 2.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="run folder to benchmark (default: train a small one)")
    parser.add_argument("--algo", default="ppo", help="algorithm of the run to train when --run is not given")
    parser.add_argument("--env", default="inverted_pendulum", help="env of the run to train when --run is not given")
    parser.add_argument("--timesteps", type=int, default=2048, help="training steps when --run is not given")
    parser.add_argument("--history", type=int, default=0,
                        help="train a policy with this many steps of history (and a memoryless twin to compare)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timing repeat")
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats (the median is reported)")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the batched timings")
    return parser.parse_args()


def train_small_run(algo: str, env: str, timesteps: int, run_dir: Path, history: int = 0) -> None:
    """Trains ``algo`` with its preset settings (network included) for a few steps: latency needs no skill."""
    algo_cfg = load_preset("algo", algo)
    if algo in ("sac", "td3"):
        algo_cfg["hyperparams"].update(learning_starts=min(timesteps // 2, 1000), buffer_size=timesteps)
    config = train_config_from_dict({"env": {"name": env}, "algo": algo_cfg, "randomization": load_preset("randomization", "none"),
                                     "target": load_preset("target", "nominal"), "timesteps": timesteps, "seed": 0,
                                     "checkpoint_every": 0, "eval_episodes": 0, "progress_bar": False,
                                     "policy": {"history": history}})
    train(config, run_dir)


def time_per_call(fn: Callable[[np.ndarray], object], inputs: list[np.ndarray], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per call of ``fn`` cycling through ``inputs``."""
    for x in inputs[:50]:
        fn(x)  # warm-up
    samples = []
    n = len(inputs)
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            fn(inputs[i % n])
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def import_seconds(module: str) -> float:
    """Wall time of a fresh interpreter importing ``module`` (median of 3)."""
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        run_dir = args.run
        if run_dir is None:
            run_dir = Path(tmp) / "run"
            print(f"training {args.algo} on {args.env} for {args.timesteps} steps (preset network, history "
                  f"{args.history}) ...")
            train_small_run(args.algo, args.env, args.timesteps, run_dir, history=args.history)
        export_and_report(run_dir, Path(tmp) / "bundle", args)
        if args.history > 0 and args.run is None:
            twin = Path(tmp) / "memoryless"
            print(f"\ntraining the memoryless twin ({args.algo}, {args.timesteps} steps) ...")
            train_small_run(args.algo, args.env, args.timesteps, twin)
            export_and_report(twin, Path(tmp) / "memoryless_bundle", args)
            compare_history_cost(Path(tmp) / "bundle", Path(tmp) / "memoryless_bundle", twin, args)


def export_and_report(run_dir: Path, bundle_dir: Path, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Exports a run and times it (:func:`report`)."""
    start = time.perf_counter()
    manifest = export_bundle(run_dir, bundle_dir)
    print(f"exported in {time.perf_counter() - start:.1f} s; parity onnx {manifest['parity']['onnx_max_abs_diff']:.2g}, "
          f"torchscript {manifest['parity']['torchscript_max_abs_diff']:.2g}"
          f"{' (closed loop)' if manifest['parity'].get('closed_loop') else ''}")
    return report(run_dir, bundle_dir, args)


def compare_history_cost(history_bundle: Path, memoryless_bundle: Path, memoryless_run: Path,
                         args: argparse.Namespace) -> None:
    """Times one action of both runtimes on the same observations, repeat by repeat in turn (so a busy
    machine slows both alike), and prints the history policy's cost relative to the memoryless one."""
    policy = load_policy(memoryless_run)
    env, randomization, target = run_dynamics(policy.info)
    observations = list(record_rollouts(policy, env, 1000, seed=0, randomization=randomization, target=target).observations)
    runtimes = {"history": DeployedPolicy.load(history_bundle, threads=1),
                "memoryless": DeployedPolicy.load(memoryless_bundle, threads=1)}
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(args.repeats):
        for name, runtime in runtimes.items():
            runtime.reset()
            samples[name].append(time_per_call(runtime.act, observations, args.calls, 1))
    cost = {name: statistics.median(values) for name, values in samples.items()}
    ratio = cost["history"] / cost["memoryless"]
    verdict = "met" if ratio <= TARGET_HISTORY_COST else "NOT met"
    print(f"\n{RUNTIME}, one observation, interleaved repeats: history ({args.history} steps, state carried) "
          f"{cost['history'] * 1e6:.2f} us, memoryless {cost['memoryless'] * 1e6:.2f} us per action")
    print(f"one action of the history policy costs {ratio:.2f}x a memoryless one (target <= {TARGET_HISTORY_COST:g}x: {verdict})")


RUNTIME = "runtime (onnxruntime)"


def stateful_fn(module: torch.nn.Module, state_dim: int, dtype: torch.dtype) -> Callable[[np.ndarray], object]:
    """A torch graph called as on a robot: the current observation in, the state carried from call to call."""
    carried: dict[str, torch.Tensor] = {}

    def call(obs: np.ndarray) -> object:
        x = torch.from_numpy(obs.reshape(-1, obs.shape[-1]))
        state = carried.get("state")
        if state is None or state.shape[0] != x.shape[0]:
            state = torch.zeros(x.shape[0], state_dim, dtype=dtype)
        with torch.no_grad():
            action, carried["state"] = module(x, state)
        return action.numpy()

    return call


def report(run_dir: Path, bundle_dir: Path, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Times every path on single observations and batches, prints the table and ratios, and returns
    ``{path: (seconds per action for one observation, seconds per action in a batch)}``."""
    start = time.perf_counter()
    policy = load_policy(run_dir)
    load_sb3 = time.perf_counter() - start
    start = time.perf_counter()
    deployed = DeployedPolicy.load(bundle_dir, threads=1)
    load_runtime = time.perf_counter() - start
    module = build_deployable(policy)
    with torch.no_grad():
        scripted = torch.jit.load(str(bundle_dir / TORCHSCRIPT_FILE))
    env, randomization, target = run_dynamics(policy.info)
    rollouts = record_rollouts(policy, env, 1000, seed=0, randomization=randomization, target=target)

    def torch_fn(net: torch.nn.Module) -> Callable[[np.ndarray], object]:
        if deployed.stateful:
            return stateful_fn(net, deployed.state_dim, getattr(torch, deployed.manifest["state"]["dtype"]))

        def call(obs: np.ndarray) -> object:
            with torch.no_grad():
                return net(torch.from_numpy(obs.reshape(-1, obs.shape[-1]))).numpy()
        return call

    paths = {
        RUNTIME: deployed.act,
        "SB3 predict (+VecNormalize stats)": policy.act,
        "torch forward (eager)": torch_fn(module),
        "torch forward (TorchScript)": torch_fn(scripted),
    }
    # the runtime and the graphs take the robot's current observation; SB3 the env's (stacked) one
    inputs = {name: rollouts.graph_observations for name in paths}
    inputs["SB3 predict (+VecNormalize stats)"] = rollouts.observations
    sb3 = policy.model.policy
    state = f", state {deployed.state_dim} ({deployed.manifest['state']['kind']})" if deployed.stateful else ""
    print(f"\npolicy: {policy.info.algo} on {env.name}, actor {type(sb3).__name__}, "
          f"obs dim {deployed.obs_dim}, action dim {deployed.action_dim}{state}")
    print(f"threads: onnxruntime 1 intra-op thread, torch {torch.get_num_threads()} thread; "
          f"median of {args.repeats} repeats x {args.calls} calls\n")
    print(f"{'path':36s} {'1 obs: us/action':>17s} {'x runtime':>10s} {f'batch {args.batch}: us/action':>21s} {'x runtime':>10s}")
    results = {}
    for name, fn in paths.items():
        observations = inputs[name]
        batches = [observations[i:i + args.batch] for i in range(0, len(observations) - args.batch + 1, args.batch)]
        reset = deployed.reset if name == RUNTIME else policy.reset
        reset()
        single = time_per_call(fn, list(observations), args.calls, args.repeats)
        reset()  # a batch is that many robots: start them fresh
        batch = time_per_call(fn, batches, max(args.calls // 10, 50), args.repeats) / args.batch
        results[name] = (single, batch)
    base_single, base_batch = results[RUNTIME]
    for name, (single, batch) in results.items():
        print(f"{name:36s} {single * 1e6:17.2f} {single / base_single:10.1f} {batch * 1e6:21.3f} {batch / base_batch:10.1f}")
    speedup = results["SB3 predict (+VecNormalize stats)"][0] / base_single
    verdict = "met" if speedup >= TARGET_SPEEDUP else "NOT met"
    print(f"\nruntime vs SB3 predict, one observation: {speedup:.1f}x faster (target >= {TARGET_SPEEDUP:g}x: {verdict})")
    print(f"load: DeployedPolicy.load {load_runtime * 1e3:.1f} ms (checksums included), load_policy {load_sb3 * 1e3:.1f} ms")
    runtime_import, sb3_import = import_seconds("sim2real.policies.deploy"), import_seconds("sim2real.training")
    print(f"cold import: sim2real.policies.deploy {runtime_import:.2f} s, sim2real.training (torch + SB3) {sb3_import:.2f} s "
          f"({sb3_import / runtime_import:.1f}x)")
    return results


if __name__ == "__main__":
    main()
