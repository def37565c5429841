"""Throughput of domain-randomized envs vs the raw Gymnasium envs, measured side by side.

    python scripts/bench_randomization.py [--steps 20000] [--repeats 5]

For each env: steps per second of the raw env and of the env with the default randomization
(masses, frictions, gains resampled at every reset, plus the physics guard), random actions, the same
action sequence for both, interleaved repeats, medians of per-repeat ratios. Times are this process's
CPU time (``time.process_time``), so other jobs on a shared machine disturb them less. Also the cost of
one randomized reset (sample + write + mj_setConst + the inner reset) in microseconds, against a plain
reset. Target: ratio >= 0.97. The randomized env's physics differs from the raw one's (other masses,
frictions, gains), so episode lengths and contact counts differ too; that is part of what is measured.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

from sim2real.presets import load_preset
from sim2real.randomization import DomainRandomization, DynamicsSpec, make_env

ENVS = {"hopper": "Hopper-v5", "ant": "Ant-v5"}


def steps_per_second(env: gym.Env, actions: np.ndarray) -> float:
    env.reset(seed=0)
    start = time.process_time()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.process_time() - start)


def reset_cost_us(env: DomainRandomization, n: int = 2000) -> tuple[float, float]:
    """Median microseconds of a reset with randomization on, and with it off."""
    def timed() -> float:
        start = time.process_time()
        for _ in range(n):
            env.reset()
        return (time.process_time() - start) / n * 1e6

    env.reset(seed=0)
    on = statistics.median(timed() for _ in range(3))
    env.set_enabled(False)
    off = statistics.median(timed() for _ in range(3))
    env.set_enabled(True)
    return on, off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    spec = DynamicsSpec.from_dict(load_preset("randomization", "default"))
    print(f"{'env':8} {'raw sps':>10} {'randomized sps':>15} {'ratio':>7} {'reset on (us)':>14} {'reset off (us)':>15}")
    for name, env_id in ENVS.items():
        raw = gym.make(env_id)
        randomized = make_env(name, randomization=spec)
        actions = np.random.default_rng(0).uniform(-1, 1, (args.steps, *raw.action_space.shape)).astype(np.float32)
        raw_sps, dr_sps = [], []
        for _ in range(args.repeats):
            raw_sps.append(steps_per_second(raw, actions))
            dr_sps.append(steps_per_second(randomized, actions))
        ratio = statistics.median(d / r for d, r in zip(dr_sps, raw_sps))
        dr_wrapper = DomainRandomization(gym.make(env_id), spec, env_name=name)
        on, off = reset_cost_us(dr_wrapper)
        print(f"{name:8} {statistics.median(raw_sps):10.0f} {statistics.median(dr_sps):15.0f} {ratio:7.3f} {on:14.1f} {off:15.1f}")


if __name__ == "__main__":
    main()
