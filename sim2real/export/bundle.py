"""Exporting a run folder's policy as a deployment bundle (ONNX + TorchScript + ``bundle.json``).

The bundle is built in a temporary folder beside the output and renamed into place only after both
graphs reproduce the source policy's actions (parity); a failed export leaves nothing behind.

ONNX is written with torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``):
it needs nothing beyond torch and onnx, and writes one self-contained file. The newer dynamo exporter
would add ``onnxscript`` as a dependency for no gain on MLP actors. The legacy exporter is deprecated
upstream; the parity check at every export is what guards the choice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from sim2real.envs.registry import EnvSpec
from sim2real.export.graph import (
    NORMALIZATION_FORMULA,
    StateSpec,
    action_processing,
    actor_normalizer,
    build_deployable,
    graph_inputs,
)
from sim2real.export.parity import Rollouts, onnx_parity, parity_report, record_rollouts, torchscript_parity
from sim2real.policies.deploy import (
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    INPUT_NAME,
    MODEL_FILES,
    ONNX_FILE,
    OUTPUT_NAME,
    STATE_INPUT_NAME,
    STATE_OUTPUT_NAME,
    TORCHSCRIPT_FILE,
    sha256_file,
)
from sim2real.policies.policy import Policy
from sim2real.policies.run_info import RunInfo
from sim2real.randomization.factory import make_env
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import git_state, library_versions, write_json_atomic
from sim2real.validation import require_bool, require_float, require_int, require_known_keys

MIN_PARITY_OBSERVATIONS = 1000
MIN_OPSET = 13


@dataclass(frozen=True)
class ExportSettings:
    """How to export and check a policy.

    Attributes:
        observations: Observations recorded from rollouts of the policy for the parity check (>= 1000).
        tolerance: Largest absolute action difference allowed between either graph and the source policy.
        seed: Seed of the first parity rollout episode (episode ``i`` uses ``seed + i``).
        opset: ONNX opset version of the exported graph.
        overwrite: Replace an existing bundle in the output folder (never a folder that is not a bundle).
    """

    observations: int = MIN_PARITY_OBSERVATIONS
    tolerance: float = 1e-5
    seed: int = 0
    opset: int = 17
    overwrite: bool = False

    def __post_init__(self) -> None:
        require_int("observations", self.observations, minimum=MIN_PARITY_OBSERVATIONS)
        object.__setattr__(self, "tolerance", require_float("tolerance", self.tolerance, low=0.0, low_open=True))
        require_int("seed", self.seed, minimum=0)
        require_int("opset", self.opset, minimum=MIN_OPSET, maximum=max_opset())
        require_bool("overwrite", self.overwrite)


def max_opset() -> int:
    """The newest ONNX opset torch's TorchScript-based exporter writes."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except ImportError:  # a private constant; without it, the opset this module was tested with
        return 20
    return int(ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)


def export_settings_from_dict(data: Mapping[str, Any]) -> ExportSettings:
    """Builds :class:`ExportSettings` from a plain dict (a resolved Hydra config), rejecting unknown keys."""
    require_known_keys("export", data, ExportSettings.__dataclass_fields__)
    return ExportSettings(**data)


def export_bundle(run_dir: str | Path, out_dir: str | Path, settings: ExportSettings | None = None) -> dict[str, Any]:
    """Exports the final policy of a run folder (trained or adapted) as a bundle in ``out_dir``.

    Args:
        run_dir: The run folder (``model.zip``, ``metadata.json``, ``vecnormalize.pkl`` if normalizing).
        out_dir: The bundle folder to create; it must not exist, be empty, or (with ``overwrite``) hold a bundle.
        settings: Parity and format settings.

    Returns:
        The bundle's manifest (the content of ``bundle.json``).

    Raises:
        ValueError: Not a policy run folder, an unusable output folder, or a policy this exporter cannot handle.
        ParityError: Either graph differs from the source policy by more than the tolerance (nothing written).
    """
    settings = settings or ExportSettings()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_output_dir(out_dir, settings.overwrite)
    policy = Policy.load(run_dir)
    env, randomization, target = run_dynamics(policy.info)
    module = build_deployable(policy)
    rollouts = record_rollouts(policy, env, settings.observations, settings.seed, randomization, target)
    with staged_folder(out_dir) as stage:
        write_torchscript(module, stage / TORCHSCRIPT_FILE)
        write_onnx(module, stage / ONNX_FILE, settings.opset)
        manifest = build_manifest(policy, control_period(env, target), stage, settings, module.state)
        write_json_atomic(stage / BUNDLE_FILE, manifest)
        manifest["parity"] = measure_parity(stage, rollouts, settings.tolerance, module.state)
        write_json_atomic(stage / BUNDLE_FILE, manifest)
    return manifest


