"""Parity of an exported bundle with the source policy, on observations from real rollouts of that policy.

A stateful bundle (history or LSTM) is checked in closed loop: the exported graph drives the env, carrying
its own state from step to step (its own previous actions, its own LSTM state) and reset at every episode
start, while the SB3 policy acts on the same observations (the history wrapper's stack, which holds the
actions the graph sent); episodes are cut so the check crosses several resets. Replaying the SB3 policy's
own trajectory instead would feed the graph observations that do not answer its actions: a policy whose
action depends strongly on its past actions then drifts from float32 rounding alone (measured: 5e-7 per
step open loop, 0.8 after 20 steps of such a replay on InvertedDoublePendulum), which says nothing about
the export.
"""

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
from sim2real.randomization.history import history_layout
from sim2real.randomization.spec import DynamicsSpec
from sim2real.validation import require_int


class ParityError(RuntimeError):
    """The exported graphs do not reproduce the source policy's actions within the tolerance."""


@dataclass(frozen=True)
class ClosedLoop:
    """Where a stateful bundle's closed-loop check runs.

    Attributes:
        policy: The reference (acts on the env's observation, carrying its own LSTM state if any).
        env: The robot (with its history).
        randomization: The run's randomization.
        target: The run's target.
        seed: Reset seed of the first episode.
        steps: Consecutive steps checked; every episode is cut after ``steps // 4``.
    """

    policy: Policy
    env: EnvSpec
    randomization: DynamicsSpec | None
    target: DynamicsSpec | None
    seed: int
    steps: int


