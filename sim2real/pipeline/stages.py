"""Resumable stages: each writes into its own folder and is skipped on a rerun once complete and valid."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim2real.runs import read_json, sha256_file, write_json_atomic

MARKER = "stage.json"
STARTED = ".stage_started.json"
"""Written when a stage starts: the settings its folder's (partial) files were made with."""
EXTENDABLE = ("timesteps",)
"""Fingerprint entries a rerun may raise and still continue the files there (a training stage trains on)."""
SETTLED_DEFAULTS: dict[str, Any] = {"train_episode_steps": None, "lr_schedule": "constant", "select_episodes": 0,
                                   "nominal_probability": 0.0, "boundary_episodes": "cut"}
"""Settings added after stages were first recorded, with the value that keeps the earlier behaviour. At that
value they are left out of fingerprints (:func:`settled`), and a recorded fingerprint is compared in the same
form, so stages recorded before a setting existed, or while it was written out, still match."""


def settled(fingerprint: Any) -> Any:
    """``fingerprint`` without :data:`SETTLED_DEFAULTS` entries at their defaults, at any depth."""
    if isinstance(fingerprint, dict):
        return {key: settled(value) for key, value in fingerprint.items()
                if not (key in SETTLED_DEFAULTS and value == SETTLED_DEFAULTS[key])}
    if isinstance(fingerprint, list):
        return [settled(value) for value in fingerprint]
    return fingerprint