def check_output_dir(out_dir: Path, overwrite: bool) -> None:
    """Raises ``ValueError`` unless ``out_dir`` can receive a bundle (absent, empty, or a bundle to overwrite)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValueError(f"output '{out_dir}' exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise ValueError(f"output folder '{out_dir}' is not empty; choose a new folder, or set overwrite=true "
                         "to replace the bundle there")
    if not (out_dir / BUNDLE_FILE).is_file():
        raise ValueError(f"refusing to overwrite '{out_dir}': it is not a policy bundle (no {BUNDLE_FILE})")


def run_dynamics(info: RunInfo) -> tuple[EnvSpec, DynamicsSpec, DynamicsSpec]:
    """The env, randomization and target a run's policy acted in."""
    return info.env, info.randomization, info.target


def control_period(env: EnvSpec, target: DynamicsSpec | None) -> float:
    """Seconds between two actions (the env's ``dt``) under the target dynamics."""
    environment = make_env(env, target=target)
    try:
        return float(environment.unwrapped.dt)
    finally:
        environment.close()


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """Yields a temporary folder beside ``final``; renames it onto ``final`` only if the block succeeds.

    An empty ``final`` (e.g. made by Hydra) is replaced; a non-empty one is moved aside and deleted
    after the new folder is in place (:func:`check_output_dir` decides whether that is allowed).
    """
    final = final.absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield stage
        _set_default_permissions(stage)
        _move_into_place(stage, final)
    finally:
        if stage.exists():
            shutil.rmtree(stage)


def recover_interrupted_export(final: Path) -> list[Path]:
    """Repairs what an export killed while swapping its bundle in left beside ``final``; returns what it removed.

    Staged bundles (``.NAME.<random>.tmp``) are deleted. An old bundle moved aside (``.NAME.<random>.old``)
    goes back into place if the new one never arrived (``final`` missing, empty, or without a manifest: its
    files, if any, join the old bundle unless it has a file of that name), so the previous bundle is whole
    again; if the new one did arrive, the user's own files still in the old folder move into it and the rest
    is deleted. Call it only while holding the bundle's lock (``scripts/export.py``, the pipeline): a live
    export's folders look the same.
    """
    final = final.absolute()
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.[A-Za-z0-9_]{{8}}\.(tmp|old)$")  # mkdtemp's names only
    leftovers = sorted(p for p in final.parent.iterdir() if pattern.match(p.name) and p.is_dir() and not p.is_symlink()) \
        if final.parent.is_dir() else []
    removed = []
    for stage in (p for p in leftovers if p.suffix == ".tmp"):
        shutil.rmtree(stage)
        removed.append(stage)
    for old in (p for p in leftovers if p.suffix == ".old"):
        if not (final / BUNDLE_FILE).is_file():  # the new bundle never arrived
            if final.is_dir():
                for entry in final.iterdir():
                    if not (old / entry.name).exists():
                        os.replace(entry, old / entry.name)
                shutil.rmtree(final)
            os.replace(old, final)
            continue
        _retire_old_bundle(old, final)
        removed.append(old)
    return removed


