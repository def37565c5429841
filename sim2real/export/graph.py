"""The exported function: raw observation -> deterministic action, exactly as ``Policy.act`` computes it.

``Policy.act`` normalizes the observation in float64 (VecNormalize statistics), casts it to float32,
runs the actor, then ``predict`` post-processes the action outside the network: PPO clips it to the
action bounds; SAC and TD3 (tanh-squashed actors) map [-1, 1] onto [low, high]. :class:`DeployableActor`
puts all three steps into one torch module, so the ONNX and TorchScript graphs traced from it take raw
observations and return the actions the robot should receive.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from sim2real.policies import networks
from sim2real.policies.policy import ObsNormalizer, Policy

NORMALIZATION_FORMULA = "clip((obs - mean) / sqrt(var + epsilon), -clip, clip), in float64, then cast to float32"
CLIP_FORMULA = "clip(network_output, low, high)"
UNSCALE_FORMULA = "low + 0.5 * (tanh_output + 1) * (high - low)"


@dataclass(frozen=True)
class ActionProcessing:
    """What happens to the network's output before it reaches the robot (as SB3 ``predict`` does it).

    Attributes:
        kind: ``clip`` (PPO: clip to the bounds) or ``tanh_unscale`` (SAC/TD3: map [-1, 1] to [low, high]).
        low: Lower action bounds.
        high: Upper action bounds.
    """

    kind: str
    low: np.ndarray
    high: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """The ``action_processing`` entry of ``bundle.json``."""
        formula = CLIP_FORMULA if self.kind == "clip" else UNSCALE_FORMULA
        return {"in_graph": True, "kind": self.kind, "low": self.low.tolist(), "high": self.high.tolist(), "formula": formula}


class DeployableActor(nn.Module):
    """Raw observations ``(N, obs_dim)`` float64 -> actions ``(N, action_dim)`` float32.

    Args:
        body: The actor network on normalized float32 observations (ends in tanh for squashed policies).
        obs_dim: Length of one observation.
        normalizer: Frozen observation statistics, or None if the run did not normalize.
        processing: The action post-processing of SB3 ``predict``.
    """

    def __init__(self, body: nn.Module, obs_dim: int, normalizer: ObsNormalizer | None,
                 processing: ActionProcessing) -> None:
        super().__init__()
        self.body = body
        self.normalize = normalizer is not None
        self.unscale = processing.kind == "tanh_unscale"
        # one Clip node instead of Max + Min when every action dimension has the same bounds (same result)
        self.uniform_bounds = bool(np.all(processing.low == processing.low[0]) and np.all(processing.high == processing.high[0]))
        self.low_value, self.high_value = float(processing.low[0]), float(processing.high[0])
        mean = normalizer.mean if normalizer is not None else np.zeros(obs_dim)
        std = np.sqrt(normalizer.var + normalizer.epsilon) if normalizer is not None else np.ones(obs_dim)
        self.obs_clip = float(normalizer.clip) if normalizer is not None else 0.0
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(mean, np.float64)))
        self.register_buffer("obs_std", torch.as_tensor(np.asarray(std, np.float64)))
        self.register_buffer("action_low", torch.as_tensor(np.asarray(processing.low, np.float32)))
        self.register_buffer("action_high", torch.as_tensor(np.asarray(processing.high, np.float32)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions for a batch of raw observations."""
        x = obs
        if self.normalize:
            x = torch.clamp((x - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        actions = self.body(x.to(torch.float32))
        if self.unscale:
            return self.action_low + 0.5 * (actions + 1.0) * (self.action_high - self.action_low)
        if self.uniform_bounds:
            return torch.clamp(actions, self.low_value, self.high_value)
        return torch.minimum(torch.maximum(actions, self.action_low), self.action_high)


def actor_body(policy: BasePolicy) -> nn.Module:
    """A copy of the deterministic actor of an SB3 PPO, SAC or TD3 policy, in eval mode, gradients off.

    Raises:
        ValueError: The policy is of a kind this exporter does not know.
    """
    body = copy.deepcopy(networks.actor_body(policy)).cpu().eval()
    if isinstance(body.features_extractor, FlattenExtractor):
        body.features_extractor = nn.Identity()  # flattening (N, obs_dim) is the identity: one node less
    for parameter in body.parameters():
        parameter.requires_grad_(False)
    return body


def action_processing(policy: BasePolicy) -> ActionProcessing:
    """The post-processing SB3 ``predict`` applies to ``policy``'s actions (Box action spaces only)."""
    space = policy.action_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"cannot export a policy with action space {space}; only 1-D Box action spaces are supported")
    kind = "tanh_unscale" if policy.squash_output else "clip"
    return ActionProcessing(kind=kind, low=np.asarray(space.low, np.float32), high=np.asarray(space.high, np.float32))


def build_deployable(policy: Policy) -> DeployableActor:
    """The exportable module for a loaded run policy (normalization and action processing inside).

    Raises:
        ValueError: Non-Box or non-flat spaces, or an unknown policy class.
    """
    sb3_policy = policy.model.policy
    obs_space = sb3_policy.observation_space
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"cannot export a policy with observation space {obs_space}; only 1-D Box spaces are supported")
    obs_dim = int(obs_space.shape[0])
    if policy.normalizer is not None and policy.normalizer.mean.shape != (obs_dim,):
        raise ValueError(f"normalization statistics of shape {policy.normalizer.mean.shape} do not match the "
                         f"observation space {obs_space.shape}")
    return DeployableActor(actor_body(sb3_policy), obs_dim, policy.normalizer, action_processing(sb3_policy)).eval()
