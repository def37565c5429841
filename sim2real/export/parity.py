"""Parity of an exported bundle with the source policy, on observations from real rollouts of that policy."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim2real.envs.registry import EnvSpec
from sim2real.episodes import run_steps
from sim2real.policies.deploy import DeployedPolicy
from sim2real.policies.policy import Policy
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.validation import require_int


class ParityError(RuntimeError):
    """The exported graphs do not reproduce the source policy's actions within the tolerance."""


@dataclass(frozen=True)
class Rollouts:
    """Observations the policy met while acting in its env, and the actions it took (``Policy.act``).

    Attributes:
        observations: Raw observations, ``(n, obs_dim)``.
        actions: The policy's actions for them, ``(n, action_dim)``.
        episodes: Episodes run (episode ``i`` reset with seed ``seed + i``).
        seed: Seed of the first episode.
        dynamics: Names of the randomization and target the env was built with.
        reference_noise: Max abs difference between the policy's batched and one-at-a-time actions on these
            observations: the float32 summation-order noise of the reference itself, for scale.
    """

    observations: np.ndarray
    actions: np.ndarray
    episodes: int
    seed: int
    dynamics: dict[str, str]
    reference_noise: float


def record_rollouts(policy: Policy, env: EnvSpec, n_observations: int, seed: int,
                    randomization: DynamicsSpec | None = None, target: DynamicsSpec | None = None) -> Rollouts:
    """Runs the policy deterministically until ``n_observations`` observations are recorded.

    Args:
        policy: The source policy; its actions are the parity reference.
        env: The robot.
        n_observations: How many observations to record (>= 1).
        seed: Episode ``i`` resets with ``seed + i``.
        randomization: Domain randomization of the env (the run's, for a spread of dynamics).
        target: Fixed target dynamics (an adapted run's target).
    """
    require_int("n_observations", n_observations, minimum=1)
    environment = make_env(env, randomization=randomization, target=target)
    observations, actions, episodes = [], [], 0
    try:
        for step in run_steps(environment, policy.act, seed, steps=n_observations, reset=policy.reset):
            observations.append(np.asarray(step.obs, np.float64).copy())
            actions.append(np.asarray(step.action, np.float32).copy())
            episodes = step.episode + 1
    finally:
        environment.close()
    names = {"randomization": randomization.name if randomization else "none", "target": target.name if target else "nominal"}
    obs_array, action_array = np.stack(observations), np.stack(actions)
    noise = max_abs_diff(action_array, np.asarray(policy.act(obs_array), np.float32))
    return Rollouts(obs_array, action_array, episodes, seed, names, noise)


def max_abs_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Largest absolute difference; inf if shapes differ or any value is not finite."""
    if reference.shape != candidate.shape or not np.isfinite(candidate).all():
        return float("inf")
    return float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)), initial=0.0))


def onnx_parity(bundle_dir: Path, rollouts: Rollouts) -> float:
    """Max abs difference of the bundle's ONNX model (through the runtime) from the recorded actions.

    Checks both a batch call and one call per observation.
    """
    deployed = DeployedPolicy.load(bundle_dir)
    batch = deployed.act(rollouts.observations)
    single = np.stack([deployed.act(obs) for obs in rollouts.observations])
    return max(max_abs_diff(rollouts.actions, batch), max_abs_diff(rollouts.actions, single))


def torchscript_parity(path: Path, rollouts: Rollouts) -> float:
    """Max abs difference of the saved TorchScript model from the recorded actions (batch and single)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        module = torch.jit.load(str(path), map_location="cpu")
    obs = torch.as_tensor(rollouts.observations, dtype=torch.float64)
    with torch.no_grad():
        batch = module(obs).numpy()
        single = np.concatenate([module(row.unsqueeze(0)).numpy() for row in obs])
    return max(max_abs_diff(rollouts.actions, batch), max_abs_diff(rollouts.actions, single))


def parity_report(onnx_diff: float, torchscript_diff: float, rollouts: Rollouts, tolerance: float) -> dict[str, Any]:
    """The ``parity`` entry of ``bundle.json``; raises :class:`ParityError` if a difference exceeds ``tolerance``."""
    report = {
        "reference": "Policy.act: VecNormalize statistics, then SB3 model.predict(obs, deterministic=True)",
        "observations": int(len(rollouts.observations)),
        "episodes": rollouts.episodes,
        "seed": rollouts.seed,
        "dynamics": rollouts.dynamics,
        "tolerance": tolerance,
        "onnx_max_abs_diff": onnx_diff,
        "torchscript_max_abs_diff": torchscript_diff,
        "sb3_batch_vs_single_max_abs_diff": rollouts.reference_noise,
    }
    failed = {name: diff for name, diff in (("onnx", onnx_diff), ("torchscript", torchscript_diff)) if not diff <= tolerance}
    if failed:
        details = ", ".join(f"{name} max abs diff {diff:.3g}" for name, diff in failed.items())
        raise ParityError(f"exported policy does not match the source policy over {report['observations']} "
                          f"observations: {details} > tolerance {tolerance:g} (for scale: SB3's own batched vs "
                          f"single-observation actions differ by {rollouts.reference_noise:.3g}); nothing was written")
    return report
