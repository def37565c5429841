"""Checks of user-given values, with one wording for every bad-input message.

Every check names the value as the user wrote it and what would be valid, and returns the value in
its canonical type, so callers write ``self.epochs = require_int("epochs", epochs, minimum=1)``:

| check | message |
|---|---|
| :func:`require_int` | ``epochs=0 must be an integer >= 1`` |
| :func:`require_float` | ``learning_rate=-1.0 must be a number > 0`` |
| :func:`require_choice` | ``init='best' is not valid; valid: source, scratch`` |
| :func:`require_bool` | ``plots='maybe' must be true or false`` |

Only the standard library and numpy are imported, so the torch-free deployment runtime can use it.

Example:
    >>> require_int("epochs", 3, minimum=1)
    3
    >>> require_float("holdout", 0.2, low=0.0, high=1.0, low_open=True, high_open=True)
    0.2
    >>> require_int("epochs", 0, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: epochs=0 must be an integer >= 1
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, False for bools (``True`` is not a count)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """True for ints and floats (Python or numpy), False for bools and strings."""
    return is_int(value) or isinstance(value, (float, np.floating))


def require_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
                optional: bool = False, whole_float: bool = False) -> Any:
    """``value`` as an ``int`` if it is an integer in ``[minimum, maximum]`` (``None`` too when ``optional``).

    With ``whole_float``, a float with no fractional part (``1e5``, as YAML and Hydra read it) counts too.

    Raises:
        ValueError: ``{name}={value!r} must be an integer >= {minimum}`` (or the range / ``or null``).
    """
    if optional and value is None:
        return None
    if whole_float and isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if not is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name}={value!r} must be {_int_text(minimum, maximum)}{' or null' if optional else ''}")
    return int(value)


def _int_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def require_float(name: str, value: Any, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False, optional: bool = False) -> Any:
    """``value`` as a finite ``float`` within the given bounds (``None`` too when ``optional``).

    Args:
        name: How the user wrote the setting.
        value: The value given.
        low: Lower bound (None: unbounded).
        high: Upper bound (None: unbounded).
        low_open: Exclude ``low`` itself (``> low`` instead of ``>= low``).
        high_open: Exclude ``high`` itself.
        optional: Accept ``None``.

    Raises:
        ValueError: ``{name}={value!r} must be a number > 0`` (or ``in [a, b)`` and so on).
    """
    if optional and value is None:
        return None
    ok = is_number(value) and math.isfinite(float(value))
    if ok and low is not None:
        ok = float(value) > low if low_open else float(value) >= low
    if ok and high is not None:
        ok = float(value) < high if high_open else float(value) <= high
    if not ok:
        raise ValueError(f"{name}={value!r} must be {_float_text(low, high, low_open, high_open)}"
                         f"{' or null' if optional else ''}")
    return float(value)


def _float_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"a number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"a number {'<' if high_open else '<='} {high:g}"
    return "a finite number"


def require_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``.

    Raises:
        ValueError: ``{name}={value!r} is not valid; valid: a, b, c``.
    """
    valid = list(choices)
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; valid: {', '.join(map(str, valid))}")
    return value


def require_bool(name: str, value: Any) -> bool:
    """``value`` if it is a real bool (``'maybe'``, ``1`` and ``'yes'`` are not).

    Raises:
        ValueError: ``{name}={value!r} must be true or false``.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} must be true or false")
    return bool(value)


def require_known_keys(what: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Rejects keys outside ``valid``.

    Raises:
        ValueError: ``{what}: unknown keys ['x']; valid: a, b``.
    """
    valid_set = set(valid)
    unknown = sorted(set(given) - valid_set)
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; valid: {', '.join(sorted(valid_set))}")
