"""The exported function: raw observation -> deterministic action, exactly as ``Policy.act`` computes it.

``Policy.act`` normalizes the observation in float64 (VecNormalize statistics), casts it to float32,
runs the actor, then ``predict`` post-processes the action outside the network: PPO clips it to the
action bounds; SAC and TD3 (tanh-squashed actors) map [-1, 1] onto [low, high]. :class:`DeployableActor`
puts all three steps into one torch module, so the ONNX and TorchScript graphs traced from it take raw
observations and return the actions the robot should receive.

Policies with memory export with their state explicit, ``(obs, state) -> (action, next_state)``:
:class:`HistoryActor` carries the observation history the training env stacked
(:class:`~sim2real.randomization.history.HistoryObservation`), :class:`RecurrentActor` the LSTM's ``(h, c)``.
Zeros start an episode in both. :class:`StateSpec` is what ``bundle.json`` says about that state.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from sim2real.policies import networks
from sim2real.policies.networks import ActorSlice
from sim2real.policies.policy import ObsNormalizer, Policy
from sim2real.randomization.history import HistoryLayout

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

    state: StateSpec | None = None
    """A memoryless actor has no state."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions for a batch of raw observations."""
        return self.process_actions(self.body(self.normalize_obs(obs)))

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw float64 observations as the network takes them (float32)."""
        x = obs
        if self.normalize:
            x = torch.clamp((x - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        return x.to(torch.float32)

    def process_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """The network's output as the robot receives it (clipped, or unscaled from [-1, 1])."""
        if self.unscale:
            return self.action_low + 0.5 * (actions + 1.0) * (self.action_high - self.action_low)
        if self.uniform_bounds:
            return torch.clamp(actions, self.low_value, self.high_value)
        return torch.minimum(torch.maximum(actions, self.action_low), self.action_high)


@dataclass(frozen=True)
class StateSpec:
    """The state a deployed policy carries between steps (the ``state`` entry of ``bundle.json``).

    Attributes:
        kind: ``history`` (the last observations and actions) or ``lstm`` (an LSTM's hidden and cell state).
        dim: Length of the state of one robot; the graph takes and returns ``(N, dim)``.
        dtype: ``float64`` (history) or ``float32`` (LSTM).
        details: What the state holds and how it is laid out.
    """

    kind: str
    dim: int
    dtype: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``state`` entry of ``bundle.json``."""
        from sim2real.policies.deploy import STATE_INPUT_NAME, STATE_OUTPUT_NAME

        return {"kind": self.kind, "dim": self.dim, "dtype": self.dtype, "input": STATE_INPUT_NAME,
                "output": STATE_OUTPUT_NAME, "initial": "zeros",
                "reset": "feed zeros at every episode start (DeployedPolicy.reset()); then feed back the "
                         f"'{STATE_OUTPUT_NAME}' output of the previous step", **self.details}


class HistoryActor(nn.Module):
    """A history policy with its buffer as explicit state: ``(obs, state) -> (action, next_state)``.

    ``obs`` is the robot's current raw observation ``(N, obs_dim)`` float64; ``state`` is ``(N, state_dim)``
    float64, the stacked observation of :class:`HistoryLayout` without its first block, so the actor's
    input is ``[obs, state]``, exactly what the training env's wrapper built. ``next_state`` shifts ``obs``
    and the action just computed in (oldest entries out).
    """

    def __init__(self, actor: DeployableActor, layout: HistoryLayout) -> None:
        super().__init__()
        self.actor = actor
        self.layout = layout
        n, m, k = layout.obs_dim, layout.action_dim, layout.steps
        self.keep_obs = (k - 2) * n         # observations that stay (o_{t-1} .. o_{t-k+2}); negative: none
        self.actions_at = (k - 1) * n       # where the actions start in the state
        self.keep_actions = (k - 1) * m     # actions that stay (a_{t-1} .. a_{t-k+1})
        self.state = StateSpec("history", layout.state_dim, "float64", {"history": layout.to_dict()})

    def forward(self, obs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The action for the current observation and the state for the next step."""
        action = self.actor(torch.cat([obs, state], dim=1))
        parts = [obs] if self.layout.steps > 1 else []
        if self.keep_obs > 0:
            parts.append(state[:, :self.keep_obs])
        parts.append(action.to(torch.float64))
        if self.keep_actions > 0:
            parts.append(state[:, self.actions_at:self.actions_at + self.keep_actions])
        return action, torch.cat(parts, dim=1)


