"""Recorded trajectories in the form a robot's state readings give them, and how they are recorded and stored.

**What is assumed observed.** System identification uses the robot's full generalized state at each
control tick, plus the commands the controller sent. For a fixed-base robot (the pendulums, Reacher) that
is what joint encoders (and their differentiation) give; a floating-base robot's state also holds the
base's pose and velocity (Hopper's ``rootx``, ``rootz``, ``rooty``; Ant's free joint), which a real robot
gets from motion capture or a state estimator, not from encoders:

* ``qpos``: generalized positions at a control tick (joints, and a floating base's pose), in the
  simulator's ``qpos`` layout;
* ``qvel``: generalized velocities at that tick, in the ``qvel`` layout;
* ``actions``: the command sent at that tick (in the env's action space, as given to ``env.step``);
* ``next_qpos`` / ``next_qvel``: the reading at the next control tick, one control period later.

Nothing else: no rewards, no policy observations, no contact forces, no actuator activations (models
with actuator internal state, ``na > 0``, are replayed from zero activation) and no simulator internals.
In simulation the readings are ``env.unwrapped.data.qpos`` / ``qvel`` before and after each
``env.step``, exact, the base's pose included (a target's observation noise acts on the policy's
observations, not on them); a real robot's sensor and estimator errors would be in its data.

**The dataset format** (what a user with logs from a real robot writes, e.g. with
:func:`save_trajectories`): ``NAME.npz`` with the arrays

=================  ===========  ========================================================================
array              shape        meaning
=================  ===========  ========================================================================
``qpos``           ``(N, nq)``  joint positions at tick ``i``, before ``actions[i]`` takes effect
``qvel``           ``(N, nv)``  joint velocities at tick ``i``
``actions``        ``(N, nu)``  the command sent at tick ``i``
``next_qpos``      ``(N, nq)``  joint positions at tick ``i + 1``
``next_qvel``      ``(N, nv)``  joint velocities at tick ``i + 1``
``episode_starts`` ``(N,)``     True where row ``i`` begins a new trajectory (row 0 always does)
=================  ===========  ========================================================================

and beside it ``NAME.json``, the sidecar (like :mod:`sim2real.data.demos`)::

    {"format": "sim2real-trajectories", "version": 1,
     "env": {"name": "hopper", "id": "Hopper-v5", "kwargs": {}},   # the simulator to calibrate
     "control_dt": 0.008,                                           # seconds between ticks
     "counts": {"steps": N, "episodes": E},
     ... provenance: "target", "excitation", "seed", "created", "versions" (optional)}

Within a trajectory, ``next_qpos[i]`` must equal ``qpos[i + 1]`` (the same reading); loading checks it,
which catches off-by-one alignments. ``control_dt`` must equal the simulator's control period
(``frame_skip * timestep``), and the array widths must match its ``nq``, ``nv`` and ``nu``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sim2real.data.demos import sidecar_path
from sim2real.envs.registry import EnvSpec, resolve_env
from sim2real.randomization.factory import make_env
from sim2real.runs import atomic_path, library_versions, read_json, write_json_atomic
from sim2real.seeding import stream
from sim2real.validation import require_choice, require_float, require_int

FORMAT = "sim2real-trajectories"
FORMAT_VERSION = 1
ARRAYS = ("qpos", "qvel", "actions", "next_qpos", "next_qvel", "episode_starts")
TRAJECTORIES_FILE = "trajectories.npz"
"""The name a run folder gives the trajectories it measured (``scripts/calibrate.py``, ``method=sysid``)."""
EXCITATIONS = ("policy", "random", "chirp")

Excitation = Callable[[np.ndarray, int], np.ndarray]
"""Maps (observation, step within the trajectory) to the action to send."""


@dataclass
class Trajectories:
    """Encoder readings and commands of recorded trajectories (see the module docstring).

    Attributes:
        qpos: Joint positions at each tick, ``(N, nq)``.
        qvel: Joint velocities at each tick, ``(N, nv)``.
        actions: Commands sent at each tick, ``(N, nu)``.
        next_qpos: Joint positions one tick later, ``(N, nq)``.
        next_qvel: Joint velocities one tick later, ``(N, nv)``.
        episode_starts: Whether row ``i`` begins a trajectory, ``(N,)``.
        info: The sidecar: env, control period, counts, provenance.
    """

    qpos: np.ndarray
    qvel: np.ndarray
    actions: np.ndarray
    next_qpos: np.ndarray
    next_qvel: np.ndarray
    episode_starts: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ARRAYS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=bool if name == "episode_starts" else np.float64))
        lengths = {name: len(getattr(self, name)) for name in ARRAYS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"trajectory arrays differ in length: {lengths}")
        for name in ARRAYS[:-1]:
            if getattr(self, name).ndim != 2:
                raise ValueError(f"trajectory array '{name}' must be 2-D (rows x dims), got shape {getattr(self, name).shape}")
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"trajectory array '{name}' holds non-finite values")
        if self.episode_starts.ndim != 1:
            raise ValueError(f"trajectory array 'episode_starts' must be 1-D (one flag per row), got shape "
                             f"{self.episode_starts.shape}")
        for now, nxt in (("qpos", "next_qpos"), ("qvel", "next_qvel")):
            if getattr(self, now).shape[1] != getattr(self, nxt).shape[1]:
                raise ValueError(f"'{now}' has {getattr(self, now).shape[1]} columns but '{nxt}' {getattr(self, nxt).shape[1]}")
        if len(self) and not self.episode_starts[0]:
            raise ValueError("trajectories must begin with an episode start (episode_starts[0] is False)")

    def __len__(self) -> int:
        return int(len(self.qpos))

    @property
    def n_episodes(self) -> int:
        """Trajectories in the data."""
        return int(np.sum(self.episode_starts))

    @property
    def longest_episode(self) -> int:
        """Steps of the longest trajectory (0 without data)."""
        return max((end - start for start, end in self.episode_bounds()), default=0)

    def episode_bounds(self) -> list[tuple[int, int]]:
        """``(start, end)`` row ranges of the trajectories, in order."""
        starts = np.flatnonzero(self.episode_starts)
        ends = np.append(starts[1:], len(self))
        return [(int(s), int(e)) for s, e in zip(starts, ends)]

    def select_episodes(self, episodes: np.ndarray | list[int]) -> Trajectories:
        """The given trajectories (by index, in the order given; repeats allowed)."""
        bounds = self.episode_bounds()
        rows = np.concatenate([np.arange(*bounds[e]) for e in episodes]) if len(episodes) else np.zeros(0, int)
        return Trajectories(*(getattr(self, name)[rows] for name in ARRAYS), info=dict(self.info))

    def counts(self) -> dict[str, int]:
        """Steps and trajectories, for the sidecar."""
        return {"steps": len(self), "episodes": self.n_episodes}

    def check_continuity(self, atol: float = 1e-8) -> None:
        """Raises ``ValueError`` if, within a trajectory, a ``next_*`` reading differs from the next row's."""
        inside = ~self.episode_starts[1:]
        for now, nxt in (("qpos", "next_qpos"), ("qvel", "next_qvel")):
            gap = np.abs(getattr(self, nxt)[:-1] - getattr(self, now)[1:]).max(axis=1, initial=0.0)
            scale = 1.0 + np.abs(getattr(self, now)[1:]).max(axis=1, initial=0.0)
            bad = np.flatnonzero(inside & (gap > atol * scale))
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"row {i}: {nxt} differs from row {i + 1}'s {now} by {gap[i]:.3g} inside one trajectory; "
                    f"mark where trajectories start in episode_starts, or fix the alignment (next_* is the reading "
                    f"one tick after the action)")


