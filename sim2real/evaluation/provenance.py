"""Where an adapted policy's outside help came from, and the target steps that help itself cost.

BC and DAgger learn from an expert (or from demonstrations an expert recorded). Their own ledger counts
only the demonstration and rollout steps of the adaptation; the expert usually cost far more target steps
(the default pipeline's expert is the oracle, trained on the target). :func:`expert_use` reads it from
the adapted run's folder: the transfer run's ``settings.expert`` (a run folder) or ``settings.dataset``
(a demonstrations file whose sidecar names the expert that recorded it), then that expert's own run
folder, so the report can show the whole cost.

How an expert's target steps are counted:

* trained on the very dynamics being evaluated (same parameters and effects): every training step;
* itself adapted (a transfer run): its own target steps plus its expert's, followed down the chain;
* trained in simulation (nominal, randomized, or other fixed dynamics): 0 target steps;
* a scripted controller (e.g. LQR): 0 target steps, but built from the target's model: marked privileged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sim2real.policies import RunInfo, read_run_info

MAX_CHAIN = 8
"""Experts followed down a chain of adapted experts at most (a cycle of run folders stops here)."""


@dataclass(frozen=True)
class ExpertUse:
    """An adapted policy's expert or dataset, and what it cost.

    Attributes:
        kind: ``expert`` (a policy queried or recorded during adaptation) or ``dataset`` (recorded demonstrations).
        expert_run: The expert's run folder (None if unknown).
        dataset: The demonstrations file (``kind == "dataset"``), else None.
        target_steps: Target steps the expert itself cost (None: unknown; see ``note``).
        privileged: The expert was built from the target's model rather than from target steps.
        note: How ``target_steps`` was counted, in words.
    """

    kind: str
    expert_run: str | None
    dataset: str | None
    target_steps: int | None
    privileged: bool
    note: str

    @property
    def label(self) -> str:
        """Short name for a table: the expert folder's name, or the dataset's file name."""
        if self.expert_run:
            return Path(self.expert_run).name
        return Path(self.dataset).name if self.dataset else "unknown"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**asdict(self), "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpertUse:
        """Reads the form :meth:`to_dict` writes."""
        return cls(**{key: data[key] for key in ("kind", "expert_run", "dataset", "target_steps", "privileged", "note")})


def _dynamics_key(spec: Any) -> tuple[str, str]:
    data = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec or {})
    return (json.dumps(data.get("parameters") or {}, sort_keys=True), json.dumps(data.get("effects") or {}, sort_keys=True))


def _is_identity(spec: Any) -> bool:
    return _dynamics_key(spec) == ("{}", "{}")


def expert_use(info: RunInfo, target: Any, depth: int = 0) -> ExpertUse | None:
    """The expert or dataset an adapted run learned from (None: it used neither).

    Args:
        info: The adapted run.
        target: The dynamics being evaluated (a ``DynamicsSpec`` or its dict form).
        depth: Experts already followed (internal).
    """
    if not info.is_transfer:
        return None
    expert, dataset = info.settings.get("expert"), info.settings.get("dataset")
    if dataset:
        return _dataset_use(str(dataset), target, depth)
    if expert:
        steps, privileged, note = expert_cost(Path(str(expert)), target, depth + 1)
        return ExpertUse("expert", str(expert), None, steps, privileged, note)
    if _method_needs_help(info.method):
        return ExpertUse("expert", None, None, None, False,
                         f"method '{info.method}' learns from an expert, but its settings name neither expert nor dataset")
    return None


def _method_needs_help(method: str | None) -> bool:
    """The method class declares ``needs_expert`` or ``needs_dataset`` (False for an unknown method)."""
    if not method:
        return False
    from sim2real.transfer import METHODS

    if method not in METHODS:
        return False
    cls = METHODS.get(method)
    return bool(cls.needs_expert or cls.needs_dataset)


def _dataset_use(dataset: str, target: Any, depth: int) -> ExpertUse:
    from sim2real.data.demos import sidecar_path
    from sim2real.runs import read_json

    side = sidecar_path(dataset)
    try:
        recorded_by = (read_json(side).get("expert") or {}).get("run_dir")
    except (OSError, ValueError, AttributeError):
        return ExpertUse("dataset", None, dataset, None, False, f"dataset sidecar '{side}' is missing or unreadable: "
                         "who recorded it, and at what cost, is unknown")
    if not recorded_by:
        return ExpertUse("dataset", None, dataset, None, False,
                         f"dataset sidecar '{side.name}' names no expert (recorded elsewhere, e.g. on a robot): cost unknown")
    steps, privileged, note = expert_cost(Path(recorded_by), target, depth + 1)
    return ExpertUse("dataset", str(recorded_by), dataset, steps, privileged, f"recorded by '{Path(recorded_by).name}': {note}")


def trained_on_target(info: Any, target: Any) -> bool:
    """Whether a training run (not an adaptation) was trained on ``target`` itself: its training steps were then
    target steps (an oracle's are)."""
    return not info.is_transfer and _dynamics_key(info.target) == _dynamics_key(target) and not _is_identity(target)


def expert_cost(run_dir: Path, target: Any, depth: int = 1) -> tuple[int | None, bool, str]:
    """``(target steps, privileged, note)`` of an expert run folder (steps None when unknown)."""
    if depth > MAX_CHAIN:
        return None, False, f"expert chain longer than {MAX_CHAIN} run folders: cost unknown"
    try:
        info = read_run_info(run_dir)
    except ValueError as err:
        return None, False, f"expert run unreadable ({err}): cost unknown"
    if info.kind == "scripted":
        return 0, True, "scripted controller built from the target's model: no target steps, but privileged knowledge"
    if info.is_transfer:
        own = int(info.target_steps_used or 0)
        nested = expert_use(info, target, depth)
        if nested is None:
            return own, False, f"adapted with {own} target steps"
        if nested.target_steps is None:
            return None, nested.privileged, f"adapted with {own} target steps, its own expert's cost unknown"
        return own + nested.target_steps, nested.privileged, (f"adapted with {own} target steps, plus its expert's "
                                                              f"{nested.target_steps}")
    if trained_on_target(info, target):
        return info.steps_spent, False, f"trained {info.steps_spent} steps on the target"
    where = "nominal" if _is_identity(info.target) else f"'{info.target.name}'"
    return 0, False, f"trained in simulation ({where} dynamics), no target steps"
