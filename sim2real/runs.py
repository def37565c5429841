"""Run folders: atomic writes, metadata (git state, library versions), and locating artifacts."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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


# --- a policy's final files: model.zip and vecnormalize.pkl are written one after the other -----------------

FINAL_FILES_KEY = "final_files"
PENDING_FINAL_FILES_KEY = "final_files_pending"
"""The pair being written: recorded before the files are renamed into place, so a kill between the renames
and the completion's record leaves a pair that can still be verified."""


def final_files_record(run_dir: str | os.PathLike[str], timesteps: int,
                       files: Mapping[str, str | os.PathLike[str]] | None = None) -> dict[str, Any]:
    """What a completing run records of its final files (``metadata[FINAL_FILES_KEY]``): the SHA-256 of each
    present ``model.zip``/``vecnormalize.pkl`` (or of ``files``, ``{name: path}``, e.g. the temporaries about
    to replace them) and the timesteps they hold. The two files are replaced one after the other; the record
    tells a later reader whether they are still the pair that was completed."""
    run_dir = Path(run_dir)
    paths = {name: Path(path) for name, path in files.items()} if files is not None else {
        name: run_dir / name for name in (MODEL_FILE, VECNORMALIZE_FILE) if (run_dir / name).is_file()}
    return {"timesteps": int(timesteps), "sha256": {name: sha256_file(path) for name, path in paths.items()}}


def _changed_files(run_dir: Path, entry: Mapping[str, Any]) -> list[str]:
    """The files of a final-files record that are missing from ``run_dir`` or differ from it."""
    return [name for name, digest in entry["sha256"].items()
            if not (run_dir / name).is_file() or sha256_file(run_dir / name) != digest]