class RecurrentActor(nn.Module):
    """A recurrent (LSTM) policy with its state explicit: ``(obs, state) -> (action, next_state)``.

    ``state`` is ``(N, 2 * layers * hidden)`` float32: the LSTM's ``h`` then ``c``, each laid out layer
    by layer. Normalization and action processing as :class:`DeployableActor`.
    """

    def __init__(self, actor: DeployableActor, layers: int, hidden: int) -> None:
        super().__init__()
        self.actor = actor  # its body is a RecurrentActorBody
        self.layers, self.hidden = layers, hidden
        self.half = layers * hidden
        self.state = StateSpec("lstm", 2 * self.half, "float32", {"lstm": {
            "layers": layers, "hidden": hidden,
            "layout": "[h, c], each (layers, hidden) flattened layer by layer"}})

    def forward(self, obs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The action for the current observation and the LSTM state for the next step."""
        h = state[:, :self.half].reshape(-1, self.layers, self.hidden).transpose(0, 1).contiguous()
        c = state[:, self.half:].reshape(-1, self.layers, self.hidden).transpose(0, 1).contiguous()
        out, h_next, c_next = self.actor.body(self.actor.normalize_obs(obs), h, c)
        flat = [x.transpose(0, 1).reshape(-1, self.half) for x in (h_next, c_next)]
        return self.actor.process_actions(out), torch.cat(flat, dim=1)


def actor_body(policy: BasePolicy) -> nn.Module:
    """A copy of the deterministic actor of an SB3 PPO, SAC or TD3 policy, in eval mode, gradients off.

    Raises:
        ValueError: The policy is of a kind this exporter does not know.
    """
    module = networks.recurrent_actor_body(policy) if networks.is_recurrent(policy) else networks.actor_body(policy)
    body = copy.deepcopy(module).cpu().eval()
    if isinstance(body.features_extractor, (FlattenExtractor, ActorSlice)):
        # flattening (N, obs_dim) is the identity: one node less; an asymmetric actor's graph takes only
        # the actor's part of the observation, so its slice is the identity too
        body.features_extractor = nn.Identity()
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


def build_deployable(policy: Policy) -> DeployableActor | HistoryActor | RecurrentActor:
    """The exportable module for a loaded run policy (normalization and action processing inside).

    A memoryless policy gives a :class:`DeployableActor` (``obs -> action``); a history policy a
    :class:`HistoryActor` and a recurrent one a :class:`RecurrentActor` (``(obs, state) -> (action,
    next_state)``; ``module.state`` describes the state). An asymmetric actor-critic exports its actor,
    which takes the env's observation without the critic's privileged part.

    Raises:
        ValueError: Non-Box or non-flat spaces, an unknown policy class, or a privileged teacher (it acts
            on observations only a simulator has).
    """
    sb3_policy = policy.model.policy
    obs_space = sb3_policy.observation_space
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"cannot export a policy with observation space {obs_space}; only 1-D Box spaces are supported")
    if policy.info.privileged == "actor":
        raise ValueError(f"'{policy.run_dir}' is a privileged teacher: it acts on privileged observations only a "
                         "simulator has; export a student distilled from it instead (scripts/distill.py)")
    full_dim = int(obs_space.shape[0])
    if policy.normalizer is not None and policy.normalizer.mean.shape != (full_dim,):
        raise ValueError(f"normalization statistics of shape {policy.normalizer.mean.shape} do not match the "
                         f"observation space {obs_space.shape}")
    obs_dim = networks.actor_obs_dim(sb3_policy)
    normalizer = actor_normalizer(policy)
    actor = DeployableActor(actor_body(sb3_policy), obs_dim, normalizer, action_processing(sb3_policy))
    if networks.is_recurrent(sb3_policy):
        return RecurrentActor(actor, *networks.lstm_state_shape(sb3_policy)).eval()
    if policy.history > 0:
        action_dim = int(sb3_policy.action_space.shape[0])
        layout = HistoryLayout(policy.history, obs_dim // policy.history - action_dim, action_dim)
        return HistoryActor(actor.eval(), layout).eval()
    return actor.eval()


def actor_normalizer(policy: Policy) -> ObsNormalizer | None:
    """The observation statistics of the actor's input (an asymmetric actor's part of the observation)."""
    normalizer, n = policy.normalizer, networks.actor_obs_dim(policy.model.policy)
    if normalizer is None or normalizer.mean.shape[0] == n:
        return normalizer
    return ObsNormalizer(mean=normalizer.mean[:n], var=normalizer.var[:n], clip=normalizer.clip,
                         epsilon=normalizer.epsilon)


def graph_inputs(module: nn.Module) -> tuple[int, int]:
    """``(obs_dim, state_dim)`` the exported graph takes (``state_dim`` 0 for a memoryless actor)."""
    if isinstance(module, HistoryActor):
        return module.layout.obs_dim, module.state.dim
    if isinstance(module, RecurrentActor):
        return int(module.actor.obs_mean.shape[0]), module.state.dim
    return int(module.obs_mean.shape[0]), 0
