"""Transitional: the policy moved to :mod:`sim2real.policies` (``Policy``, ``RunInfo``). Removed once every
caller imports from there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim2real.policies.policy import ALGORITHM_CLASSES, ObsNormalizer, Policy, load_policy
from sim2real.policies.run_info import read_metadata, read_run_info

__all__ = ["ALGORITHM_CLASSES", "ObsNormalizer", "Policy", "check_run_dir", "load_policy"]


def check_run_dir(run_dir: str | Path) -> dict[str, Any]:
    """Transitional: use :func:`sim2real.policies.read_run_info`."""
    read_run_info(run_dir)
    return read_metadata(run_dir)
