"""Training throughput: PPO with domain randomization vs plain stable-baselines3, same env and hyperparameters.

    python scripts/bench_training.py [--env hopper] [--timesteps 20000] [--repeats 2]

Both arms use 4 in-process envs, VecNormalize and the same PPO settings (configs/algo/ppo.yaml for the
env) and seed; only the env construction differs (plain ``gym.make`` vs ``sim2real.make_env`` with the
default randomization, which also adds the physics guard). Repeats alternate the arms; prints the
median fps of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sim2real.envs import resolve_env
from sim2real.policies.networks import policy_kwargs
from sim2real.presets import load_preset
from sim2real.randomization import DynamicsSpec, make_env
from sim2real.training import algo_config_from_dict


def fps(make, algo, timesteps: int, seed: int) -> float:  # type: ignore[no-untyped-def]
    venv = VecNormalize(DummyVecEnv([make] * algo.n_envs), gamma=algo.hyperparams.get("gamma", 0.99))
    venv.seed(seed)
    model = PPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu",
                policy_kwargs=policy_kwargs(algo.network, "ppo"), **algo.hyperparams)
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    elapsed = time.perf_counter() - start
    venv.close()
    return model.num_timesteps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env_id = resolve_env(args.env).id
    algo = algo_config_from_dict(load_preset("algo", "ppo"), args.env)
    spec = DynamicsSpec.from_dict(load_preset("randomization", "default"))
    arms = {
        "plain SB3": lambda: Monitor(gym.make(env_id)),
        "sim2real + DR": lambda: Monitor(make_env(args.env, randomization=spec)),
    }
    results: dict[str, list[float]] = {name: [] for name in arms}
    for repeat in range(args.repeats):
        for name, make in arms.items():
            results[name].append(fps(make, algo, args.timesteps, seed=repeat))
    plain, dr = statistics.median(results["plain SB3"]), statistics.median(results["sim2real + DR"])
    print(f"PPO on {env_id}, {args.timesteps} steps x {args.repeats} repeats, 4 in-process envs, 1 torch thread")
    print(f"  plain SB3      {plain:8.0f} fps  {[round(v) for v in results['plain SB3']]}")
    print(f"  sim2real + DR  {dr:8.0f} fps  {[round(v) for v in results['sim2real + DR']]}")
    print(f"  ratio (DR / plain): {dr / plain:.3f}")


if __name__ == "__main__":
    main()
