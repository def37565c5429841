"""Demonstration datasets: recording an expert on target dynamics, saving, loading with env checks."""

from sim2real.data.demos import (
    DemoDataset,
    check_compatible,
    collect_demonstrations,
    concatenate,
    describe_spaces,
    load_demonstrations,
    record_expert_demonstrations,
    save_demonstrations,
    sidecar_path,
)

__all__ = [
    "DemoDataset",
    "check_compatible",
    "collect_demonstrations",
    "concatenate",
    "describe_spaces",
    "load_demonstrations",
    "record_expert_demonstrations",
    "save_demonstrations",
    "sidecar_path",
]