def _matching_final_files(run_dir: Path, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The completed or pending final-files record that the files in ``run_dir`` are, or None."""
    for key in (FINAL_FILES_KEY, PENDING_FINAL_FILES_KEY):
        entry = record.get(key)
        if entry and entry.get("sha256") is not None and not _changed_files(run_dir, entry):
            return entry
    return None


def final_files_problem(run_dir: str | os.PathLike[str], record: dict[str, Any]) -> str | None:
    """Why the run's final files are not a pair it wrote (None: they are the pair of its last completion, or the
    pair recorded as pending before a kill stopped the completion, or the run predates the record)."""
    expected = record.get(FINAL_FILES_KEY) or record.get(PENDING_FINAL_FILES_KEY) or {}
    if expected.get("sha256") is None:
        return None
    run_dir = Path(run_dir)
    if _matching_final_files(run_dir, record) is not None:
        return None
    changed = _changed_files(run_dir, expected)
    return (f"{' and '.join(changed)} in '{run_dir}' {'is' if len(changed) == 1 else 'are'} not what the run's last "
            "completion wrote (it was interrupted while replacing its final files, or they were replaced by hand)")


def verified_final_steps(run_dir: str | os.PathLike[str], record: dict[str, Any]) -> int | None:
    """Timesteps held by the run's final files when they are a pair the run wrote (completed, or recorded as
    pending), else None. A run that predates the record counts when its metadata says complete."""
    if record.get(FINAL_FILES_KEY) is None and record.get(PENDING_FINAL_FILES_KEY) is None:
        return int(record.get("timesteps_done", 0)) if record.get("complete") else None
    entry = _matching_final_files(Path(run_dir), record)
    return None if entry is None else int(entry["timesteps"])


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (the deployment runtime keeps its own copy: it imports nothing of the package)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- run folders: what made them, who holds them, what may be replaced --------------------------------------

RUN_FILE = "run.json"
OVERRIDES_FILE = "overrides.yaml"
LOCK_FILE = ".sim2real.lock"
TEMPORARY_PATTERN = ".*.tmp"  # what atomic_path and checkpoint saving leave behind when killed mid-write
LOCK_RECORD_SUFFIX = ".record"  # a lock's record before it is linked into place (gone a moment later)


class RunFolderError(ValueError):
    """A folder a script may not write into: another kind of run, someone's own files, a run in use by another
    process, or a finished run given without ``resume=`` or ``overwrite=true``."""


@dataclass(frozen=True)
class RunKind:
    """A kind of folder the toolkit writes.

    Attributes:
        name: ``train``, ``distill``, ``transfer``, ``pipeline``, ``evaluate``, ``demos``, ``export``, ``calibrate``.
        what: How messages name it (``a training run``).
        script: The script that makes it, for messages.
        files: Glob patterns of the top-level entries this kind writes; ``overwrite=true`` removes these
            and nothing else.
    """

    name: str
    what: str
    script: str
    files: tuple[str, ...]


def previous_record(name: str, k: int | str) -> str:
    """``config.yaml`` -> ``config.previous-<k>.yaml``, the k-th earlier record of a run continued with other
    settings (``sim2real.cli.write_run_config``); likewise ``overrides.yaml``. ``k="[0-9]*"`` is their pattern."""
    stem, suffix = name.rsplit(".", 1)
    return f"{stem}.previous-{k}.{suffix}"


_COMMON = (RUN_FILE, CONFIG_FILE, OVERRIDES_FILE, previous_record(CONFIG_FILE, "[0-9]*"),
           previous_record(OVERRIDES_FILE, "[0-9]*"))
_POLICY = (METADATA_FILE, MODEL_FILE, VECNORMALIZE_FILE, "checkpoints", "tb", "stage.json")
RUN_KINDS: dict[str, RunKind] = {kind.name: kind for kind in (
    RunKind("train", "a training run", "scripts/train.py", (*_COMMON, *_POLICY, "eval.json", "adr_ranges.png")),
    RunKind("distill", "a distilled student", "scripts/distill.py", (*_COMMON, *_POLICY)),
    RunKind("transfer", "a transfer run", "scripts/transfer.py",
            (*_COMMON, *_POLICY, "calibration.json", "calibration.png", "trajectories.npz", "trajectories.json")),
    RunKind("pipeline", "a pipeline run", "scripts/pipeline.py",
            (*_COMMON, "pipeline.json", "source", "zero_shot", "baselines", "transfer", "report", "export")),
    RunKind("evaluate", "an evaluation report", "scripts/evaluate.py",
            (*_COMMON, "report.json", "report.md", "returns.png", "sample_efficiency.png", "sweep_*.json",
             "sweep_*.png")),
    RunKind("demos", "a demonstrations dataset", "scripts/collect_demos.py", _COMMON),
    RunKind("export", "a policy bundle", "scripts/export.py", ("bundle.json", "policy.onnx", "policy.pt")),
    RunKind("calibrate", "a calibration", "scripts/calibrate.py",
            (*_COMMON, "calibration.json", "calibration.png", "trajectories.npz", "trajectories.json")),
)}


def run_kind(folder: str | os.PathLike[str]) -> str | None:
    """Which kind of toolkit folder ``folder`` is (a name of :data:`RUN_KINDS`), or None.

    ``run.json`` says so for folders claimed by a script; older folders and the pipeline's stage folders
    are recognized by their artifacts (``metadata.json``'s ``kind``, ``bundle.json``, ``report.json``, ...).
    """
    folder = Path(folder)
    marker = _read_object(folder / RUN_FILE)
    if marker.get("kind") in RUN_KINDS:
        return str(marker["kind"])
    metadata = _read_object(folder / METADATA_FILE)
    if metadata.get("kind") in ("train", "transfer", "distill"):
        return str(metadata["kind"])
    if "env" in metadata and "algo" in metadata:
        return "train"
    evidence = (("bundle.json", "export"), ("pipeline.json", "pipeline"), ("report.json", "evaluate"),
                ("calibration.json", "calibrate"), ("source/stage.json", "pipeline"),
                ("zero_shot/stage.json", "pipeline"))
    for name, kind in evidence:
        if (folder / name).is_file():
            return kind
    if _demonstration_files(folder):
        return "demos"
    return None


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _demonstration_files(folder: Path) -> list[Path]:
    """Datasets written by ``save_demonstrations`` (an ``.npz`` with a sim2real sidecar) and their sidecars."""
    found = []
    for sidecar in folder.glob("*.json"):
        if _read_object(sidecar).get("format") == "sim2real-demonstrations":
            found += [sidecar, sidecar.with_suffix(".npz")]
    return found


def own_files(folder: str | os.PathLike[str], kind: str) -> list[Path]:
    """The top-level entries of ``folder`` that a run of ``kind`` writes (what ``overwrite=true`` may remove)."""
    folder = Path(folder)
    found = {path for pattern in RUN_KINDS[kind].files for path in folder.glob(pattern)}
    if kind == "demos":
        found.update(path for path in _demonstration_files(folder) if path.exists())
    return sorted(found)


def remove_own_files(folder: str | os.PathLike[str], kind: str) -> list[Path]:
    """Removes what a run of ``kind`` wrote into ``folder`` (files the user put there stay); returns the removed."""
    removed = own_files(folder, kind)
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Removes the ``.NAME.*.tmp`` files and folders an interrupted atomic write left in ``folder`` or below.

    Call only while holding the folder's lock: a live writer's temporaries look the same.
    """
    stale = sorted(Path(folder).rglob(TEMPORARY_PATTERN), key=lambda p: len(p.parts), reverse=True)
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
    return stale


class RunLock:
    """An exclusive claim on a run folder, held for the life of a run: a file holding the owner's PID and host.

    A second process is refused with the owner's PID. A lock left by a process that died (kill -9, a crash)
    on this host is recognized by its PID and taken over. The file is created whole: its record is written to
    a private file and hard-linked into place, which fails if the lock exists and works on local and network
    file systems alike (``flock`` does not on every NFS setup); without hard links, ``O_EXCL`` creation.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def acquire(self) -> RunLock:
        """Takes the lock; raises :class:`RunFolderError` naming the holder if a live process has it."""
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start(os.getpid()),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(3):
            try:
                self._create(record)
            except FileExistsError:
                holder = _read_object(self.path)
                if _holder_alive(holder):
                    raise RunFolderError(
                        f"'{self.path.parent}' is in use by process {holder.get('pid')} on {holder.get('host')} "
                        f"(since {holder.get('since')}); wait for it to finish, or delete {self.path.name} there if "
                        "that process is gone") from None
                if not self._remove_stale(holder):
                    raise RunFolderError(f"'{self.path.parent}' was just taken by another process; try again when "
                                         "it has finished") from None
                continue
            self.held = True
            return self
        raise RunFolderError(f"could not take the lock '{self.path}': other processes keep replacing it")

    def _remove_stale(self, holder: dict[str, Any]) -> bool:
        """Removes the lock a dead process left, which reads ``holder``; False if a live one replaced it.

        Two processes may find the same dead lock; the first takes over and creates its own. The lock is
        therefore moved aside (atomic) and looked at before it is deleted: if it is no longer the dead one,
        it is put back, so the second process never deletes the first one's fresh lock.
        """
        aside = self.path.with_name(f"{self.path.name}.{os.getpid()}.{time.monotonic_ns()}{LOCK_RECORD_SUFFIX}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # someone else removed it: try to create ours
        try:
            if _read_object(aside) == holder:
                return True
            try:
                os.link(aside, self.path)  # a live process's lock: back in place
            except FileExistsError:
                pass
            except OSError:  # no hard links here: put it back unless a lock appeared meanwhile
                if not self.path.exists():
                    os.rename(aside, self.path)
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)

    def _create(self, record: dict[str, Any]) -> None:
        """Creates the lock file with its record already in it (``FileExistsError`` if there is one).

        The record is written to a private file first and hard-linked into place, so the lock never exists
        empty: a second process cannot read a lock being created as one left by a dead process.
        """
        fd, tmp = tempfile.mkstemp(prefix=f"{self.path.name}.", suffix=LOCK_RECORD_SUFFIX, dir=self.path.parent)
        try:
            os.fchmod(fd, 0o644)  # readable by others, like the lock itself, so they can tell whose it is
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
            try:
                os.link(tmp, self.path)
            except OSError as err:
                no_links = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV)
                if isinstance(err, FileExistsError) or err.errno not in no_links:
                    raise
                # A file system without hard links: exclusive create, then the record (briefly empty).
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                with os.fdopen(fd, "w") as handle:
                    json.dump(record, handle)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def release(self) -> None:
        """Gives the lock back (removes the file if it is still ours)."""
        if self.held and _read_object(self.path).get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.held = False

    def __enter__(self) -> RunLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID from the owner."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def _holder_alive(holder: dict[str, Any]) -> bool:
    """False only when the lock's owner is known to be gone: a PID of this host that is not running (any more)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
        return bool(holder)  # another host's process cannot be checked from here; an unreadable lock is stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    if fields and fields[0] == "Z":
        return False  # killed, not yet reaped by its parent
    started = holder.get("started")
    return started is None or _process_start(pid) in (None, started)


@dataclass
class RunClaim:
    """A run folder claimed by a script: its lock, and whether an earlier run is being continued.

    Use as a context manager (``with claim_run_dir(...) as claim:``) so the lock is released at the end.
    """

    path: Path
    kind: str
    lock: RunLock
    resumed: bool = False
    fresh: bool = True
    removed: list[Path] = field(default_factory=list)

    def release(self) -> None:
        """Releases the lock."""
        self.lock.release()

    def __enter__(self) -> RunClaim:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, ValueError) and self.fresh:
            self._undo_marks()
        self.release()

    def _undo_marks(self) -> None:
        """Bad input found inside the claim of a new folder: removes the marker and config written so far,
        and the folder if that empties it, as long as nothing else was written."""
        marks = {RUN_FILE, CONFIG_FILE, OVERRIDES_FILE, self.lock.path.name}
        if not self.path.is_dir() or any(p.name not in marks for p in self.path.iterdir()):
            return
        for name in (RUN_FILE, CONFIG_FILE, OVERRIDES_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        self.release()
        with contextlib.suppress(OSError):
            self.path.rmdir()


def claim_run_dir(path: str | os.PathLike[str], kind: str, resume: bool = False, overwrite: bool = False,
                  clear: bool = True) -> RunClaim:
    """Checks that a script of ``kind`` may write into ``path``, locks it, and marks it as ``kind``.

    The one guard every script uses before writing anything:

    - an absent or empty folder is taken;
    - a folder of another kind (a training run given to evaluate, a pipeline given to ``resume=``) or one
      holding files the toolkit did not write is refused, whatever ``overwrite`` says;
    - a folder of the same kind is refused unless ``resume`` (continue it) or ``overwrite`` (with ``clear``,
      the files that kind writes are removed; the user's own files stay);
    - a folder in use by another live process (its lock, or a lock on a folder above it) is refused.

    Stale temporaries of an interrupted write are removed from a continued or replaced folder.

    Args:
        path: The run folder.
        kind: A name of :data:`RUN_KINDS`.
        resume: Continue the run already there.
        overwrite: Replace the run already there.
        clear: With ``overwrite``, remove the old run's files here (False: the caller replaces them itself,
            e.g. a bundle swapped in atomically).

    Raises:
        RunFolderError: Naming the folder, what it holds, and what to do instead.
    """
    spec = RUN_KINDS[kind]
    folder = Path(path)
    contents = check_run_dir(folder, kind, resume, overwrite)
    lock_path = folder.parent / f".{folder.name}{LOCK_FILE}" if kind == "export" else folder / LOCK_FILE
    folder.mkdir(parents=True, exist_ok=True) if kind != "export" else folder.parent.mkdir(parents=True, exist_ok=True)
    lock = RunLock(lock_path).acquire()
    claim = RunClaim(folder.absolute(), kind, lock, resumed=bool(contents) and resume, fresh=not contents)
    try:
        if contents:
            remove_stale_temporaries(folder)
        if contents and overwrite and not resume and clear:
            claim.removed = remove_own_files(folder, kind)
        if kind != "export":
            created = _read_object(folder / RUN_FILE).get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json_atomic(folder / RUN_FILE, {"kind": kind, "script": spec.script, "created": created})
    except BaseException:
        lock.release()
        raise
    return claim


def check_run_dir(path: str | os.PathLike[str], kind: str, resume: bool = False, overwrite: bool = False) -> list[str]:
    """The checks of :func:`claim_run_dir` alone, writing nothing; returns the folder's entries (the lock aside).

    Scripts call it before validating the rest of their input, so a wrong folder is the first thing reported.

    Raises:
        RunFolderError: As :func:`claim_run_dir`.
    """
    spec = RUN_KINDS[kind]
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"output '{folder}' exists and is not a folder")
    _refuse_locked_ancestor(folder)
    contents = _contents(folder)
    found = run_kind(folder) if contents else None
    if resume and not contents:
        raise RunFolderError(f"resume={folder}: there is no run to continue there"
                             f"{'' if folder.is_dir() else ' (the folder does not exist)'}")
    if contents and found is None and (folder / METADATA_FILE).is_file():
        problem = _damage(folder / METADATA_FILE)
        if problem:  # a run whose record was cut short (a kill, a full disk): say so, not "not a run"
            raise RunFolderError(f"'{folder / METADATA_FILE}' is damaged ({problem}); the folder cannot be used as "
                                 "it is")
    if contents and found != kind:
        raise RunFolderError(_wrong_kind_message(folder, spec, found, contents))
    if contents and not (resume or overwrite):
        raise RunFolderError(f"'{folder}' already holds {spec.what}; give resume={folder} to continue it, "
                             "or overwrite=true to replace it (files the toolkit did not write are kept)"
                             if kind == "train" else
                             f"'{folder}' already holds {spec.what}; choose a new folder, or set overwrite=true "
                             "to replace it (files the toolkit did not write are kept)")
    return contents