def _set_default_permissions(folder: Path) -> None:
    """Gives the staged folder and its files the permissions of a normally created folder (mkdtemp uses 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _move_into_place(stage: Path, final: Path) -> None:
    """Swaps the staged bundle in; files in ``final`` that the old bundle did not list (the user's own) are
    moved into the new one, and only the old bundle's own files are deleted."""
    if final.is_dir() and not any(final.iterdir()):
        final.rmdir()
    if not final.exists():
        os.replace(stage, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
    old.rmdir()
    os.replace(final, old)
    os.replace(stage, final)
    _retire_old_bundle(old, final)


def _retire_old_bundle(old: Path, final: Path) -> None:
    """Moves the user's files (those the old bundle did not list) from ``old`` into ``final``; deletes ``old``."""
    bundle_files = _bundle_files(old)
    for entry in old.iterdir():
        if entry.name not in bundle_files and not (final / entry.name).exists():
            os.replace(entry, final / entry.name)
    shutil.rmtree(old)


def _bundle_files(folder: Path) -> set[str]:
    """Names of the files an exported bundle consists of (its manifest and every file it lists)."""
    names = {BUNDLE_FILE, *MODEL_FILES.values()}
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError, KeyError):
        names |= {str(entry["path"]) for entry in json.loads((folder / BUNDLE_FILE).read_text())["files"].values()}
    return names


def _example_inputs(module: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    obs_dim, state_dim = graph_inputs(module)
    obs = torch.zeros(2, obs_dim, dtype=torch.float64)
    if not state_dim:
        return (obs,)
    return obs, torch.zeros(2, state_dim, dtype=getattr(torch, module.state.dtype))


def _io_names(module: torch.nn.Module) -> tuple[list[str], list[str]]:
    if graph_inputs(module)[1]:
        return [INPUT_NAME, STATE_INPUT_NAME], [OUTPUT_NAME, STATE_OUTPUT_NAME]
    return [INPUT_NAME], [OUTPUT_NAME]


def _ignore_lstm_shape_checks() -> None:
    """nn.LSTM checks its input sizes in Python, which tracing freezes (with a warning): the sizes are fixed
    by the graph's declared inputs, so the frozen checks are right."""
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.modules\.rnn")


def write_torchscript(module: torch.nn.Module, path: Path) -> None:
    """Traces ``module`` and saves it as TorchScript (input float64 ``(N, obs_dim)``; a stateful module also
    takes and returns its state).

    TorchScript is deprecated upstream in favour of ``torch.export``; it is still the format C++
    (libtorch) deployments load, so the bundle keeps it and silences the notice.
    """
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        _ignore_lstm_shape_checks()
        traced = torch.jit.trace(module, _example_inputs(module))
        torch.jit.save(traced, str(path))


def write_onnx(module: torch.nn.Module, path: Path, opset: int) -> None:
    """Exports ``module`` to one self-contained ONNX file with a dynamic batch axis, and checks it."""
    inputs, outputs = _io_names(module)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy exporter, chosen on purpose
        _ignore_lstm_shape_checks()
        # an LSTM notice that does not apply here: the initial states are graph inputs, as it advises
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        torch.onnx.export(
            module,
            _example_inputs(module),
            str(path),
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in inputs + outputs},
            opset_version=opset,
            do_constant_folding=True,
        )
    onnx.checker.check_model(str(path))


def measure_parity(bundle_dir: Path, rollouts: Rollouts, tolerance: float,
                   state: StateSpec | None = None) -> dict[str, Any]:
    """Parity of the staged bundle's files with the recorded actions; raises ``ParityError`` on failure."""
    state_args = (state.dim, state.dtype) if state is not None else ()
    return parity_report(onnx_parity(bundle_dir, rollouts),
                         torchscript_parity(bundle_dir / TORCHSCRIPT_FILE, rollouts, *state_args), rollouts, tolerance)


def graph_observation_space(policy: Policy) -> Any:
    """The space of the observation the exported graph takes: the env's own observation (without the
    history the graph keeps as state, without an asymmetric critic's privileged part)."""
    if policy.history == 0 and not policy.info.privileged_names:
        return policy.model.policy.observation_space
    probe = make_env(replace(policy.info.env, history=0))
    try:
        return probe.observation_space
    finally:
        probe.close()


def build_manifest(policy: Policy, dt: float, bundle_dir: Path, settings: ExportSettings,
                   state: StateSpec | None = None) -> dict[str, Any]:
    """The content of ``bundle.json`` (without parity figures, which are measured on the written files)."""
    sb3_policy = policy.model.policy
    obs_space, act_space = graph_observation_space(policy), sb3_policy.action_space
    obs_dim, action_dim = int(obs_space.shape[0]), int(act_space.shape[0])
    io = {"input": {"name": INPUT_NAME, "dtype": "float64", "shape": ["batch", obs_dim], "raw": True},
          "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", action_dim]}}
    if state is not None:
        io["state_input"] = {"name": STATE_INPUT_NAME, "dtype": state.dtype, "shape": ["batch", state.dim]}
        io["state_output"] = {"name": STATE_OUTPUT_NAME, "dtype": state.dtype, "shape": ["batch", state.dim]}
    files = {key: {"path": name, "sha256": sha256_file(bundle_dir / name), "bytes": (bundle_dir / name).stat().st_size}
             for key, name in MODEL_FILES.items()}
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": files,
        "io": io,
        "state": state.to_dict() if state is not None else None,
        "observation_space": _box_dict(obs_space),
        "action_space": _box_dict(act_space),
        "observation_normalization": _normalization_dict(policy),
        "action_processing": action_processing(sb3_policy).to_dict(),
        "control_period_s": dt,
        "env": policy.info.env.to_record(),
        "algo": policy.info.algo,
        "source_run": _source_dict(policy.info),
        "git": git_state(),
        "versions": {**library_versions(), "onnx": onnx.__version__},
        "exporter": {"onnx": f"torch.onnx.export (TorchScript-based, dynamo=False), opset {settings.opset}",
                     "torchscript": "torch.jit.trace"},
        "export_settings": asdict(settings),
        "parity": None,
    }


def _box_dict(space: Any) -> dict[str, Any]:
    """Shape, dtype and bounds of a Box space; an unbounded entry is written as null."""

    def bounds(values: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in np.asarray(values, np.float64).ravel()]

    return {"shape": list(space.shape), "dtype": str(space.dtype), "low": bounds(space.low), "high": bounds(space.high)}


def _normalization_dict(policy: Policy) -> dict[str, Any] | None:
    norm = actor_normalizer(policy)
    if norm is None:
        return None
    entry = {"in_graph": True, "mean": norm.mean.tolist(), "var": norm.var.tolist(), "clip": norm.clip,
             "epsilon": norm.epsilon, "formula": NORMALIZATION_FORMULA}
    if policy.history > 0:
        entry["applies_to"] = f"[{INPUT_NAME}, {STATE_INPUT_NAME}]: the stacked history (see state.history.layout)"
    return entry


def _source_dict(info: RunInfo) -> dict[str, Any]:
    source_run = str(info.source_run) if info.source_run else None
    provenance = {"kind": info.kind, "method": info.method, "source_run": source_run, "seed": info.seed,
                  "timesteps_done": info.timesteps_done, "created": info.record.get("created")}
    return {"path": str(info.run_dir.resolve()), **{k: v for k, v in provenance.items() if v is not None},
            "git": info.record.get("git")}
