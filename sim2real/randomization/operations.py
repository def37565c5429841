"""How a sampled value combines with a parameter's nominal value. Always from the nominal: never compounds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Operation = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(nominal, sample) -> values``."""


def _absolute(nominal: np.ndarray, sample: np.ndarray) -> np.ndarray:
    return np.broadcast_to(sample, nominal.shape).astype(np.float64)


_FUNCTIONS: dict[str, Operation] = {"absolute": _absolute, "scale": np.multiply, "add": np.add}
OPERATIONS = tuple(_FUNCTIONS)


def operation_function(operation: str) -> Operation:
    """The function of an operation: ``sample`` (absolute), ``nominal * sample`` (scale) or ``nominal + sample`` (add).

    Raises:
        ValueError: ``operation`` is not one of :data:`OPERATIONS`; the message lists them.
    """
    if operation not in _FUNCTIONS:
        raise ValueError(f"unknown operation '{operation}'; known: {', '.join(OPERATIONS)}")
    return _FUNCTIONS[operation]


def apply_operation(operation: str, nominal: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Returns the new values of ``nominal`` under ``operation`` with ``sample`` (see :func:`operation_function`)."""
    return operation_function(operation)(nominal, sample)


def operation_range(operation: str, nominal: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise smallest and largest values the operation can produce for samples in ``[low, high]``."""
    with np.errstate(invalid="ignore"):  # inf * 0 for a zero nominal under an unbounded scale
        ends = np.stack([apply_operation(operation, nominal, np.full_like(nominal, low)),
                         apply_operation(operation, nominal, np.full_like(nominal, high))])
    ends = np.where(np.isnan(ends), 0.0, ends)
    return ends.min(axis=0), ends.max(axis=0)
