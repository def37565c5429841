"""Target-domain demonstration datasets: recording an expert, saving, loading with env checks.

A dataset is one ``.npz`` file of step arrays plus a JSON sidecar (same stem, ``.json``) that says
where the data came from::

    demos.npz   observations (N, *obs_shape)  raw, unnormalized, as the env returned them
                actions      (N, *act_shape)  the action sent to the env at that observation
                rewards      (N,)
                terminations (N,)             the step ended the episode (MDP terminal)
                truncations  (N,)             the step cut the episode (time limit); a recording that stops
                                              mid-episode leaves both flags False on its last row
                episode_starts (N,)           observations[i] is the first of an episode
    demos.json  env (as a run's metadata records it), target dynamics, expert run, seed, counts (steps, episodes, mean
                return), observation and action spaces (shapes, dtypes, bounds)

Row ``i`` is one transition: the env was at ``observations[i]``, took ``actions[i]``, got
``rewards[i]``. Writes are atomic, and :func:`load_demonstrations` rejects a file whose spaces do not
match the env it is meant for, naming both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sim2real.envs.registry import EnvSpec, resolve_env
from sim2real.episodes import run_steps
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import atomic_path, library_versions, read_json, write_json_atomic
from sim2real.validation import require_int

ActFn = Callable[[np.ndarray], np.ndarray]

FORMAT = "sim2real-demonstrations"
FORMAT_VERSION = 1
ARRAYS = ("observations", "actions", "rewards", "terminations", "truncations", "episode_starts")


@dataclass
class DemoDataset:
    """Demonstration steps and their provenance.

    Attributes:
        observations: Raw observations, shape ``(N, *obs_shape)``.
        actions: Actions taken, shape ``(N, *action_shape)``.
        rewards: Rewards, shape ``(N,)``.
        terminations: Whether step ``i`` ended its episode by termination, shape ``(N,)``.
        truncations: Whether step ``i`` ended its episode by truncation, shape ``(N,)``.
        episode_starts: Whether ``observations[i]`` starts an episode, shape ``(N,)``.
        info: The sidecar: env, target, expert, seed, counts, spaces (see the module docstring).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    episode_starts: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {name: len(getattr(self, name)) for name in ARRAYS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"demonstration arrays differ in length: {lengths}")
        if len(self) and not bool(self.episode_starts[0]):
            raise ValueError("demonstrations must begin with an episode start (episode_starts[0] is False)")

    def __len__(self) -> int:
        return int(len(self.observations))

    @property
    def n_episodes(self) -> int:
        """Episodes begun in the data (the last one may be cut)."""
        return int(np.sum(self.episode_starts))

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode the env ended (terminated or truncated) in the data."""
        starts = np.flatnonzero(self.episode_starts)
        if not len(starts):
            return np.zeros(0)
        ends = np.append(starts[1:], len(self))
        ended = (self.terminations | self.truncations)[ends - 1]
        return np.add.reduceat(self.rewards, starts)[ended]

    def first_steps(self, n: int, whole_episodes: bool = True) -> DemoDataset:
        """The first ``n`` steps at most; with ``whole_episodes``, cut at the last episode start that fits.

        Falls back to exactly ``n`` steps when not even one whole episode fits.
        """
        if n >= len(self):
            return self
        cut = n
        if whole_episodes:
            starts = np.flatnonzero(self.episode_starts[1 : n + 1]) + 1
            cut = int(starts[-1]) if len(starts) else n
        part = DemoDataset(*(getattr(self, name)[:cut] for name in ARRAYS), info=dict(self.info))
        part.info["counts"] = part.counts()
        return part

    @property
    def last_episode_cut(self) -> bool:
        """Whether the data stops inside an episode (its last row has neither flag)."""
        return bool(len(self)) and not bool(self.terminations[-1] or self.truncations[-1])

    def counts(self) -> dict[str, Any]:
        """Steps, episodes, complete episodes, return statistics over complete episodes, for the sidecar."""
        returns = self.episode_returns()
        return {
            "steps": len(self),
            "episodes": self.n_episodes,
            "complete_episodes": int(len(returns)),
            "last_episode_cut": self.last_episode_cut,
            "mean_return": float(returns.mean()) if len(returns) else None,
            "std_return": float(returns.std()) if len(returns) else None,
        }


def describe_spaces(env: gym.Env) -> dict[str, Any]:
    """Shapes, dtypes and bounds of an env's observation and action spaces (JSON-friendly)."""
    return {"observation": _describe_box(env.observation_space, "observation"),
            "action": _describe_box(env.action_space, "action")}


