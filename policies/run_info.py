"""A policy run folder read once into a typed :class:`RunInfo` (no raw ``metadata.json`` dicts past here)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sim2real.envs.registry import EnvSpec, env_spec_from_record
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import METADATA_FILE, MODEL_FILE, VECNORMALIZE_FILE, final_files_problem, read_json

ALGORITHMS = ("ppo", "sac", "td3", "recurrent_ppo")


@dataclass(frozen=True)
class RunInfo:
    """What a policy run folder says about itself.

    Attributes:
        run_dir: The folder.
        kind: ``train`` (trained by ``scripts/train.py``), ``transfer`` (adapted), ``scripted`` (e.g. LQR),
            ``distill`` (a student distilled from a privileged teacher).
        env: The robot, with its observation history (``env.history``).
        algo: The SB3 algorithm (``ppo``, ``sac``, ``td3``, ``recurrent_ppo``).
        algo_config: The algorithm's resolved config (None for scripted policies).
        normalize: Observations are normalized with the folder's ``vecnormalize.pkl``.
        randomization: The randomization the policy was trained under (the source domain).
        target: The fixed dynamics it was trained on or adapted to.
        seed: The run's seed.
        complete: The run finished (False while training or adapting, None if not recorded).
        timesteps: Planned training steps (trained runs).
        timesteps_done: Training steps done (trained runs).
        train_fps: Training throughput in env steps per second (trained runs).
        method: The transfer method (adapted runs).
        source_run: The run it was adapted from (adapted runs).
        budget: The target-step budget (adapted runs, and a same-budget scratch run trained within it).
        target_steps_used: Target steps the adaptation spent (adapted runs).
        settings: The transfer method's settings (adapted runs).
        privileged: ``none``; ``critic`` (asymmetric actor-critic: the critic saw the privileged observation);
            ``actor`` (a privileged teacher: its actions need the privileged observation).
        privileged_names: The privileged observation's entries (the randomized parameters), appended after
            the env's observation.
        record: The whole ``metadata.json``, for provenance copied into exports; read fields above instead.
    """

    run_dir: Path
    kind: str
    env: EnvSpec
    algo: str
    algo_config: dict[str, Any] | None = None
    normalize: bool = False
    randomization: DynamicsSpec = field(default_factory=lambda: DynamicsSpec(name="none"))
    target: DynamicsSpec = field(default_factory=DynamicsSpec)
    seed: int | None = None
    complete: bool | None = None
    timesteps: int | None = None
    timesteps_done: int | None = None
    train_fps: float | None = None
    method: str | None = None
    source_run: Path | None = None
    budget: int | None = None
    target_steps_used: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    privileged: str = "none"
    privileged_names: tuple[str, ...] = ()
    record: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_transfer(self) -> bool:
        """An adapted policy (made by a transfer method)."""
        return self.kind == "transfer"

    @property
    def steps_spent(self) -> int:
        """Env steps the policy cost where it was made: target steps for adapted runs, training steps else."""
        if self.target_steps_used is not None:
            return self.target_steps_used
        return int(self.timesteps_done or self.timesteps or 0)

    @property
    def model_file(self) -> Path:
        """The SB3 ``model.zip``."""
        return self.run_dir / MODEL_FILE

    @property
    def normalizer_file(self) -> Path | None:
        """The ``vecnormalize.pkl`` the policy's observations are normalized with (None if it takes raw ones)."""
        path = self.run_dir / VECNORMALIZE_FILE
        return path if path.is_file() else None


def read_metadata(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's ``metadata.json``; ``ValueError`` naming the file if it is missing or unreadable."""
    path = Path(run_dir) / METADATA_FILE
    if not path.is_file():
        raise ValueError(f"'{run_dir}' is not a run folder: {METADATA_FILE} is missing")
    try:
        data = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"'{path}' is not readable JSON ({err}); the run folder is damaged") from None
    if not isinstance(data, dict):
        raise ValueError(f"'{path}' holds {type(data).__name__}, not a JSON object; the run folder is damaged")
    return data


def read_run_info(run_dir: str | os.PathLike[str]) -> RunInfo:
    """Reads and checks a policy run folder.

    Raises:
        ValueError: The folder does not exist, is not a policy run, lacks its model or normalizer, or names
            an unknown algorithm; the message says what is missing.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run folder '{run_dir}' does not exist")
    data = read_metadata(run_dir)
    missing = [name for name in ("env", "algo") if name not in data]
    if missing:
        raise ValueError(f"'{run_dir}' is not a policy run: metadata.json lacks {missing}")
    if not (run_dir / MODEL_FILE).is_file():
        raise ValueError(f"'{run_dir}' has no {MODEL_FILE}: the run did not finish (resume it with resume={run_dir})")
    if data.get("normalize") and not (run_dir / VECNORMALIZE_FILE).is_file():
        raise ValueError(f"'{run_dir}' normalizes observations but {VECNORMALIZE_FILE} is missing")
    problem = final_files_problem(run_dir, data)
    if problem:
        raise ValueError(f"{problem}: the model and its statistics may not belong together. Resume the run "
                         f"(resume={run_dir}: it continues from its latest checkpoint, or from the start without one, and writes "
                         "them again)")
    if data["algo"] not in ALGORITHMS:
        raise ValueError(f"'{run_dir}': unknown algo '{data['algo']}'; known: {', '.join(ALGORITHMS)}")
    return run_info_from_record(run_dir, data)


def trained_randomization(data: dict[str, Any]) -> DynamicsSpec:
    """The randomization a run's policy was trained under. For automatic domain randomization, the ranges it
    reached (``metadata["adr"]["ranges"]``): what later stages take as the source domain."""
    spec = DynamicsSpec.from_dict(data.get("randomization"), default_name="source")
    reached = (data.get("adr") or {}).get("ranges")
    if spec.adr is None or not reached:
        return spec
    return replace(spec, adr=spec.adr.starting_at(reached))


def run_info_from_record(run_dir: Path, data: dict[str, Any]) -> RunInfo:
    """A :class:`RunInfo` from a run's metadata (already checked to name ``env`` and ``algo``)."""
    source_run = data.get("source_run")
    policy = dict(data.get("policy") or {})
    return RunInfo(
        run_dir=run_dir,
        kind=str(data.get("kind", "train")),
        env=env_spec_from_record(data["env"]),
        algo=str(data["algo"]),
        algo_config=data.get("algo_config"),
        normalize=bool(data.get("normalize")),
        randomization=trained_randomization(data),
        target=DynamicsSpec.from_dict(data.get("target"), default_name="nominal"),
        seed=data.get("seed"),
        complete=data.get("complete"),
        timesteps=data.get("timesteps"),
        timesteps_done=data.get("timesteps_done"),
        train_fps=data.get("train_fps"),
        method=data.get("method"),
        source_run=Path(source_run) if source_run else None,
        budget=int(data["budget"]) if data.get("budget") else None,
        target_steps_used=int(data["target_steps_used"]) if "target_steps_used" in data else None,
        settings=dict(data.get("settings") or {}),
        privileged=str(policy.get("privileged", "none")),
        privileged_names=tuple(policy.get("privileged_names") or ()),
        record=data,
    )