class TorchScriptStepper:
    """A saved stateful TorchScript module used like the runtime: one observation in, the state kept."""

    def __init__(self, module: torch.jit.ScriptModule, state_dim: int, dtype: str) -> None:
        self.module = module
        self.zero = torch.zeros(1, state_dim, dtype=getattr(torch, dtype))
        self.state = self.zero

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action for one raw observation; the state moves on."""
        with torch.no_grad():
            action, self.state = self.module(torch.as_tensor(obs, dtype=torch.float64).unsqueeze(0), self.state)
        return action.numpy()[0]

    def reset(self) -> None:
        """A new episode: zero state."""
        self.state = self.zero


def closed_loop_diff(loop: ClosedLoop, candidate: Any) -> tuple[float, int]:
    """Runs ``candidate`` (``act(current_obs)``, ``reset()``) in closed loop; returns the largest difference
    from the reference's action on the same observation, and the number of episode resets crossed."""
    environment = make_env(loop.env, randomization=loop.randomization, target=loop.target)
    layout = history_layout(environment)
    cut = layout.obs_dim if layout is not None else None
    worst, resets = 0.0, -1

    def act(obs: np.ndarray) -> np.ndarray:
        nonlocal worst
        action = np.asarray(candidate.act(obs[:cut]), np.float32)
        worst = max(worst, max_abs_diff(np.asarray(loop.policy.act(obs), np.float32), action))
        return action

    def reset() -> None:
        nonlocal resets
        resets += 1
        loop.policy.reset()
        candidate.reset()

    try:
        for _ in run_steps(environment, act, loop.seed, steps=loop.steps, reset=reset,
                           max_episode_steps=max(1, loop.steps // 4)):
            pass
    finally:
        environment.close()
    return worst, resets


@dataclass(frozen=True)
class Rollouts:
    """Observations the policy met while acting in its env, and the actions it took (``Policy.act``).

    Attributes:
        observations: Raw observations as the policy took them (a history policy: the stacked ones), ``(n, ·)``.
        actions: The policy's actions for them, ``(n, action_dim)``.
        episodes: Episodes run (episode ``i`` reset with seed ``seed + i``).
        seed: Seed of the first episode.
        dynamics: Names of the randomization and target the env was built with.
        reference_noise: Max abs difference between the policy's batched and one-at-a-time actions on these
            observations: the float32 summation-order noise of the reference itself, for scale (None for a
            recurrent policy, whose batch is parallel episodes).
        graph_observations: What the exported graph takes at each step: the robot's current raw observation
            (the newest block of a stacked one), ``(n, obs_dim)``.
        episode_starts: Whether each step starts an episode (where a stateful bundle is reset).
        stateful: The policy carries state between steps (history or LSTM): check it in closed loop.
        closed_loop: Where that closed-loop check runs (stateful policies).
    """

    observations: np.ndarray
    actions: np.ndarray
    episodes: int
    seed: int
    dynamics: dict[str, str]
    reference_noise: float | None
    graph_observations: np.ndarray
    episode_starts: np.ndarray
    stateful: bool = False
    closed_loop: ClosedLoop | None = None


def record_rollouts(policy: Policy, env: EnvSpec, n_observations: int, seed: int,
                    randomization: DynamicsSpec | None = None, target: DynamicsSpec | None = None) -> Rollouts:
    """Runs the policy deterministically until ``n_observations`` observations are recorded.

    A stateful policy's episodes are cut after ``n_observations // 4`` steps, so the recording crosses
    at least three episode resets.

    Args:
        policy: The source policy; its actions are the parity reference.
        env: The robot.
        n_observations: How many observations to record (>= 1).
        seed: Episode ``i`` resets with ``seed + i``.
        randomization: Domain randomization of the env (the run's, for a spread of dynamics).
        target: Fixed target dynamics (an adapted run's target).
    """
    require_int("n_observations", n_observations, minimum=1)
    stateful = policy.history > 0 or policy.recurrent
    environment = make_env(env, randomization=randomization, target=target)
    layout = history_layout(environment)
    observations, actions, starts, episodes = [], [], [], 0
    try:
        for step in run_steps(environment, policy.act, seed, steps=n_observations, reset=policy.reset,
                              max_episode_steps=max(1, n_observations // 4) if stateful else None):
            observations.append(np.asarray(step.obs, np.float64).copy())
            actions.append(np.asarray(step.action, np.float32).copy())
            starts.append(step.episode_start)
            episodes = step.episode + 1
    finally:
        environment.close()
    names = {"randomization": randomization.name if randomization else "none", "target": target.name if target else "nominal"}
    obs_array, action_array = np.stack(observations), np.stack(actions)
    graph_obs = obs_array[:, :layout.obs_dim] if layout is not None else obs_array
    noise = None
    if not policy.recurrent:
        noise = max_abs_diff(action_array, np.asarray(policy.act(obs_array), np.float32))
    loop = ClosedLoop(policy, env, randomization, target, seed, n_observations) if stateful else None
    return Rollouts(obs_array, action_array, episodes, seed, names, noise, graph_obs, np.asarray(starts, bool), stateful,
                    loop)


def max_abs_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Largest absolute difference; inf if shapes differ or any value (of either) is not finite."""
    if reference.shape != candidate.shape or not (np.isfinite(candidate).all() and np.isfinite(reference).all()):
        return float("inf")
    return float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)), initial=0.0))


def onnx_parity(bundle_dir: Path, rollouts: Rollouts) -> float:
    """Max abs difference of the bundle's ONNX model (through the runtime) from the recorded actions.

    Memoryless: both a batch call and one call per observation. Stateful: the runtime drives the env in
    closed loop (:func:`closed_loop_diff`).
    """
    deployed = DeployedPolicy.load(bundle_dir)
    if rollouts.closed_loop is not None:
        return closed_loop_diff(rollouts.closed_loop, deployed)[0]
    batch = deployed.act(rollouts.graph_observations)
    single = np.stack([deployed.act(obs) for obs in rollouts.graph_observations])
    return max(max_abs_diff(rollouts.actions, batch), max_abs_diff(rollouts.actions, single))


def torchscript_parity(path: Path, rollouts: Rollouts, state_dim: int = 0, state_dtype: str = "float64") -> float:
    """Max abs difference of the saved TorchScript model from the recorded actions (memoryless: batch and
    single; stateful: the module drives the env in closed loop, its state fed back and zeroed at every
    episode start)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        module = torch.jit.load(str(path), map_location="cpu")
    if rollouts.closed_loop is not None:
        return closed_loop_diff(rollouts.closed_loop, TorchScriptStepper(module, state_dim, state_dtype))[0]
    obs = torch.as_tensor(rollouts.graph_observations, dtype=torch.float64)
    with torch.no_grad():
        batch = module(obs).numpy()
        single = np.concatenate([module(row.unsqueeze(0)).numpy() for row in obs])
    return max(max_abs_diff(rollouts.actions, batch), max_abs_diff(rollouts.actions, single))


def parity_report(onnx_diff: float, torchscript_diff: float, rollouts: Rollouts, tolerance: float) -> dict[str, Any]:
    """The ``parity`` entry of ``bundle.json``; raises :class:`ParityError` if a difference exceeds ``tolerance``."""
    report = {
        "reference": "Policy.act: VecNormalize statistics, then SB3 model.predict(obs, deterministic=True)",
        "observations": int(len(rollouts.observations)),
        "closed_loop": rollouts.stateful,
        "closed_loop_driver": (f"the exported graph (each format in its own run of {len(rollouts.observations)} steps, "
                               f"episodes cut every {max(1, len(rollouts.observations) // 4)} steps: >= 3 resets per "
                               "run); SB3 acts on the same observations") if rollouts.stateful else None,
        "episode_resets": int(rollouts.episode_starts[1:].sum()),  # in the recorded reference rollouts
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
        scale = ("" if rollouts.reference_noise is None else f" (for scale: SB3's own batched vs single-observation "
                 f"actions differ by {rollouts.reference_noise:.3g})")
        raise ParityError(f"exported policy does not match the source policy over {report['observations']} "
                          f"observations: {details} > tolerance {tolerance:g}{scale}; nothing was written")
    return report
