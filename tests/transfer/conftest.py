"""Fixtures shared by the imitation tests (BC, DAgger)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim2real.data.experts import save_lqr_expert
from sim2real.presets import target_spec

TARGET = "high_gravity"


@pytest.fixture(scope="module")
def expert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LQR oracle designed on the target: a perfect, training-free expert. It keeps the pole almost
    exactly upright, so its demonstrations cover a tiny region of the state space (the covariate-shift
    case DAgger is for)."""
    run_dir = tmp_path_factory.mktemp("lqr_expert")
    save_lqr_expert(run_dir, "inverted_pendulum", target_spec(TARGET))
    return run_dir