@dataclass
class Stage:
    """One step of the pipeline.

    Attributes:
        name: Display name (``source``, ``transfer/finetune/seed0``, ...).
        folder: Where its artifacts go (kept after the run).
        cost: Estimated relative cost (e.g. environment steps), for progress and time estimates.
        fingerprint: Everything that determines its output; a change makes the stage run again.
        action: Does the work into ``folder`` and returns a summary (stored in the marker).
        artifacts: Files (relative to ``folder``) that must exist for the stage to count as complete; the
            marker records their sha256, so a file replaced since (by hand, or by a script writing into the
            stage's folder) makes the stage run again.
        inputs: Earlier stages whose artifacts this one reads; a change of their files makes it run again.
    """

    name: str
    folder: Path
    cost: float
    fingerprint: dict[str, Any]
    action: Callable[[Path], dict[str, Any]]
    artifacts: tuple[str, ...] = ()
    inputs: tuple[Stage, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """A hash of the fingerprint."""
        text = json.dumps(self.fingerprint, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def outputs(self) -> dict[str, str | None]:
        """The sha256 of each artifact (None for a missing one)."""
        return {name: _file_digest(self.folder / name) for name in self.artifacts}

    def input_outputs(self) -> dict[str, dict[str, str | None]]:
        """The artifacts' digests of the stages this one reads."""
        return {stage.name: stage.outputs() for stage in self.inputs}

    def is_complete(self) -> bool:
        """True when the marker matches the fingerprint and the artifacts (its own and its inputs') are the
        files it recorded."""
        marker = self.folder / MARKER
        if not marker.is_file():
            return False
        try:
            data = read_json(marker)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        if not isinstance(data, dict):
            return False
        recorded = data.get("fingerprint")
        if data.get("digest") != self.digest and not (
                isinstance(recorded, dict) and settled(_plain(recorded)) == settled(_plain(self.fingerprint))):
            return False
        outputs = self.outputs()
        if None in outputs.values() or data.get("outputs") != outputs:
            return False
        if data.get("inputs", {}) != self.input_outputs():
            return False
        self.summary = data.get("summary", {})
        return True

    def run(self) -> None:
        """Runs the action and writes the completion marker (atomically, last).

        The folder's files are continued (a training stage resumes its checkpoint) only when they were made
        with the same settings, or with fewer timesteps; files made with other settings (another seed,
        algorithm, randomization, ...) are removed first, so that no stage finishes on another's work.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = self.recorded_fingerprint()
        if previous is not None and not _continues(settled(previous), settled(_plain(self.fingerprint))):
            _empty(self.folder)
        write_json_atomic(self.folder / STARTED, {"stage": self.name, "fingerprint": self.fingerprint})
        marker = self.folder / MARKER
        if marker.exists():
            marker.unlink()  # an outdated marker must not vouch for a half-rewritten folder
        start = time.perf_counter()
        self.summary = self.action(self.folder) or {}
        if self.summary.get("wall_time_s") is None:  # a training stage reports its own, summed over resumed segments
            self.summary["wall_time_s"] = round(time.perf_counter() - start, 2)
        write_json_atomic(marker, {"stage": self.name, "digest": self.digest, "fingerprint": self.fingerprint,
                                   "outputs": self.outputs(), "inputs": self.input_outputs(), "summary": self.summary})

    def recorded_fingerprint(self) -> dict[str, Any] | None:
        """The settings the folder's files were made with (its marker's, else its start record's), or None."""
        for name in (MARKER, STARTED):
            try:
                data = read_json(self.folder / name)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(data, dict) and isinstance(data.get("fingerprint"), dict):
                return _plain(data["fingerprint"])
        return None


def _plain(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint as it reads back from JSON (paths and other objects as strings)."""
    return json.loads(json.dumps(fingerprint, sort_keys=True, default=str))


def _continues(previous: Any, current: Any) -> bool:
    """Whether files made with ``previous`` may be continued under ``current``: equal but for
    :data:`EXTENDABLE` entries (at any depth: a baseline's fingerprint holds the source's), which may grow."""
    if isinstance(previous, dict) and isinstance(current, dict):
        if previous.keys() != current.keys():
            return False
        for key, value in previous.items():
            if key in EXTENDABLE and isinstance(value, (int, float)) and isinstance(current[key], (int, float)):
                if current[key] < value:
                    return False
            elif not _continues(value, current[key]):
                return False
        return True
    if isinstance(previous, list) and isinstance(current, list):
        return len(previous) == len(current) and all(_continues(a, b) for a, b in zip(previous, current))
    return previous == current


def _empty(folder: Path) -> None:
    """Removes everything in a stage's folder (made under other settings)."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _file_digest(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


class Progress:
    """Prints the stage, overall percentage, elapsed and estimated remaining time."""

    def __init__(self, stages: Sequence[Stage], printer: Callable[[str], None] = print) -> None:
        self.total = sum(s.cost for s in stages) or 1.0
        self.count = len(stages)
        self.done_cost = 0.0
        self.run_cost = 0.0
        self.start = time.perf_counter()
        self.printer = printer

    def begin(self, index: int, stage: Stage, skipped: bool) -> None:
        elapsed = time.perf_counter() - self.start
        percent = 100.0 * self.done_cost / self.total
        remaining = "?"
        if self.run_cost > 0:
            rate = elapsed / self.run_cost
            remaining = _clock(rate * (self.total - self.done_cost))
        action = "skip (complete)" if skipped else "run"
        self.printer(f"[{index + 1}/{self.count}] {percent:5.1f}% | elapsed {_clock(elapsed)} | remaining ~{remaining} | "
                     f"{action}: {stage.name}")

    def end(self, stage: Stage, skipped: bool) -> None:
        self.done_cost += stage.cost
        if not skipped:
            self.run_cost += stage.cost

    @property
    def elapsed(self) -> float:
        """Seconds since the pipeline started."""
        return time.perf_counter() - self.start


def run_stages(stages: Sequence[Stage], printer: Callable[[str], None] = print) -> Progress:
    """Runs each incomplete stage in order, skipping the complete ones."""
    progress = Progress(stages, printer)
    for index, stage in enumerate(stages):
        skipped = stage.is_complete()
        progress.begin(index, stage, skipped)
        if not skipped:
            stage.run()
        progress.end(stage, skipped)
    printer(f"[done] 100.0% | elapsed {_clock(progress.elapsed)}")
    return progress


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"
