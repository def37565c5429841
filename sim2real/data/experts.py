"""Scripted experts: analytic controllers saved as policy run folders, usable wherever a run folder is.

An LQR controller linearized on the target's own dynamics is an oracle for balancing tasks that
needs no training: a cheap, exact expert for demonstrations, DAgger labels and tests. It is saved as
a PPO model with no hidden layers, whose action head holds the gain (``action = -K obs``, clipped to
the action bounds by ``predict``) and no observation normalization, so ``Policy.load`` and every
consumer of run folders take it as they take a trained policy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from sim2real.envs.registry import EnvSpec, resolve_env
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import MODEL_FILE, atomic_path, final_files_record, update_metadata


def linearize(env: str | EnvSpec, target: DynamicsSpec | None = None, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Discrete-time ``x' = A x + B u`` around the zero state and action, over one control step.

    Only for envs whose observation is the full state ``[qpos, qvel]`` (InvertedPendulum); central
    finite differences of the simulator, so any integrator works.
    """
    environment = make_env(env, target=target)
    environment.reset(seed=0)
    sim = environment.unwrapped
    nq, nv, nu = sim.model.nq, sim.model.nv, sim.model.nu
    if environment.observation_space.shape != (nq + nv,):
        environment.close()
        raise ValueError(f"LQR expert needs an observation equal to the state [qpos, qvel] ({nq + nv} values); "
                         f"{resolve_env(env).label} observes {environment.observation_space.shape}")

    def step(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        sim.set_state(x[:nq].copy(), x[nq:].copy())
        sim.do_simulation(u, sim.frame_skip)
        return np.concatenate([sim.data.qpos, sim.data.qvel])

    x0, u0 = np.zeros(nq + nv), np.zeros(nu)
    a = np.stack([(step(x0 + eps * e, u0) - step(x0 - eps * e, u0)) / (2 * eps) for e in np.eye(nq + nv)], axis=1)
    b = np.stack([(step(x0, u0 + eps * e) - step(x0, u0 - eps * e)) / (2 * eps) for e in np.eye(nu)], axis=1)
    environment.close()
    return a, b


def lqr_gain(a: np.ndarray, b: np.ndarray, state_cost: np.ndarray, action_cost: np.ndarray) -> np.ndarray:
    """The discrete-time LQR gain ``K`` (``u = -K x``) of the Riccati equation."""
    p = scipy.linalg.solve_discrete_are(a, b, state_cost, action_cost)
    return np.linalg.solve(action_cost + b.T @ p @ b, b.T @ p @ a)


def save_lqr_expert(run_dir: str | Path, env: str | EnvSpec, target: DynamicsSpec | None = None,
                    state_cost: list[float] | None = None, action_cost: float = 0.1) -> dict[str, Any]:
    """Writes an LQR controller for ``env`` under ``target`` as a policy run folder; returns its metadata.

    Args:
        run_dir: Folder to write (``model.zip``, ``metadata.json``).
        env: The robot (its observation must be the full state).
        target: Dynamics the controller is designed for (None: nominal).
        state_cost: Diagonal of the state cost; default weights the pole angle most.
        action_cost: Weight of the action cost.
    """
    spec = resolve_env(env)
    target = target or DynamicsSpec()
    a, b = linearize(spec, target)
    costs = np.asarray(state_cost, dtype=float) if state_cost is not None else _default_state_cost(a.shape[0])
    gain = lqr_gain(a, b, np.diag(costs), np.eye(b.shape[1]) * action_cost)
    venv = DummyVecEnv([lambda: make_env(spec, target=target)])
    model = PPO("MlpPolicy", venv, policy_kwargs={"net_arch": {"pi": [], "vf": [8]}}, seed=0, device="cpu")
    with th.no_grad():
        model.policy.action_net.weight.copy_(th.as_tensor(-gain, dtype=th.float32))
        model.policy.action_net.bias.zero_()
    venv.close()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        model.save(tmp)
    return update_metadata(
        run_dir, kind="scripted", controller={"type": "lqr", "gain": gain.tolist(), "state_cost": costs.tolist(),
                                              "action_cost": action_cost},
        env=spec.to_record(),
        algo="ppo", normalize=False, randomization=DynamicsSpec(name="none").to_dict(), target=target.to_dict(),
        seed=0, complete=True, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), final_files=final_files_record(run_dir, 0),
    )


def _default_state_cost(n: int) -> np.ndarray:
    costs = np.full(n, 0.1)
    costs[: n // 2] = 1.0
    if n // 2 > 1:
        costs[1] = 10.0  # the pole angle of the cart-pole layout [x, theta, x_dot, theta_dot]
    return costs
