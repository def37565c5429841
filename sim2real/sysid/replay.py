"""k-step replay of recorded transitions in a simulator with candidate dynamics.

For every window of ``k`` consecutive recorded steps, the simulator is set to the recorded state at the
window's start (``qpos``, ``qvel``; time and actuator activations zero), the recorded actions are applied
as the env applies them (each held for ``frame_skip`` ``mj_step`` calls, the env's own step without its
wrappers), and the predicted ``qpos``/``qvel`` after each of the ``k`` steps are compared with the
recorded ones. Errors are divided, per dimension, by the standard deviation of the recorded one-step
change of that dimension, so joints and velocities of different scales weigh alike and 1.0 means "as
large as a typical step's change". Rollouts run in MuJoCo's C ``rollout`` module.

An action latency of ``d`` control steps is replayed as :class:`~sim2real.randomization.effects.ActionLatency`
applies it: the action recorded at tick ``i`` acts at tick ``i + d``, and the first ``d`` ticks of a
trajectory apply the zero action (clipped to the action bounds).
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np
from mujoco import rollout

from sim2real.envs.registry import EnvSpec
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.sysid.data import Trajectories

STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS


def step_change_scale(data: Trajectories) -> np.ndarray:
    """Per-dimension standard deviation of the recorded one-step change of ``(qpos, qvel)``.

    Dimensions that never move get a small floor instead of zero, so they cannot dominate.
    """
    change = np.hstack([data.next_qpos - data.qpos, data.next_qvel - data.qvel])
    std = change.std(axis=0) if len(change) > 1 else np.ones(change.shape[1])
    floor = max(1e-6 * float(std.max(initial=0.0)), 1e-12)
    return np.maximum(std, floor)


class Replay:
    """The k-step replay problem of one dataset on one robot.

    Args:
        env: The robot (its nominal model gives the state layout and control period).
        data: The recorded trajectories.
        horizon: Steps ``k`` per window (>= 1); windows never cross a trajectory boundary.
        scale: Per-dimension error scale (default :func:`step_change_scale` of ``data``); pass the fitting
            data's scale to score held-out data in the same units.
    """

    def __init__(self, env: EnvSpec, data: Trajectories, horizon: int = 1, scale: np.ndarray | None = None) -> None:
        self.env = env
        self.horizon = int(horizon)
        probe = make_env(env)
        try:
            base = probe.unwrapped
            self.frame_skip = int(base.frame_skip)
            self.nq, self.nv = int(base.model.nq), int(base.model.nv)
            space = probe.action_space
            self._zero_action = np.clip(np.zeros(space.shape), space.low, space.high)
            self.initial_states, self.starts, self.episode_of = self._windows(base.model, data)
        finally:
            probe.close()
        self.scale = step_change_scale(data) if scale is None else np.asarray(scale, dtype=np.float64)
        steps = self.starts[:, None] + np.arange(self.horizon)[None, :]
        self._targets = np.concatenate([data.next_qpos[steps], data.next_qvel[steps]], axis=-1)
        self._actions = data.actions
        self._first_row = self._episode_first_rows(data)

    def __len__(self) -> int:
        return int(len(self.starts))

    def subset(self, windows: np.ndarray) -> Replay:
        """The same problem restricted to the given windows (indices into this one's)."""
        part = copy.copy(self)
        part.initial_states, part.starts = self.initial_states[windows], self.starts[windows]
        part.episode_of, part._targets = self.episode_of[windows], self._targets[windows]
        return part

    @property
    def n_residuals(self) -> int:
        """Scalar residuals per evaluation: windows x horizon x (nq + nv)."""
        return int(self._targets.size)

    def _windows(self, model: mujoco.MjModel, data: Trajectories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bounds = data.episode_bounds()
        starts = [np.arange(start, end - self.horizon + 1) for start, end in bounds]
        episode_of = np.concatenate([np.full(len(s), e) for e, s in enumerate(starts)]) if starts else np.zeros(0, int)
        starts_all = np.concatenate(starts).astype(int) if starts else np.zeros(0, int)
        scratch = mujoco.MjData(model)
        states = np.zeros((len(starts_all), mujoco.mj_stateSize(model, STATE)))
        for w, row in enumerate(starts_all):
            scratch.qpos[:], scratch.qvel[:] = data.qpos[row], data.qvel[row]
            mujoco.mj_getState(model, scratch, states[w], STATE)
        return states, starts_all, episode_of.astype(int)

    def _episode_first_rows(self, data: Trajectories) -> np.ndarray:
        first = np.zeros(len(data), dtype=int)
        for start, end in data.episode_bounds():
            first[start:end] = start
        return first

    def controls(self, latency: int = 0) -> np.ndarray:
        """The control sequence of every window, ``(windows, horizon * frame_skip, nu)``."""
        rows = self.starts[:, None] + np.arange(self.horizon)[None, :] - latency
        before_start = rows < self._first_row[self.starts][:, None]
        actions = self._actions[np.maximum(rows, 0)]
        actions[before_start] = self._zero_action
        return np.repeat(actions, self.frame_skip, axis=1)

    def predict(self, model: mujoco.MjModel, latency: int = 0) -> np.ndarray:
        """Predicted ``(qpos, qvel)`` after each step of every window, ``(windows, horizon, nq + nv)``."""
        if not len(self):
            return np.zeros((0, self.horizon, self.nq + self.nv))
        states, _ = rollout.rollout(model, mujoco.MjData(model), self.initial_states, self.controls(latency))
        ends = states[:, self.frame_skip - 1 :: self.frame_skip]
        return ends[:, :, 1 : 1 + self.nq + self.nv]

    def residuals(self, model: mujoco.MjModel, latency: int = 0) -> np.ndarray:
        """Scaled prediction errors, ``(windows, horizon, nq + nv)``."""
        return (self.predict(model, latency) - self._targets) / self.scale

    def loss(self, model: mujoco.MjModel, latency: int = 0) -> float:
        """Mean squared scaled error (0: the simulator reproduces every window exactly)."""
        if not len(self):
            return float("nan")
        return float(np.mean(self.residuals(model, latency) ** 2))


class ScaledModels:
    """Simulator models with named parameters scaled: ``model({"masses": 2.0, "gains": 0.5})``.

    Each model is built through :func:`~sim2real.randomization.factory.make_env` with a target of constant
    ``scale`` terms, so any handle or group the env has works (and is validated the same way).

    Args:
        env: The robot.
    """

    def __init__(self, env: EnvSpec) -> None:
        self.env = env

    def spec(self, scales: dict[str, float]) -> DynamicsSpec:
        """The constant-scale dynamics spec of ``scales``."""
        return DynamicsSpec.from_dict({"name": "candidate", "parameters": {
            handle: {"op": "scale", "value": float(value)} for handle, value in scales.items()}})

    def __call__(self, scales: dict[str, float]) -> mujoco.MjModel:
        env = make_env(self.env, target=self.spec(scales))
        try:
            return env.unwrapped.model
        finally:
            env.close()