def env_record(spec: EnvSpec) -> dict[str, Any]:
    """The sidecar's ``env`` entry."""
    return {"name": spec.name, "id": spec.label, "kwargs": dict(spec.kwargs)}


def control_dt(env: gym.Env) -> float:
    """Seconds between control ticks of a MuJoCo env (``frame_skip * timestep``)."""
    base = env.unwrapped
    return float(base.frame_skip * base.model.opt.timestep)


def excitation(kind: str, action_space: gym.spaces.Box, amplitude: float, rng: np.random.Generator,
               policy: Callable[[np.ndarray], np.ndarray] | None = None, dt: float = 0.05,
               trajectory_length: int = 200) -> Excitation:
    """The actions sent while measuring.

    Args:
        kind: ``policy`` (``policy(obs)`` plus Gaussian noise of std ``amplitude``), ``random`` (uniform in
            ``mid +- amplitude``) or ``chirp`` (a sine of amplitude ``amplitude`` whose frequency sweeps from
            one cycle per trajectory to a quarter of the control rate, actuators phase-shifted); amplitudes
            are relative to half the action range. Results are clipped to the action bounds.
        action_space: The env's action space.
        amplitude: See ``kind``.
        rng: Source of the noise (seeded by the caller).
        policy: Maps a raw observation to an action (``kind='policy'``).
        dt: Control period in seconds (``chirp``).
        trajectory_length: Steps of one trajectory (``chirp``'s sweep).
    """
    low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
    mid, half = (high + low) / 2.0, (high - low) / 2.0
    shape = action_space.shape

    def clip(action: np.ndarray) -> np.ndarray:
        return np.clip(action, low, high).astype(action_space.dtype)

    if kind == "policy":
        if policy is None:
            raise ValueError("excitation 'policy' needs a policy (the source policy)")
        return lambda obs, step: clip(np.asarray(policy(obs), np.float64) + rng.normal(0.0, amplitude, shape) * half)
    if kind == "random":
        return lambda obs, step: clip(mid + rng.uniform(-amplitude, amplitude, shape) * half)
    if kind == "chirp":
        duration = trajectory_length * dt
        f0, f1 = 1.0 / duration, 0.25 / dt
        phases = 2.0 * np.pi * np.arange(int(np.prod(shape))).reshape(shape) / max(1, int(np.prod(shape)))

        def chirp(obs: np.ndarray, step: int) -> np.ndarray:
            t = step * dt
            angle = 2.0 * np.pi * (f0 * t + (f1 - f0) * t * t / (2.0 * duration))
            return clip(mid + amplitude * half * np.sin(angle + phases))

        return chirp
    raise ValueError(f"excitation={kind!r} is not valid; valid: {', '.join(EXCITATIONS)}")