def _describe_box(space: gym.Space, what: str) -> dict[str, Any]:
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"demonstrations need Box spaces; the {what} space is {space}")
    return {"shape": list(space.shape), "dtype": str(space.dtype),
            "low": _encode(space.low), "high": _encode(space.high)}


def _encode(values: np.ndarray) -> list[Any]:
    """Floats for JSON; infinities as the strings ``"inf"`` / ``"-inf"`` (strict JSON has none)."""
    return [float(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf") for v in np.ravel(values)]


def _decode(values: list[Any]) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float64)


def collect_demonstrations(
    act: ActFn,
    env: gym.Env,
    *,
    steps: int | None = None,
    episodes: int | None = None,
    seed: int = 0,
    info: Mapping[str, Any] | None = None,
    reset: Callable[[], None] | None = None,
) -> DemoDataset:
    """Runs ``act`` on ``env`` and records every step; episode ``i`` resets with seed ``seed + i``.

    Args:
        act: Maps one raw observation to an action (e.g. ``Policy.act``).
        env: The env to record (a budget-charging env counts every step).
        steps: Record exactly this many steps (the last episode may stop unfinished: no flag on its last row).
        episodes: Or record this many whole episodes. Give exactly one of ``steps`` and ``episodes``.
        seed: Seed of the first episode's reset.
        info: Provenance merged into the sidecar (env, target, expert, ...).
        reset: Called at every episode start (``Policy.reset`` when ``act`` is a policy's).
    """
    if (steps is None) == (episodes is None):
        raise ValueError(f"give exactly one of steps={steps!r} and episodes={episodes!r}")
    if steps is not None:
        require_int("steps", steps, minimum=1)
    else:
        require_int("episodes", episodes, minimum=1)
    record = list(run_steps(env, act, seed, steps=steps, episodes=episodes, reset=reset))
    dataset = DemoDataset(
        observations=np.asarray([s.obs for s in record], dtype=env.observation_space.dtype),
        actions=np.asarray([np.asarray(s.action) for s in record], dtype=env.action_space.dtype),
        rewards=np.asarray([s.reward for s in record], dtype=np.float64),
        terminations=np.asarray([s.terminated for s in record], dtype=bool),
        truncations=np.asarray([s.truncated for s in record], dtype=bool),
        episode_starts=np.asarray([s.episode_start for s in record], dtype=bool),
    )
    dataset.info = {"format": FORMAT, "version": FORMAT_VERSION, **dict(info or {}), "seed": seed,
                    "spaces": describe_spaces(env), "counts": dataset.counts()}
    return dataset


def record_expert_demonstrations(
    expert_dir: str | Path,
    target: DynamicsSpec,
    *,
    steps: int | None = None,
    episodes: int | None = None,
    seed: int = 0,
    env: gym.Env | None = None,
) -> DemoDataset:
    """Records an expert run's deterministic actions on ``target`` dynamics.

    Args:
        expert_dir: A policy run folder (trained or adapted); its env is the env recorded.
        target: Dynamics of the recorded env.
        steps: Steps to record (or ``episodes``; exactly one).
        episodes: Whole episodes to record.
        seed: Seed of the first episode.
        env: The env to record on, if the caller built it (e.g. one charging a budget); default a
            fresh ``make_env(expert env, target=target)``.
    """
    from sim2real.policies import Policy  # torch and SB3 only where a policy is loaded

    expert = Policy.load(expert_dir)
    spec = expert.info.env
    environment = env if env is not None else make_env(spec, target=target)
    provenance = {
        "env": spec.to_record(),
        "target": target.to_dict(),
        "expert": {"run_dir": str(expert_dir), "algo": expert.info.algo, "target": expert.info.target.name,
                   "randomization": expert.info.randomization.name},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": library_versions(),
    }
    try:
        return collect_demonstrations(expert.act, environment, steps=steps, episodes=episodes, seed=seed,
                                      info=provenance, reset=expert.reset)
    finally:
        if env is None:
            environment.close()


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a dataset file (``demos.npz`` -> ``demos.json``)."""
    return Path(path).with_suffix(".json")


def save_demonstrations(dataset: DemoDataset, path: str | Path) -> Path:
    """Writes ``path`` (``.npz``, added if missing) and its JSON sidecar atomically; returns the ``.npz`` path.

    The arrays are written first and the sidecar last, and :func:`load_demonstrations` checks that the
    two agree, so an interrupted save is never mistaken for a dataset.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **{name: getattr(dataset, name) for name in ARRAYS})
    info = {**dataset.info, "counts": dataset.counts(), "arrays": path.name}
    write_json_atomic(sidecar_path(path), info)
    return path


