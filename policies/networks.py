"""Policy architectures handed to stable-baselines3 as ``policy_kwargs``, and the actor's split.

SB3's MLP policies are a feature encoder (``mlp_extractor.policy_net`` for PPO; the first layers of
``actor.latent_pi`` / ``actor.mu`` for SAC and TD3) followed by an action head, so layers can be frozen
and features aligned by the transfer methods; the functions at the end of this module are the only
code that knows that layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


@dataclass(frozen=True)
class NetworkConfig:
    """MLP sizes and activation.

    Attributes:
        pi: Hidden layer sizes of the actor.
        vf: Hidden layer sizes of the critic (value function for PPO, Q-function for SAC/TD3).
        activation: One of ``tanh``, ``relu``, ``elu``, ``gelu``.
        extra: Further ``policy_kwargs`` passed unchanged (e.g. ``log_std_init``, ``ortho_init``).
    """

    pi: tuple[int, ...] = (64, 64)
    vf: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{self.activation}'; known: {', '.join(ACTIVATIONS)}")
        for name in ("pi", "vf"):
            sizes = getattr(self, name)
            if not sizes or any(int(s) <= 0 for s in sizes):
                raise ValueError(f"network {name}={list(sizes)} must be a non-empty list of positive layer sizes")


def policy_kwargs(config: NetworkConfig, algo: str) -> dict[str, Any]:
    """Builds SB3 ``policy_kwargs`` for ``algo`` (``ppo`` takes ``vf``; ``sac``/``td3`` take ``qf``)."""
    critic_key = "vf" if algo == "ppo" else "qf"
    return {
        "net_arch": {"pi": list(config.pi), critic_key: list(config.vf)},
        "activation_fn": ACTIVATIONS[config.activation],
        **config.extra,
    }


# ----------------------------------------------------------------------------- the actor's split
# The one place that knows how an SB3 actor is laid out:
#
# | algorithm | encoder (observation -> features) | head (features -> deterministic action) |
# |---|---|---|
# | PPO | ``policy.mlp_extractor.policy_net`` | ``policy.action_net`` (Gaussian mean) |
# | SAC | ``actor.latent_pi`` | ``actor.mu`` (then ``tanh``) |
# | TD3 | ``actor.mu`` without its last ``Linear`` + ``Tanh`` | those last two modules |
#
# Observation feature extractors (``Flatten`` for MLP policies) have no weights and stay outside.


def _kind(policy: BasePolicy) -> str:
    for cls, name in ((ActorCriticPolicy, "ppo"), (SACPolicy, "sac"), (TD3Policy, "td3")):
        if isinstance(policy, cls):
            return name
    raise ValueError(f"unsupported policy class {type(policy).__name__}; supported: ActorCriticPolicy (PPO), "
                     "SACPolicy, TD3Policy")


def actor_encoder(policy: BasePolicy) -> nn.Module:
    """The actor's feature encoder (the layers before the action head), sharing the policy's modules."""
    kind = _kind(policy)
    if kind == "ppo":
        return policy.mlp_extractor.policy_net
    if kind == "sac":
        return policy.actor.latent_pi
    return policy.actor.mu[:-2]  # a Sequential view sharing the modules


def actor_head(policy: BasePolicy) -> nn.Module:
    """The actor's action head (the layers after the encoder), sharing the policy's modules."""
    kind = _kind(policy)
    if kind == "ppo":
        return policy.action_net
    if kind == "sac":
        return policy.actor.mu
    return policy.actor.mu[-2:]


def actor_features(policy: BasePolicy, obs: torch.Tensor) -> torch.Tensor:
    """Encoder features of (normalized) observations, differentiable."""
    if _kind(policy) == "ppo":
        return policy.mlp_extractor.forward_actor(policy.extract_features(obs, policy.pi_features_extractor))
    actor = policy.actor
    return actor_encoder(policy)(actor.extract_features(obs, actor.features_extractor))


def actor_parameters(policy: BasePolicy) -> list[nn.Parameter]:
    """The parameters that shape the deterministic action (PPO: feature extractor, policy MLP, action head;
    SAC/TD3: the actor). The critic and PPO's ``log_std`` are left out."""
    if _kind(policy) != "ppo":
        return list(policy.actor.parameters())
    critic = ("value_net.", "mlp_extractor.value_net.", "vf_features_extractor.")
    return [p for name, p in policy.named_parameters() if not name.startswith(critic) and name != "log_std"]


def sync_target_actor(policy: BasePolicy) -> None:
    """Copies the actor into TD3's target actor after the actor was changed outside SB3's training loop."""
    actor_target = getattr(policy, "actor_target", None)
    if actor_target is not None:
        actor_target.load_state_dict(policy.actor.state_dict())


class ActorBody(nn.Module):
    """Features extractor, then layers, then an optional tanh: the deterministic actor as one module."""

    def __init__(self, features_extractor: nn.Module, layers: nn.Module, tanh: bool) -> None:
        super().__init__()
        self.features_extractor = features_extractor
        self.layers = layers
        self.tanh = tanh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic action in the network's own space (``[-1, 1]`` for squashed policies)."""
        out = self.layers(self.features_extractor(x))
        return torch.tanh(out) if self.tanh else out


def actor_body(policy: BasePolicy) -> ActorBody:
    """The deterministic actor of an SB3 PPO, SAC or TD3 policy as one module (sharing its layers)."""
    kind = _kind(policy)
    if kind == "ppo":
        return ActorBody(policy.pi_features_extractor, nn.Sequential(policy.mlp_extractor.policy_net, policy.action_net),
                         tanh=bool(policy.squash_output))
    if kind == "sac":
        return ActorBody(policy.actor.features_extractor, nn.Sequential(policy.actor.latent_pi, policy.actor.mu), tanh=True)
    return ActorBody(policy.actor.features_extractor, policy.actor.mu, tanh=False)  # TD3's mu ends in Tanh
