"""Policies: the :class:`Policy` every method shares, network builders for stable-baselines3, and the
torch-free deployment runtime (``sim2real.policies.deploy``).

``Policy``, ``RunInfo`` and friends load lazily, so ``import sim2real.policies.deploy`` never imports
torch or stable-baselines3.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ALGORITHM_CLASSES": "sim2real.policies.policy",
    "ObsNormalizer": "sim2real.policies.policy",
    "Policy": "sim2real.policies.policy",
    "load_policy": "sim2real.policies.policy",
    "RunInfo": "sim2real.policies.run_info",
    "read_run_info": "sim2real.policies.run_info",
    "read_metadata": "sim2real.policies.run_info",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim2real.policies' has no attribute '{name}'")
