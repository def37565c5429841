"""The actor of an SB3 model seen as a feature encoder followed by an action head.

Fine-tuning freezes encoder layers and DANN aligns encoder features, for PPO, SAC and TD3 alike:

| algorithm | encoder (observation -> features) | head (features -> deterministic action) |
|---|---|---|
| PPO | ``policy.mlp_extractor.policy_net`` | ``policy.action_net`` (Gaussian mean) |
| SAC | ``actor.latent_pi`` | ``actor.mu`` (then ``tanh``) |
| TD3 | ``actor.mu`` without its last ``Linear`` + ``Tanh`` | those last two modules |

Observation feature extractors (``Flatten`` for MLP policies) have no weights and stay outside.
"""

from __future__ import annotations

import torch
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn


def _kind(model: BaseAlgorithm) -> str:
    for cls, name in ((PPO, "ppo"), (SAC, "sac"), (TD3, "td3")):
        if isinstance(model, cls):
            return name
    raise ValueError(f"unsupported model {type(model).__name__}; supported: PPO, SAC, TD3")


def actor_encoder(model: BaseAlgorithm) -> nn.Module:
    """The actor's feature encoder (the layers before the action head)."""
    kind = _kind(model)
    if kind == "ppo":
        return model.policy.mlp_extractor.policy_net
    if kind == "sac":
        return model.actor.latent_pi
    return model.actor.mu[:-2]  # a Sequential view sharing the modules


def actor_head(model: BaseAlgorithm) -> nn.Module:
    """The actor's action head (the layers after the encoder)."""
    kind = _kind(model)
    if kind == "ppo":
        return model.policy.action_net
    if kind == "sac":
        return model.actor.mu
    return model.actor.mu[-2:]


def encoder_linear_layers(model: BaseAlgorithm) -> list[nn.Linear]:
    """The encoder's ``Linear`` layers, input side first."""
    return [module for module in actor_encoder(model).modules() if isinstance(module, nn.Linear)]


def actor_features(model: BaseAlgorithm, obs: torch.Tensor) -> torch.Tensor:
    """Encoder features of (normalized) observations, differentiable."""
    kind = _kind(model)
    if kind == "ppo":
        policy = model.policy
        return policy.mlp_extractor.forward_actor(policy.extract_features(obs, policy.pi_features_extractor))
    actor = model.actor
    return actor_encoder(model)(actor.extract_features(obs, actor.features_extractor))


def deterministic_action(model: BaseAlgorithm, obs: torch.Tensor) -> torch.Tensor:
    """The deterministic action in the policy's own space (before clipping or unscaling), differentiable."""
    return model.policy._predict(obs, deterministic=True)


def feature_size(model: BaseAlgorithm) -> int:
    """Width of the encoder's output."""
    return encoder_linear_layers(model)[-1].out_features


def sync_target_actor(model: BaseAlgorithm) -> None:
    """Copies the actor into TD3's target actor after the actor was changed outside SB3's training loop."""
    if _kind(model) == "td3":
        model.actor_target.load_state_dict(model.actor.state_dict())
