"""How a sampled value combines with a parameter's nominal value. Always from the nominal: never compounds."""

from __future__ import annotations

import numpy as np

OPERATIONS = ("absolute", "scale", "add")


def apply_operation(operation: str, nominal: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Returns the new values: ``sample`` (absolute), ``nominal * sample`` (scale) or ``nominal + sample`` (add)."""
    if operation == "scale":
        return nominal * sample
    if operation == "add":
        return nominal + sample
    if operation == "absolute":
        return np.broadcast_to(sample, nominal.shape).astype(np.float64)
    raise ValueError(f"unknown operation '{operation}'; known: {', '.join(OPERATIONS)}")


def operation_range(operation: str, nominal: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise smallest and largest values the operation can produce for samples in ``[low, high]``."""
    with np.errstate(invalid="ignore"):  # inf * 0 for a zero nominal under an unbounded scale
        ends = np.stack([apply_operation(operation, nominal, np.full_like(nominal, low)),
                         apply_operation(operation, nominal, np.full_like(nominal, high))])
    ends = np.where(np.isnan(ends), 0.0, ends)
    return ends.min(axis=0), ends.max(axis=0)
