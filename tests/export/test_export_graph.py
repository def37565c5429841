"""The exported module's pre- and post-processing against the numpy code SB3 and ``Policy.act`` run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sim2real.export import ActionProcessing, DeployableActor
from sim2real.policies import ObsNormalizer

LOW = np.array([-1.0, -2.0, 0.0], np.float32)
HIGH = np.array([1.0, 0.5, 4.0], np.float32)


def _module(kind: str, low: np.ndarray = LOW, high: np.ndarray = HIGH,
            normalizer: ObsNormalizer | None = None) -> tuple[DeployableActor, nn.Module]:
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(5, 3), nn.Tanh()) if kind == "tanh_unscale" else nn.Linear(5, 3)
    return DeployableActor(body.eval(), 5, normalizer, ActionProcessing(kind, low, high)).eval(), body


def _raw(n: int = 200) -> np.ndarray:
    return np.random.default_rng(1).normal(0.0, 5.0, size=(n, 5))


def _body_out(body: nn.Module, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return body(torch.as_tensor(obs, dtype=torch.float32)).numpy()


def _forward(module: DeployableActor, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.as_tensor(obs, dtype=torch.float64)).numpy()


@pytest.mark.parametrize(("low", "high"), [(LOW, HIGH), (np.full(3, -0.5, np.float32), np.full(3, 0.5, np.float32))])
def test_clip_equals_numpy_clip(low: np.ndarray, high: np.ndarray) -> None:
    module, body = _module("clip", low, high)
    obs = _raw()
    expected = np.clip(_body_out(body, obs), low, high)
    assert np.any(expected == low) and np.any(expected == high)  # both bounds are hit
    np.testing.assert_array_equal(_forward(module, obs), expected)


def test_unscale_equals_sb3_unscale_action() -> None:
    module, body = _module("tanh_unscale")
    obs = _raw()
    scaled = _body_out(body, obs)
    expected = LOW + (0.5 * (scaled + 1.0) * (HIGH - LOW))  # BasePolicy.unscale_action
    np.testing.assert_array_equal(_forward(module, obs), expected)


def test_normalization_equals_obs_normalizer() -> None:
    rng = np.random.default_rng(2)
    normalizer = ObsNormalizer(mean=rng.normal(size=5), var=rng.uniform(0.01, 4.0, size=5), clip=3.0, epsilon=1e-8)
    module, body = _module("clip", normalizer=normalizer)
    obs = _raw()
    assert np.any(np.abs(normalizer(obs)) == 3.0)  # the clip is exercised
    expected = np.clip(_body_out(body, normalizer(obs)), LOW, HIGH)
    np.testing.assert_array_equal(_forward(module, obs), expected)