def load_demonstrations(path: str | Path, env: str | EnvSpec | gym.Env | None = None) -> DemoDataset:
    """Reads a dataset; if ``env`` is given, rejects one whose env or spaces do not match it.

    Args:
        path: The ``.npz`` file (its ``.json`` sidecar must sit beside it).
        env: The env the data is meant for: a registered name, an :class:`EnvSpec`, or a built env.

    Raises:
        ValueError: missing or inconsistent files, or a dataset recorded on another env (the message
            names the recorded and the expected env with their spaces).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"demonstrations file '{path}' does not exist")
    side = sidecar_path(path)
    if not side.is_file():
        raise ValueError(f"demonstrations file '{path}' has no sidecar '{side.name}' beside it")
    info = read_json(side)
    if info.get("format") != FORMAT:
        raise ValueError(f"'{side}' is not a {FORMAT} sidecar (format={info.get('format')!r})")
    with np.load(path, allow_pickle=False) as data:
        missing = [name for name in ARRAYS if name not in data.files]
        if missing:
            raise ValueError(f"demonstrations file '{path}' lacks arrays {missing}")
        dataset = DemoDataset(*(data[name] for name in ARRAYS), info=info)
    recorded = info.get("counts", {}).get("steps")
    if recorded != len(dataset):
        raise ValueError(f"'{path}' holds {len(dataset)} steps but its sidecar says {recorded}: the files are out of sync")
    _check_shapes(dataset, path)
    if env is not None:
        check_compatible(dataset, env, path)
    return dataset


def _check_shapes(dataset: DemoDataset, path: Path) -> None:
    spaces = dataset.info["spaces"]
    for array, key in ((dataset.observations, "observation"), (dataset.actions, "action")):
        if list(array.shape[1:]) != list(spaces[key]["shape"]):
            raise ValueError(f"'{path}': {key}s have shape {list(array.shape[1:])} but the sidecar says {spaces[key]['shape']}")


def check_compatible(dataset: DemoDataset, env: str | EnvSpec | gym.Env, path: str | Path = "dataset") -> None:
    """Raises ``ValueError`` naming both sides if ``dataset`` was not recorded on an env like ``env``."""
    label, spaces = _env_spaces(env)
    recorded = dataset.info.get("env") or {}
    recorded_label = str(recorded.get("id") or recorded.get("entry_point") or "an unknown env")
    mismatches = _space_mismatches(dataset.info["spaces"], spaces)
    if recorded_label != "an unknown env" and label is not None and recorded_label != label:
        mismatches.insert(0, "env id")
    if mismatches:
        raise ValueError(
            f"demonstrations '{path}' do not fit {label or 'the env'} ({', '.join(mismatches)} differ): recorded on "
            f"{recorded_label} with {_space_text(dataset.info['spaces'])}; {label or 'the env'} has {_space_text(spaces)}"
        )


def _env_spaces(env: str | EnvSpec | gym.Env) -> tuple[str | None, dict[str, Any]]:
    if isinstance(env, gym.Env):
        return (env.spec.id if env.spec is not None else None), describe_spaces(env)
    spec = resolve_env(env)
    probe = make_env(spec)  # with the spec's history: a history policy's demonstrations hold stacked observations
    try:
        return spec.label, describe_spaces(probe)
    finally:
        probe.close()


def _space_mismatches(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    bad = []
    for key in ("observation", "action"):
        rec, exp = recorded[key], expected[key]
        if list(rec["shape"]) != list(exp["shape"]):
            bad.append(f"{key} shape")
        elif not all(np.allclose(_decode(rec[b]), _decode(exp[b])) for b in ("low", "high")):
            bad.append(f"{key} bounds")
    return bad


def _space_text(spaces: Mapping[str, Any]) -> str:
    obs, action = spaces["observation"], spaces["action"]
    return (f"observations {tuple(obs['shape'])} and actions {tuple(action['shape'])} in "
            f"[{_bound_text(action['low'])}, {_bound_text(action['high'])}]")


def _bound_text(values: list[Any]) -> str:
    unique = sorted({str(v) for v in values})
    return unique[0] if len(unique) == 1 else "[" + ", ".join(str(v) for v in values) + "]"


def concatenate(datasets: list[DemoDataset]) -> DemoDataset:
    """Joins datasets recorded on the same env, in order (provenance from the first)."""
    if not datasets:
        raise ValueError("nothing to concatenate")
    joined = DemoDataset(*(np.concatenate([getattr(d, name) for d in datasets]) for name in ARRAYS),
                         info=dict(datasets[0].info))
    return replace(joined, info={**joined.info, "counts": joined.counts()})
