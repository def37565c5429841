"""Policy architectures handed to stable-baselines3 as ``policy_kwargs``.

SB3's MLP policies are a feature encoder (``mlp_extractor.policy_net`` for PPO; the first layers of
``actor.latent_pi`` / ``actor.mu`` for SAC and TD3) followed by an action head, so layers can be frozen
and features aligned by the transfer methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
