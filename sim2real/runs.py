"""Run folders: atomic writes, metadata (git state, library versions), and locating artifacts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
CONFIG_FILE = "config.yaml"
TRACKED_LIBRARIES = (
    "sim2real",
    "gymnasium",
    "mujoco",
    "stable-baselines3",
    "torch",
    "numpy",
    "hydra-core",
    "onnxruntime",
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; give artifacts the usual permissions
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Writes ``data`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Reads a JSON file."""
    return json.loads(Path(path).read_text())


def git_state(repo_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Returns ``{"commit": sha or None, "dirty": bool or None}`` for the repository holding this package."""
    cwd = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a run depends on."""
    versions: dict[str, str | None] = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def base_metadata() -> dict[str, Any]:
    """Metadata every run records: git state, library versions, creation time."""
    return {
        "git": git_state(),
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def update_metadata(run_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """Merges ``fields`` into ``run_dir/metadata.json`` (created if missing), atomically."""
    path = Path(run_dir) / METADATA_FILE
    data = read_json(path) if path.exists() else base_metadata()
    data.update(fields)
    write_json_atomic(path, data)
    return data


def load_metadata(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads ``run_dir/metadata.json``; raises ``FileNotFoundError`` with a clear message if missing."""
    path = Path(run_dir) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"'{run_dir}' is not a run folder: {METADATA_FILE} is missing")
    return read_json(path)
