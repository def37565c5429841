"""Fixed reference returns: the published pairs, the shift lookup, and the measured ones."""

from __future__ import annotations

import pytest

from sim2real.evaluation.references import NOMINAL, measure_random_return, published_shift, reference_scores
from sim2real.presets import target_spec


@pytest.mark.parametrize(("env", "target", "low", "high"), [
    ("hopper", "low_friction", -26.3360015397715, 3234.3),
    ("hopper", "high_gravity", -26.3360015397715, 3234.3),
    ("walker2d", "low_friction", 10.079455055289959, 4229.348),
    ("walker2d", "high_gravity", 10.079455055289959, 5056.445),
    ("half_cheetah", "low_friction", -280.178953, 7357.0712890625),
    ("half_cheetah", "high_gravity", -280.178953, 9509.15),
    ("ant", "low_friction", -325.6, 8301.338),
    ("ant", "high_gravity", -325.6, 6705.12),
    ("hopper", "heavy", -20.272305, 3234.3),  # not an ODRL shift: D4RL's pair
])
def test_published_pairs(env: str, target: str, low: float, high: float) -> None:
    reference = reference_scores(env, target_spec(target).to_dict())
    assert (reference.random, reference.expert) == (low, high)
    assert not reference.measured and reference.source.startswith(("ODRL", "D4RL"))
    assert reference.normalize(low) == 0.0 and reference.normalize(high) == pytest.approx(100.0)


def test_only_an_exact_published_shift_matches() -> None:
    assert published_shift(target_spec("low_friction").to_dict()) == ("friction", 0.5)
    assert published_shift(target_spec("overloaded").to_dict()) is None
    assert published_shift({"parameters": {"gravity": {"op": "scale", "dist": "uniform", "low": 1, "high": 2}}}) is None
    assert published_shift({"parameters": {"gravity": {"op": "scale", "value": 2.0}}, "effects": {"latency": 2}}) is None
    # A factor ODRL did not publish falls back to the env's nominal pair.
    assert reference_scores("walker2d", {"parameters": {"gravity": {"op": "scale", "value": 3.0}}}).expert == 4592.3


def test_measured_pairs_are_marked_and_reproducible() -> None:
    for env in ("inverted_pendulum", "inverted_double_pendulum"):
        assert NOMINAL[env].measured and "measured" in NOMINAL[env].source
    assert NOMINAL["inverted_pendulum"].expert == 1000.0 and NOMINAL["inverted_double_pendulum"].expert == 9360.0
    assert measure_random_return("inverted_pendulum", episodes=100) == pytest.approx(NOMINAL["inverted_pendulum"].random,
                                                                                    abs=0.01)