@dataclass(frozen=True)
class MeasurementSettings:
    """How to measure a system.

    Attributes:
        excitation: ``policy`` (a policy plus Gaussian noise), ``random`` or ``chirp`` actions (see :func:`excitation`).
        amplitude: Noise std (``policy``) or amplitude (``random``, ``chirp``), relative to half the action range.
        steps: Steps to record.
        trajectory_length: Longest trajectory (the env may end one sooner); ``steps`` must hold one.
    """

    excitation: str = "policy"
    amplitude: float = 0.3
    steps: int = 2000
    trajectory_length: int = 200

    def __post_init__(self) -> None:
        require_choice("excitation", self.excitation, EXCITATIONS)
        require_float("amplitude", self.amplitude, low=0.0, low_open=True)
        require_int("trajectory_length", self.trajectory_length, minimum=1)
        require_int("steps", self.steps, minimum=1)
        if self.steps < self.trajectory_length:
            raise ValueError(f"{self.steps} measurement steps are too few for one trajectory of "
                             f"trajectory_length={self.trajectory_length} steps")


def measure(env: gym.Env, settings: MeasurementSettings, seed: int = 0,
            policy: Callable[[np.ndarray], np.ndarray] | None = None, info: Mapping[str, Any] | None = None
            ) -> Trajectories:
    """Records ``settings.steps`` steps of ``env`` under the configured excitation (noise seeded by ``seed``)."""
    rng = stream(seed, "sysid.excitation")  # not the identification's split, search or bootstrap stream
    act = excitation(settings.excitation, env.action_space, settings.amplitude, rng, policy=policy,
                     dt=control_dt(env), trajectory_length=settings.trajectory_length)
    provenance = {**dict(info or {}), "excitation": settings.excitation, "amplitude": settings.amplitude}
    return record_trajectories(env, act, settings.steps, settings.trajectory_length, seed=seed, info=provenance)


TRAJECTORIES_PER_SEED = 2**20
"""Each seed's own block of reset seeds: trajectory ``i`` of seed ``s`` resets with ``s * 2**20 + i``, so two
seeds never record the same trajectory (with ``s + i``, seed 1's trajectory ``i`` was seed 0's ``i + 1``:
a fixed target and a chirp excitation made two seeds' data all but identical)."""


def record_trajectories(env: gym.Env, act: Excitation, steps: int, trajectory_length: int, seed: int = 0,
                        info: Mapping[str, Any] | None = None) -> Trajectories:
    """Records exactly ``steps`` steps: the state readings before and after each step, and the actions.

    A trajectory ends when the env terminates or truncates it, or after ``trajectory_length`` steps;
    trajectory ``i`` resets with seed ``seed * TRAJECTORIES_PER_SEED + i`` (each seed its own block).

    Args:
        env: The env measured (a budget-charging target env counts every step).
        act: The excitation (see :func:`excitation`).
        steps: Steps to record.
        trajectory_length: Longest trajectory.
        seed: The recording's seed (>= 0): its block of reset seeds.
        info: Provenance merged into the sidecar.
    """
    base = env.unwrapped
    rows: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    episode, t, done = 0, 0, True
    obs = None
    while len(rows["actions"]) < steps:
        if done:
            if episode == TRAJECTORIES_PER_SEED:
                raise ValueError(f"more than {TRAJECTORIES_PER_SEED} trajectories in one recording: record fewer "
                                 "steps or longer trajectories")
            obs, _ = env.reset(seed=seed * TRAJECTORIES_PER_SEED + episode)
            episode, t = episode + 1, 0
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        action = np.asarray(act(obs, t))
        obs, _, terminated, truncated, _ = env.step(action)
        for name, value in zip(ARRAYS, (qpos, qvel, action, base.data.qpos.copy(), base.data.qvel.copy(), t == 0)):
            rows[name].append(value)
        t += 1
        done = bool(terminated or truncated) or t >= trajectory_length
    data = Trajectories(*(np.asarray(rows[name]) for name in ARRAYS))
    data.info = {"format": FORMAT, "version": FORMAT_VERSION, **dict(info or {}), "control_dt": control_dt(env),
                 "seed": seed, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": library_versions(),
                 "counts": data.counts()}
    return data


