"""Every registered env passes Gymnasium's env checker with randomization (and effects) on."""

from __future__ import annotations

import pytest
from gymnasium.utils.env_checker import check_env

from sim2real.envs import ENVS
from sim2real.presets import load_preset
from sim2real.randomization import DynamicsSpec, make_env


@pytest.mark.parametrize("name", ENVS.names())
def test_check_env_with_randomization(name: str) -> None:
    spec = DynamicsSpec.from_dict(load_preset("randomization", "wide"))
    env = make_env(name, randomization=spec)
    check_env(env.unwrapped, skip_render_check=True)
    check_env(env, skip_render_check=True)
    env.close()


def test_check_env_with_target_and_latency() -> None:
    env = make_env("hopper", target=DynamicsSpec.from_dict(load_preset("target", "worn_robot")),
                   randomization=DynamicsSpec.from_dict(load_preset("randomization", "latency")))
    check_env(env, skip_render_check=True)
    env.close()
