"""Operations combine a sample with the nominal value; the spec samples through the same functions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sim2real.envs import ParameterSet
from sim2real.randomization import OPERATIONS, CompiledDynamics, DynamicsSpec, apply_operation
from sim2real.randomization.operations import operation_range


def test_each_operation_starts_from_the_nominal() -> None:
    nominal = np.array([2.0, -1.0, 0.0])
    np.testing.assert_array_equal(apply_operation("scale", nominal, np.array([1.5])), [3.0, -1.5, 0.0])
    np.testing.assert_array_equal(apply_operation("add", nominal, np.array([0.5])), [2.5, -0.5, 0.5])
    np.testing.assert_array_equal(apply_operation("absolute", nominal, np.array([4.0])), [4.0, 4.0, 4.0])


def test_unknown_operation_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown operation 'multiply'; known: absolute, scale, add"):
        apply_operation("multiply", np.ones(1), np.ones(1))
    assert OPERATIONS == ("absolute", "scale", "add")


def test_range_orders_the_ends_for_negative_nominals() -> None:
    low, high = operation_range("scale", np.array([-9.81, 2.0]), 0.5, 2.0)
    np.testing.assert_array_equal(low, [-19.62, 1.0])
    np.testing.assert_array_equal(high, [-4.905, 4.0])


@pytest.mark.parametrize("operation", OPERATIONS)
def test_spec_samples_through_the_same_operation(operation: str) -> None:
    env = gym.make("InvertedPendulum-v5")
    params = ParameterSet(env.unwrapped.model, env.unwrapped.data)
    spec = DynamicsSpec.from_dict({"parameters": {"masses": {"op": operation, "dist": "uniform", "low": 1.0, "high": 2.0}}})
    values = CompiledDynamics(spec, params).sample(np.random.default_rng(3))
    idx = params.select("masses")
    draw = np.random.default_rng(3).uniform(1.0, 2.0, len(idx))
    np.testing.assert_array_equal(values[idx], apply_operation(operation, params.nominal[idx], draw))