def check_artifacts(run_dir: str | os.PathLike[str]) -> None:
    """Checks that a run folder's files are whole before anything loads them: JSON files parse, zip archives
    (``model.zip``, checkpoints) pass their CRCs, pickles (``vecnormalize.pkl``, replay buffers) are complete.

    Nothing is unpickled: a pickle's opcodes are only scanned. Damage from a kill or a full disk is caught
    here with the file's name, instead of as a traceback from deep inside SB3 or torch.

    Raises:
        ValueError: ``'run/model.zip' is damaged (...); ...``.
    """
    run_dir = Path(run_dir)
    for path in _artifact_paths(run_dir):
        problem = _damage(path)
        if problem:
            raise ValueError(f"'{path}' is damaged ({problem}); the run folder cannot be used as it is")


def _artifact_paths(run_dir: Path) -> list[Path]:
    names = (METADATA_FILE, RUN_FILE, MODEL_FILE, VECNORMALIZE_FILE)
    paths = [run_dir / name for name in names]
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        paths += [checkpoints / "latest.json", *checkpoints.glob("step_*/*")]
    return [path for path in paths if path.is_file()]


def _damage(path: Path) -> str | None:
    import pickletools
    import zipfile

    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC"
        elif path.suffix == ".pkl":
            for _ in pickletools.genops(path.read_bytes()):
                pass
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile, ValueError, EOFError) as err:
        return str(err) or type(err).__name__
    return None


def _contents(folder: Path) -> list[str]:
    """Entries of ``folder`` other than the lock file (an absent folder has none)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name != LOCK_FILE and not (p.name.startswith(LOCK_FILE) and p.name.endswith(LOCK_RECORD_SUFFIX)))


def _wrong_kind_message(folder: Path, spec: RunKind, found: str | None, contents: list[str]) -> str:
    if found is None:
        shown = ", ".join(contents[:5]) + (", ..." if len(contents) > 5 else "")
        return (f"'{folder}' is not empty and is not {spec.what} (it holds {shown}); {spec.script} writes only "
                "into a new or empty folder, or its own kind of run")
    other = RUN_KINDS[found]
    return (f"'{folder}' holds {other.what} (made by {other.script}), not {spec.what}; choose a new or empty folder "
            f"for {spec.script}")


def _refuse_locked_ancestor(folder: Path) -> None:
    for parent in folder.absolute().parents:
        lock = parent / LOCK_FILE
        if lock.is_file() and _holder_alive(_read_object(lock)):
            holder = _read_object(lock)
            raise RunFolderError(f"'{folder}' lies inside '{parent}', which is in use by process {holder.get('pid')} "
                                 f"on {holder.get('host')}; wait for that run to finish")
