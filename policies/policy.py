"""The policy every method, the evaluator, the exporter and the pipeline share.

A :class:`Policy` is an SB3 model plus its frozen observation normalization plus what its run folder
says about it (:class:`~sim2real.policies.run_info.RunInfo`). It acts on raw observations (one or a
batch), has a ``reset()`` for policies that carry state between steps, exposes the actor's encoder/head
split (through :mod:`sim2real.policies.networks`, the one place that knows SB3's layout), and makes
trainable copies of itself.

Where state lives:

- history policies (``info.env.history > 0``): in the env. ``make_env`` rebuilds the run's
  :class:`~sim2real.randomization.history.HistoryObservation` from the env record, so the policy itself is
  memoryless on the stacked observation; an exported bundle carries the same buffer as an explicit state.
- recurrent policies (``recurrent_ppo``): here, the LSTM's ``(h, c)``; ``act`` carries it from step to step
  and ``reset()`` clears it. A batch is taken as that many parallel episodes.

Example::

    policy = Policy.load("runs/hopper_dr")
    policy.reset()
    action = policy.act(obs)                      # raw observation in, env action out
    student = policy.trainable_copy()             # a fresh model to adapt; the source stays untouched
    features = student.features(student.obs_tensor(observations))
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from torch import nn

from sim2real.policies import networks
from sim2real.policies.run_info import RunInfo, read_run_info

ALGORITHM_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "td3": TD3, "recurrent_ppo": RecurrentPPO}


def log_in_memory(model: BaseAlgorithm) -> BaseAlgorithm:
    """Gives a model without a TensorBoard folder a logger that keeps its values in memory only.

    Left to itself, SB3 configures such a model's logger at every ``learn()`` with an ``SB3-<date>``
    folder that it creates, empty, in the system's temp directory.
    """
    if model.tensorboard_log is None:
        model.set_logger(Logger(folder=None, output_formats=[]))
    return model


@dataclass(frozen=True)
class ObsNormalizer:
    """Frozen VecNormalize observation statistics: ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``."""

    mean: np.ndarray
    var: np.ndarray
    clip: float
    epsilon: float

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip).astype(np.float32)

    @classmethod
    def from_vecnormalize_file(cls, path: str | Path) -> ObsNormalizer:
        """Reads the statistics from a file written by ``VecNormalize.save``."""
        with open(path, "rb") as handle:
            vecnorm = pickle.load(handle)  # trusted: a file this toolkit wrote into its own run folder
        rms = vecnorm.obs_rms
        return cls(mean=np.asarray(rms.mean, np.float64), var=np.asarray(rms.var, np.float64),
                   clip=float(vecnorm.clip_obs), epsilon=float(vecnorm.epsilon))


class Policy:
    """A trained policy acting on raw observations.

    Args:
        model: The SB3 model.
        normalizer: Frozen observation statistics, or None if the policy takes raw observations.
        info: What its run folder says (env, algorithm, provenance).
    """

    def __init__(self, model: BaseAlgorithm, normalizer: ObsNormalizer | None, info: RunInfo) -> None:
        self.model = model
        self.normalizer = normalizer
        self.info = info
        self._lstm_state: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> Policy:
        """Loads the final policy of a run folder (trained or adapted); ``ValueError`` says what is missing."""
        info = read_run_info(run_dir)
        model = ALGORITHM_CLASSES[info.algo].load(info.model_file, device=device)
        stats = info.normalizer_file
        normalizer = ObsNormalizer.from_vecnormalize_file(stats) if stats is not None else None
        return cls(model, normalizer, info)

    # ------------------------------------------------------------------ acting

    @property
    def run_dir(self) -> Path:
        """The run folder it was loaded from."""
        return self.info.run_dir

    @property
    def normalizer_file(self) -> Path | None:
        """The run folder's ``vecnormalize.pkl`` (None if the policy takes raw observations)."""
        return self.info.normalizer_file if self.normalizer is not None else None

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Raw observations as the network takes them (float32)."""
        obs = np.asarray(obs)
        return self.normalizer(obs) if self.normalizer is not None else obs.astype(np.float32)

    @property
    def recurrent(self) -> bool:
        """The policy carries an LSTM state between steps (``recurrent_ppo``)."""
        return networks.is_recurrent(self.model.policy)

    @property
    def history(self) -> int:
        """Observations and actions of history in each observation (0: none); the env carries them."""
        return self.info.env.history

    @property
    def obs_dim(self) -> int:
        """Length of the observation the policy acts on: the env's (stacked) observation, without the
        privileged part an asymmetric critic or a teacher was trained with."""
        return int(self.model.observation_space.shape[0]) - len(self.info.privileged_names)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for one raw observation or a batch, as ``model.predict`` gives them (clipped/unscaled).

        A recurrent policy carries its LSTM state from call to call (a batch of N is N parallel episodes;
        a batch of another size starts new ones). An asymmetric actor-critic takes the env's observation
        (the privileged part only ever reached its critic); a teacher needs ``[obs, privileged]``.
        """
        network_obs = self.normalize(self._with_privileged(np.asarray(obs)))
        if not self.recurrent:
            action, _ = self.model.predict(network_obs, deterministic=deterministic)
            return action
        batch = 1 if network_obs.ndim == 1 else network_obs.shape[0]
        if self._lstm_state is not None and self._lstm_state[0].shape[1] != batch:
            self._lstm_state = None
        action, self._lstm_state = self.model.predict(network_obs, state=self._lstm_state,
                                                      episode_start=np.zeros(batch, bool), deterministic=deterministic)
        return action

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.act(obs)

    def reset(self) -> None:
        """Starts a new episode: clears a recurrent policy's LSTM state (history lives in the env)."""
        self._lstm_state = None

    def _with_privileged(self, obs: np.ndarray) -> np.ndarray:
        """``obs`` as the model's observation space has it: an asymmetric critic's zeros appended."""
        n_privileged = len(self.info.privileged_names)
        if obs.shape[-1] not in (self.obs_dim, self.obs_dim + n_privileged):
            raise ValueError(f"'{self.run_dir}' acts on observations of {self.obs_dim} entries (its env: "
                             f"{self.info.env.name} with history={self.history}), got {obs.shape[-1]}; build its env "
                             "from the run (make_env(policy.info.env, ...)) so the history wrapper is there")
        if n_privileged == 0 or obs.shape[-1] != self.obs_dim:
            return obs
        if self.info.privileged == "actor":
            raise ValueError(f"'{self.run_dir}' is a privileged teacher: it acts on [observation, privileged] "
                             f"({self.obs_dim} + {n_privileged} entries: {', '.join(self.info.privileged_names)}), "
                             "which only a simulator has; distill a student from it (scripts/distill.py)")
        zeros = np.zeros((*obs.shape[:-1], n_privileged))  # read by the critic only: the action does not depend on it
        return np.concatenate([obs, zeros], axis=-1)

    # ------------------------------------------------------------------ the actor's parts

    @property
    def encoder(self) -> nn.Module:
        """The actor's feature encoder (shared with the model: training it trains the policy)."""
        return networks.actor_encoder(self.model.policy)

    @property
    def head(self) -> nn.Module:
        """The actor's action head (shared with the model)."""
        return networks.actor_head(self.model.policy)

    def encoder_layers(self) -> list[nn.Linear]:
        """The encoder's ``Linear`` layers, input side first."""
        return [module for module in self.encoder.modules() if isinstance(module, nn.Linear)]

    @property
    def feature_size(self) -> int:
        """Width of the encoder's output."""
        return self.encoder_layers()[-1].out_features

    def actor_parameters(self) -> list[nn.Parameter]:
        """The parameters that shape the deterministic action (not the critic, not PPO's ``log_std``)."""
        return networks.actor_parameters(self.model.policy)

    def obs_tensor(self, observations: np.ndarray, normalized: bool = False) -> torch.Tensor:
        """Observations as a float32 tensor on the model's device (normalized here unless already)."""
        data = np.asarray(observations, np.float32) if normalized else self.normalize(observations)
        return torch.as_tensor(data, dtype=torch.float32, device=self.model.policy.device)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Encoder features of normalized observations, differentiable."""
        return networks.actor_features(self.model.policy, obs)

    def network_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action of normalized observations in the network's own space (before SB3's
        clipping or unscaling), differentiable."""
        return self.model.policy._predict(obs, deterministic=True)

    def to_network_space(self, actions: np.ndarray) -> np.ndarray:
        """Env actions mapped into the space the network outputs (``[-1, 1]`` for squashed policies)."""
        if self.model.policy.squash_output:
            return np.clip(self.model.policy.scale_action(np.asarray(actions, np.float64)), -1.0, 1.0)
        return np.asarray(actions)

    def sync_target_actor(self) -> None:
        """Copies the actor into TD3's target actor after the actor was trained outside SB3's loop."""
        networks.sync_target_actor(self.model.policy)

    # ------------------------------------------------------------------ copies

    def trainable_copy(self, env: Any = None, device: str | None = None, **overrides: Any) -> Policy:
        """An independent copy of the model (weights, optimizer state, hyperparameters) to adapt.

        Args:
            env: The (vectorized) env the copy will train on, if any.
            device: Torch device of the copy (default: the model's).
            overrides: Model attributes to replace at load (``learning_rate``, ``n_steps``, ...).
        """
        buffer = io.BytesIO()
        self.model.save(buffer)
        buffer.seek(0)
        device = device or str(self.model.device)
        model = type(self.model).load(buffer, env=env, device=device, **overrides)
        return Policy(log_in_memory(model), self.normalizer, self.info)


def load_policy(run_dir: str | Path, device: str = "cpu") -> Policy:
    """Loads the final policy of a run folder (:meth:`Policy.load`)."""
    return Policy.load(run_dir, device=device)
