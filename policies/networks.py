"""Policy architectures handed to stable-baselines3 as ``policy_kwargs``, and the actor's split.

SB3's MLP policies are a feature encoder (``mlp_extractor.policy_net`` for PPO; the first layers of
``actor.latent_pi`` / ``actor.mu`` for SAC and TD3) followed by an action head, so layers can be frozen
and features aligned by the transfer methods; the functions at the end of this module are the only
code that knows that layout. Two architectures of our own live here too: the asymmetric actor-critic
(:class:`AsymmetricActorCriticPolicy`: the critic sees privileged observations the actor does not) and
the recurrent actor of sb3-contrib's RecurrentPPO as one stateful module (:class:`RecurrentActorBody`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor
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
    """Builds SB3 ``policy_kwargs`` for ``algo`` (``ppo``/``recurrent_ppo`` take ``vf``; ``sac``/``td3`` ``qf``).

    For ``recurrent_ppo`` the LSTM's settings (``lstm_hidden_size``, ``n_lstm_layers``, ``shared_lstm``,
    ``enable_critic_lstm``) go in ``extra``.
    """
    critic_key = "vf" if algo in ("ppo", "recurrent_ppo") else "qf"
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
    classes = ((RecurrentActorCriticPolicy, "recurrent_ppo"), (ActorCriticPolicy, "ppo"), (SACPolicy, "sac"),
               (TD3Policy, "td3"))
    for cls, name in classes:
        if isinstance(policy, cls):
            return name
    raise ValueError(f"unsupported policy class {type(policy).__name__}; supported: ActorCriticPolicy (PPO), "
                     "RecurrentActorCriticPolicy (RecurrentPPO), SACPolicy, TD3Policy")


def is_recurrent(policy: BasePolicy) -> bool:
    """The actor carries an LSTM state between steps (sb3-contrib's RecurrentPPO)."""
    return _kind(policy) == "recurrent_ppo"


def actor_obs_dim(policy: BasePolicy) -> int:
    """Length of the observation part the actor reads: the whole observation, except for an asymmetric
    actor-critic, whose actor reads only the part before the privileged observation."""
    if isinstance(policy, AsymmetricActorCriticPolicy):
        return policy.actor_obs_dim
    return int(gym.spaces.utils.flatdim(policy.observation_space))


def actor_encoder(policy: BasePolicy) -> nn.Module:
    """The actor's feature encoder (the layers before the action head), sharing the policy's modules."""
    kind = _kind(policy)
    if kind in ("ppo", "recurrent_ppo"):
        return policy.mlp_extractor.policy_net  # recurrent: the layers after the LSTM
    if kind == "sac":
        return policy.actor.latent_pi
    return policy.actor.mu[:-2]  # a Sequential view sharing the modules


def actor_head(policy: BasePolicy) -> nn.Module:
    """The actor's action head (the layers after the encoder), sharing the policy's modules."""
    kind = _kind(policy)
    if kind in ("ppo", "recurrent_ppo"):
        return policy.action_net
    if kind == "sac":
        return policy.actor.mu
    return policy.actor.mu[-2:]


def actor_features(policy: BasePolicy, obs: torch.Tensor) -> torch.Tensor:
    """Encoder features of (normalized) observations, differentiable (memoryless actors only)."""
    _require_memoryless(policy, "encoder features of single observations")
    if _kind(policy) == "ppo":
        return policy.mlp_extractor.forward_actor(policy.extract_features(obs, policy.pi_features_extractor))
    actor = policy.actor
    return actor_encoder(policy)(actor.extract_features(obs, actor.features_extractor))


def actor_parameters(policy: BasePolicy) -> list[nn.Parameter]:
    """The parameters that shape the deterministic action (PPO: feature extractor, policy MLP, action head;
    SAC/TD3: the actor; RecurrentPPO: the actor's LSTM too). The critic and PPO's ``log_std`` are left out."""
    if _kind(policy) not in ("ppo", "recurrent_ppo"):
        return list(policy.actor.parameters())
    critic = ("value_net.", "mlp_extractor.value_net.", "vf_features_extractor.", "lstm_critic.", "critic.")
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
    """The deterministic actor of an SB3 PPO, SAC or TD3 policy as one module (sharing its layers).

    An asymmetric actor-critic's body reads the actor's part of the observation (its features extractor
    slices it off the privileged part, so it takes either). RecurrentPPO: see :func:`recurrent_actor_body`.
    """
    kind = _kind(policy)
    _require_memoryless(policy, "a memoryless actor body")
    if kind == "ppo":
        return ActorBody(policy.pi_features_extractor, nn.Sequential(policy.mlp_extractor.policy_net, policy.action_net),
                         tanh=bool(policy.squash_output))
    if kind == "sac":
        return ActorBody(policy.actor.features_extractor, nn.Sequential(policy.actor.latent_pi, policy.actor.mu), tanh=True)
    return ActorBody(policy.actor.features_extractor, policy.actor.mu, tanh=False)  # TD3's mu ends in Tanh


def _require_memoryless(policy: BasePolicy, what: str) -> None:
    if is_recurrent(policy):
        raise ValueError(f"a recurrent (LSTM) policy has no {what}: its action depends on the LSTM state "
                         "(use recurrent_actor_body, or Policy.act, which carries the state)")


# ----------------------------------------------------------------------------- recurrent actor
# RecurrentPPO's deterministic actor: features extractor -> ``lstm_actor`` -> ``mlp_extractor.policy_net``
# -> ``action_net``. Its state is the LSTM's ``(h, c)``, each ``(n_layers, batch, hidden)``, float32.


class RecurrentActorBody(nn.Module):
    """One step of RecurrentPPO's deterministic actor: ``(obs, h, c) -> (action, h', c')``.

    ``obs`` is ``(N, obs_dim)`` normalized float32; ``h``/``c`` are ``(n_layers, N, hidden)``. Zero states
    start an episode (what SB3 does at an episode start).
    """

    def __init__(self, features_extractor: nn.Module, lstm: nn.LSTM, layers: nn.Module) -> None:
        super().__init__()
        self.features_extractor = features_extractor
        self.lstm = lstm
        self.layers = layers

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The action in the network's space and the next LSTM state."""
        out, (h_next, c_next) = self.lstm(self.features_extractor(x).unsqueeze(0), (h, c))
        return self.layers(out.squeeze(0)), h_next, c_next


def recurrent_actor_body(policy: BasePolicy) -> RecurrentActorBody:
    """The deterministic actor of a RecurrentPPO policy as one stateful module (sharing its layers)."""
    if not is_recurrent(policy):
        raise ValueError(f"{type(policy).__name__} is not recurrent; use actor_body")
    return RecurrentActorBody(policy.pi_features_extractor, policy.lstm_actor,
                              nn.Sequential(policy.mlp_extractor.policy_net, policy.action_net))


def lstm_state_shape(policy: BasePolicy) -> tuple[int, int]:
    """``(n_layers, hidden)`` of a recurrent actor's LSTM."""
    lstm = policy.lstm_actor
    return int(lstm.num_layers), int(lstm.hidden_size)


# ----------------------------------------------------------------------------- asymmetric actor-critic


class ActorSlice(BaseFeaturesExtractor):
    """Keeps the first ``actor_obs_dim`` entries of the observation: the actor's part, without the
    privileged observation appended after it."""

    def __init__(self, observation_space: gym.spaces.Box, actor_obs_dim: int) -> None:
        super().__init__(observation_space, actor_obs_dim)
        self.actor_obs_dim = actor_obs_dim

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """The actor's part of a batch of observations."""
        return observations[:, :self.actor_obs_dim]


class AsymmetricActorCriticPolicy(ActorCriticPolicy):
    """PPO's MLP actor-critic where the critic sees the whole observation (including the privileged
    observation appended at its end) and the actor only its first ``actor_obs_dim`` entries.

    The privileged part (e.g. the episode's randomized masses) makes the value estimate better under wide
    randomization; the actor never depends on it, so the policy deploys without it.

    Args:
        actor_obs_dim: Length of the actor's part of the observation.
        kwargs: As :class:`~stable_baselines3.common.policies.ActorCriticPolicy` (``share_features_extractor``
            is always False).
    """

    def __init__(self, *args: Any, actor_obs_dim: int, **kwargs: Any) -> None:
        self.actor_obs_dim = int(actor_obs_dim)
        kwargs["share_features_extractor"] = False
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        full_dim = self.features_dim
        if not 0 < self.actor_obs_dim < full_dim:
            raise ValueError(f"actor_obs_dim={self.actor_obs_dim} must be in [1, {full_dim - 1}] for an observation "
                             f"of {full_dim} entries (the rest is the critic's privileged part)")
        self.pi_features_extractor = ActorSlice(self.observation_space, self.actor_obs_dim)
        self.features_extractor = self.pi_features_extractor
        extractor = MlpExtractor(self.actor_obs_dim, net_arch=self.net_arch, activation_fn=self.activation_fn,
                                 device=self.device)
        extractor.value_net = MlpExtractor(full_dim, net_arch=self.net_arch, activation_fn=self.activation_fn,
                                           device=self.device).value_net
        self.mlp_extractor = extractor

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["actor_obs_dim"] = self.actor_obs_dim
        return data


# ----------------------------------------------------------------------------- adaptation module (RMA)


class AdaptationExtractor(BaseFeaturesExtractor):
    """RMA's adaptation module as a student's features extractor (Kumar et al. 2021, "RMA: Rapid Motor
    Adaptation for Legged Robots").

    It maps the student's normalized history observation onto what its privileged teacher's network reads,
    ``[teacher's observation, privileged observation]``, both in the teacher's normalized space: the teacher's
    observation is cut from the history (``teacher_index``) and carried from the student's normalization into
    the teacher's (``scale``, ``shift``, then the teacher's ``clip``, set by :meth:`set_normalization`); the
    privileged part, which only a simulator knows, is estimated from the whole history by an MLP
    (``adaptation``). The teacher's own layers follow, so the student acts as the teacher would on the robot
    it inferred from how the robot responded.

    Args:
        observation_space: The student's (history) observation space.
        teacher_index: Entries of the student's observation that make up the teacher's own observation.
        privileged_dim: Length of the privileged observation.
        hidden: Hidden layer sizes of the adaptation MLP.
        activation: Its activation (a key of ``ACTIVATIONS``).
    """

    def __init__(self, observation_space: gym.spaces.Box, teacher_index: list[int], privileged_dim: int,
                 hidden: tuple[int, ...] = (256, 128), activation: str = "elu") -> None:
        index = [int(i) for i in teacher_index]
        n_input = int(observation_space.shape[0])
        if not index or min(index) < 0 or max(index) >= n_input:
            raise ValueError(f"teacher_index must pick entries of the {n_input}-entry observation, got {index}")
        if int(privileged_dim) < 1:
            raise ValueError(f"privileged_dim={privileged_dim} must be >= 1: the adaptation module estimates it")
        super().__init__(observation_space, len(index) + int(privileged_dim))
        self.register_buffer("teacher_index", torch.as_tensor(index, dtype=torch.long))
        self.register_buffer("scale", torch.ones(len(index)))
        self.register_buffer("shift", torch.zeros(len(index)))
        self.register_buffer("clip", torch.tensor(torch.finfo(torch.float32).max))
        sizes = [n_input, *(int(h) for h in hidden)]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
        self.adaptation = nn.Sequential(*layers, nn.Linear(sizes[-1], int(privileged_dim)))

    def set_normalization(self, scale: Any, shift: Any, clip: float | None) -> None:
        """How the teacher's observation entries go from the student's normalization to the teacher's:
        ``clip(x * scale + shift, -clip, clip)`` (``clip`` None: no clipping)."""
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self.shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
        self.clip.fill_(torch.finfo(torch.float32).max if clip is None else float(clip))

    def teacher_observation(self, observations: torch.Tensor) -> torch.Tensor:
        """The teacher's own observation, in the teacher's normalized space."""
        picked = torch.index_select(observations, -1, self.teacher_index) * self.scale + self.shift
        return torch.maximum(torch.minimum(picked, self.clip), -self.clip)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """``[teacher's observation, estimated privileged observation]``."""
        return torch.cat([self.teacher_observation(observations), self.adaptation(observations)], dim=-1)
