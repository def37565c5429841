"""The asymmetric actor-critic: the critic reads the privileged observation, the actor never does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sim2real.policies import Policy
from sim2real.policies.networks import AsymmetricActorCriticPolicy, actor_obs_dim
from sim2real.training import train
from sim2real.training.config import PolicyConfig
from tests.conftest import tiny_train_config


@pytest.fixture(scope="module")
def asymmetric_policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    config = tiny_train_config("ppo", timesteps=1000, randomization="mass_gain")
    run_dir = tmp_path_factory.mktemp("asymmetric")
    train(replace(config, env=replace(config.env, history=2), policy=PolicyConfig("critic")), run_dir)
    return Policy.load(run_dir)


def test_records_what_the_critic_saw(asymmetric_policy: Policy) -> None:
    info = asymmetric_policy.info
    assert info.privileged == "critic" and info.privileged_names == ("cart_mass", "pole_mass", "slide_gain")
    sb3 = asymmetric_policy.model.policy
    assert isinstance(sb3, AsymmetricActorCriticPolicy)
    assert actor_obs_dim(sb3) == asymmetric_policy.obs_dim == 2 * (4 + 1)
    assert sb3.observation_space.shape == (10 + 3,)


def test_value_reads_the_privileged_part_action_does_not(asymmetric_policy: Policy) -> None:
    sb3 = asymmetric_policy.model.policy
    obs = torch.as_tensor(np.random.default_rng(0).normal(0, 1, size=(16, 13)), dtype=torch.float32)
    other = obs.clone()
    other[:, -3:] = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, size=(16, 3)), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(sb3._predict(obs, deterministic=True), sb3._predict(other, deterministic=True))
        assert not torch.allclose(sb3.predict_values(obs), sb3.predict_values(other))
        _, log_prob, _ = sb3.evaluate_actions(obs, torch.zeros(16, 1))
        _, log_prob_other, _ = sb3.evaluate_actions(other, torch.zeros(16, 1))
    assert torch.equal(log_prob, log_prob_other)


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="has none"):
        replace(tiny_train_config("ppo", randomization="none"), policy=PolicyConfig("critic"))
    with pytest.raises(ValueError, match="needs algo=ppo"):
        replace(tiny_train_config("sac"), policy=PolicyConfig("critic"))
    with pytest.raises(ValueError, match="policy.privileged"):
        PolicyConfig("both")


def test_privileged_noise_is_for_teachers_only() -> None:
    assert PolicyConfig("actor", privileged_noise=0.25).privileged_noise == 0.25
    with pytest.raises(ValueError, match="needs policy.privileged=actor"):
        PolicyConfig("critic", privileged_noise=0.1)
    with pytest.raises(ValueError, match="privileged_noise"):
        PolicyConfig("actor", privileged_noise=-1.0)