def save_trajectories(data: Trajectories, path: str | Path) -> Path:
    """Writes ``path`` (``.npz``, added if missing) and its JSON sidecar atomically; returns the ``.npz`` path.

    The sidecar gets ``format``, ``version`` and ``counts`` filled in; ``info`` must hold ``env`` (at least
    ``{"name": ...}``) and ``control_dt``.
    """
    for key in ("env", "control_dt"):
        if key not in data.info:
            raise ValueError(f"trajectories need info['{key}'] to be saved (see sim2real.sysid.data)")
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **{name: getattr(data, name) for name in ARRAYS})
    write_json_atomic(sidecar_path(path), {"format": FORMAT, "version": FORMAT_VERSION, **data.info,
                                           "counts": data.counts(), "arrays": path.name})
    return path


def load_trajectories(path: str | Path, env: str | EnvSpec | None = None) -> Trajectories:
    """Reads a dataset; with ``env``, rejects one recorded for another env (see :func:`check_env`).

    Raises:
        ValueError: missing files, missing arrays or sidecar keys, inconsistent rows, or another env.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trajectories file '{path}' does not exist")
    side = sidecar_path(path)
    if not side.is_file():
        raise ValueError(f"trajectories file '{path}' has no sidecar '{side.name}' beside it")
    info = read_json(side)
    if info.get("format") != FORMAT:
        raise ValueError(f"'{side}' is not a {FORMAT} sidecar (format={info.get('format')!r})")
    missing_keys = [key for key in ("env", "control_dt", "counts") if key not in info]
    if missing_keys:
        raise ValueError(f"sidecar '{side}' lacks {missing_keys}")
    with np.load(path, allow_pickle=False) as arrays:
        missing = [name for name in ARRAYS if name not in arrays.files]
        if missing:
            raise ValueError(f"trajectories file '{path}' lacks arrays {missing}; expected {', '.join(ARRAYS)}")
        data = Trajectories(*(arrays[name] for name in ARRAYS), info=info)
    if info["counts"].get("steps") != len(data):
        raise ValueError(f"'{path}' holds {len(data)} steps but its sidecar says {info['counts'].get('steps')}: "
                         f"the files are out of sync")
    data.check_continuity()
    if env is not None:
        check_env(data, env, path)
    return data


def check_env(data: Trajectories, env: str | EnvSpec, path: str | Path = "trajectories") -> None:
    """Raises ``ValueError`` naming both sides if ``data`` was not recorded for an env like ``env``.

    Compared: the env name and Gymnasium id (or entry point), the control period, and the widths of
    ``qpos``, ``qvel`` and ``actions`` against the model's ``nq``, ``nv`` and ``nu``.
    """
    spec = resolve_env(env)
    probe = make_env(spec)
    try:
        model, dt = probe.unwrapped.model, control_dt(probe)
    finally:
        probe.close()
    recorded = dict(data.info.get("env") or {})
    problems = []
    if recorded.get("name") not in (None, spec.name) or recorded.get("id") not in (None, spec.label):
        problems.append(f"recorded for env '{recorded.get('name')}' ({recorded.get('id')}), not '{spec.name}' ({spec.label})")
    widths = {"qpos": model.nq, "qvel": model.nv, "actions": model.nu}
    for name, width in widths.items():
        if getattr(data, name).shape[1] != width:
            problems.append(f"{name} has {getattr(data, name).shape[1]} columns but {spec.name} has {width}")
    recorded_dt = data.info.get("control_dt")
    if not isinstance(recorded_dt, (int, float)) or not math.isclose(float(recorded_dt), dt, rel_tol=1e-6):
        problems.append(f"control_dt={recorded_dt!r} s but {spec.name}'s control period is {dt:g} s")
    if problems:
        raise ValueError(f"trajectories '{path}' do not fit env '{spec.name}': " + "; ".join(problems))
