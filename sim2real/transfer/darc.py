"""Transfer method ``darc``: domain adaptation with rewards from classifiers (Eysenbach et al., 2021).

Off-dynamics RL: train in the free source simulation, but correct its reward so that transitions the
target would not produce are penalized. Two classifiers tell target transitions from source ones, one
on ``(s, a)`` and one on ``(s, a, s')``; with balanced classes their log-odds give the correction

    delta_r(s, a, s') = logit q(target | s, a, s') - logit q(target | s, a)
                      = log p_target(s' | s, a) - log p_source(s' | s, a),

the log-ratio of the two dynamics (the ``(s, a)`` term removes what the visited states alone reveal).
Training maximizes ``r + penalty * delta_r`` in the source domain, which steers the policy to behaviour
that works the same under both dynamics.

As in ODRL's online-online setting, the target is visited alongside: after every ``source_ratio``
source steps the current policy takes one step on the target, charged to the budget (``rollouts``), so
the source steps are ``source_ratio`` times the budget. The paper's algorithm is SAC; here the
correction is applied to the source run's own algorithm, starting from its weights (SAC or TD3 for an
off-policy source, as in the paper and ODRL; PPO for a PPO source), so the adapted run stays loadable
like every other.

The classifiers see observations and ``s' - s`` standardized with the source transitions' statistics,
plus Gaussian input noise (``input_noise``, the paper's regularizer). Their accuracy on held-out
transitions (every fifth one, never trained on) is reported in the metrics: above chance means the
target's dynamics differ visibly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from torch import nn

from sim2real.policies.policy import Policy
from sim2real.policies.run_info import RunInfo
from sim2real.transfer.base import (
    AdaptedPolicy,
    TransferMethod,
    TransferSetup,
    make_source_env,
    make_target_env,
    register_method,
    set_checked,
)
from sim2real.transfer.budget import BudgetExhausted, TargetBudget
from sim2real.transfer.dann import domain_classifier
from sim2real.validation import require_float, require_int

SUPPORTED_ALGOS = ("ppo", "sac", "td3")
HOLDOUT_EVERY = 5
"""Every fifth transition of each domain is held out of classifier training, to measure accuracy on."""


@dataclass(frozen=True)
class DarcSettings:
    """Settings of DARC.

    Attributes:
        source_ratio: Source (simulation) steps per target step; the run takes ``budget * source_ratio``
            source steps (ODRL's online-online setting uses 10).
        penalty: Weight of the reward correction ``delta_r``.
        warmup_steps: Source steps before the correction is applied (the classifiers train from the start).
        train_every: Source steps between classifier updates.
        classifier_updates: Gradient steps per classifier update.
        batch_size: Transitions of each domain per classifier gradient step.
        hidden: Width of the classifiers' two hidden layers.
        learning_rate: Adam learning rate of the classifiers.
        input_noise: Std of the Gaussian noise added to the classifiers' (standardized) inputs in training.
        clip: The correction is clipped to ``[-clip, clip]`` per step.
        n_envs: Parallel source envs for PPO; None keeps the source's (SAC/TD3 use one).
    """

    source_ratio: int = 10
    penalty: float = 1.0
    warmup_steps: int = 2000
    train_every: int = 500
    classifier_updates: int = 50
    batch_size: int = 128
    hidden: int = 64
    learning_rate: float = 3e-4
    input_noise: float = 0.1
    clip: float = 10.0
    n_envs: int | None = None

    def __post_init__(self) -> None:
        set_checked(
            self,
            source_ratio=require_int("source_ratio", self.source_ratio, minimum=1),
            penalty=require_float("penalty", self.penalty, low=0.0),
            warmup_steps=require_int("warmup_steps", self.warmup_steps, minimum=0),
            train_every=require_int("train_every", self.train_every, minimum=1),
            classifier_updates=require_int("classifier_updates", self.classifier_updates, minimum=1),
            batch_size=require_int("batch_size", self.batch_size, minimum=1),
            hidden=require_int("hidden", self.hidden, minimum=1),
            learning_rate=require_float("learning_rate", self.learning_rate, low=0.0, low_open=True),
            input_noise=require_float("input_noise", self.input_noise, low=0.0),
            clip=require_float("clip", self.clip, low=0.0, low_open=True),
            n_envs=require_int("n_envs", self.n_envs, minimum=1, optional=True),
        )


class TransitionBuffer:
    """Raw ``(s, a, s')`` transitions of one domain, with every ``HOLDOUT_EVERY``-th one held out."""

    def __init__(self) -> None:
        self.train: list[np.ndarray] = []
        self.held_out: list[np.ndarray] = []
        self.count = 0

    def add(self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Stores one transition as a flat ``[s, a, s' - s]`` row; returns the row."""
        row = np.concatenate([np.ravel(obs), np.ravel(action), np.ravel(next_obs) - np.ravel(obs)]).astype(np.float32)
        (self.held_out if self.count % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else self.train).append(row)
        self.count += 1
        return row

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` training rows drawn with replacement."""
        return np.stack([self.train[i] for i in rng.integers(0, len(self.train), size=n)])


class DomainClassifiers(nn.Module):
    """Two MLP classifiers of target vs source: on ``(s, a)`` and on ``(s, a, s' - s)`` (one logit each)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int) -> None:
        super().__init__()
        self.sa_dim = obs_dim + action_dim
        self.sa = domain_classifier(self.sa_dim, hidden)
        self.sas = domain_classifier(self.sa_dim + obs_dim, hidden)

    def logits(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logit q(target | s, a), logit q(target | s, a, s'))`` for standardized ``[s, a, s' - s]`` rows."""
        return self.sa(rows[:, : self.sa_dim]).squeeze(-1), self.sas(rows).squeeze(-1)


class Darc:
    """The classifiers, their input statistics and training, and the reward correction they define."""

    def __init__(self, settings: DarcSettings, obs_dim: int, action_dim: int, seed: int) -> None:
        self.settings = settings
        torch.manual_seed(seed)
        self.classifiers = DomainClassifiers(obs_dim, action_dim, settings.hidden)
        self.optimizer = torch.optim.Adam(self.classifiers.parameters(), lr=settings.learning_rate)
        self.rng = np.random.default_rng(seed)
        self.source, self.target = TransitionBuffer(), TransitionBuffer()
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.updates = 0

    @property
    def ready(self) -> bool:
        """Both domains have training transitions."""
        return bool(self.source.train) and bool(self.target.train)

    def _standardize(self, rows: np.ndarray) -> torch.Tensor:
        assert self.mean is not None and self.std is not None
        return torch.as_tensor((rows - self.mean) / self.std, dtype=torch.float32)

    def train(self) -> None:
        """``classifier_updates`` gradient steps on balanced minibatches of both domains."""
        if not self.ready:
            return
        source_rows = np.stack(self.source.train)
        self.mean, self.std = source_rows.mean(axis=0), source_rows.std(axis=0) + 1e-6
        loss_fn = nn.BCEWithLogitsLoss()
        labels = torch.cat([torch.zeros(self.settings.batch_size), torch.ones(self.settings.batch_size)])
        for _ in range(self.settings.classifier_updates):
            batch = np.concatenate([self.source.sample(self.settings.batch_size, self.rng),
                                    self.target.sample(self.settings.batch_size, self.rng)])
            inputs = self._standardize(batch)
            inputs = inputs + self.settings.input_noise * torch.randn_like(inputs)
            sa, sas = self.classifiers.logits(inputs)
            loss = loss_fn(sa, labels) + loss_fn(sas, labels)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.updates += 1

    def correction(self, rows: np.ndarray) -> np.ndarray:
        """``delta_r`` of ``[s, a, s' - s]`` rows, clipped (0 before the first classifier update)."""
        if self.mean is None:
            return np.zeros(len(rows))
        with torch.no_grad():
            sa, sas = self.classifiers.logits(self._standardize(rows))
        return np.clip((sas - sa).numpy().astype(np.float64), -self.settings.clip, self.settings.clip)

    def accuracy(self) -> dict[str, float | int | None]:
        """Balanced accuracy of both classifiers on the held-out transitions of both domains."""
        if self.mean is None or not self.source.held_out or not self.target.held_out:
            return {"sa_accuracy": None, "sas_accuracy": None, "held_out": 0}
        n = min(len(self.source.held_out), len(self.target.held_out))
        rows = np.concatenate([np.stack(self.source.held_out[:n]), np.stack(self.target.held_out[:n])])
        labels = np.concatenate([np.zeros(n), np.ones(n)])
        with torch.no_grad():
            sa, sas = self.classifiers.logits(self._standardize(rows))
        return {"sa_accuracy": float(np.mean((sa.numpy() > 0) == labels)),
                "sas_accuracy": float(np.mean((sas.numpy() > 0) == labels)), "held_out": int(2 * n)}


class DarcRewardWrapper(gym.Wrapper):
    """Source env that records its transitions for DARC and adds ``penalty * delta_r`` to the reward."""

    def __init__(self, env: gym.Env, darc: Darc, counter: list[int]) -> None:
        super().__init__(env)
        self.darc, self.counter = darc, counter
        self._obs: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = np.asarray(obs)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        assert self._obs is not None
        row = self.darc.source.add(self._obs, np.asarray(action), np.asarray(obs))
        if self.counter[0] >= self.darc.settings.warmup_steps:
            correction = float(self.darc.correction(row[None, :])[0])
            info["darc_correction"] = correction
            reward = float(reward) + self.darc.settings.penalty * correction
        self.counter[0] += 1
        self._obs = np.asarray(obs)
        return obs, reward, terminated, truncated, info


class TargetVisits(BaseCallback):
    """Every ``source_ratio`` source steps, one target step with the current policy; classifier updates."""

    def __init__(self, darc: Darc, target: gym.Env, counter: list[int], seed: int) -> None:
        super().__init__()
        self.darc, self.target, self.counter, self.seed = darc, target, counter, seed
        self.obs: np.ndarray | None = None
        self.episodes = 0
        self.exhausted = False
        self.next_visit = darc.settings.source_ratio
        self.next_training = darc.settings.train_every

    def _normalize(self, obs: np.ndarray) -> np.ndarray:
        normalizer = self.model.get_vec_normalize_env()
        return normalizer.normalize_obs(obs) if normalizer is not None else obs

    def _target_step(self) -> None:
        if self.obs is None:
            self.obs, _ = self.target.reset(seed=self.seed + self.episodes)
        action, _ = self.model.predict(self._normalize(np.asarray(self.obs)[None, :]), deterministic=False)
        obs, _, terminated, truncated, _ = self.target.step(action[0])
        self.darc.target.add(np.asarray(self.obs), np.asarray(action[0]), np.asarray(obs))
        if terminated or truncated:
            self.obs, self.episodes = None, self.episodes + 1
        else:
            self.obs = obs

    def _on_step(self) -> bool:
        while self.counter[0] >= self.next_visit and not self.exhausted:
            try:
                self._target_step()
            except BudgetExhausted:
                self.exhausted = True
            self.next_visit += self.darc.settings.source_ratio
        if self.counter[0] >= self.next_training:
            self.darc.train()
            self.next_training += self.darc.settings.train_every
        return not self.exhausted


@register_method
class DARC(TransferMethod[DarcSettings]):
    """Train in the source domain with a classifier-based reward correction; visit the target 1 step in N."""

    name = "darc"
    Settings = DarcSettings

    def validate(self, setup: TransferSetup, source: RunInfo) -> None:
        """Refuses algorithms the method cannot continue (recurrent policies)."""
        if source.algo not in SUPPORTED_ALGOS:
            raise ValueError(f"method 'darc' continues the source's algorithm; '{source.algo}' is not supported "
                             f"(supported: {', '.join(SUPPORTED_ALGOS)})")

    def adapt(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> AdaptedPolicy:
        """Trains a copy of the source for ``budget * source_ratio`` source steps with the corrected reward."""
        s = self.settings
        probe = make_source_env(setup)
        obs_dim = int(np.prod(probe.observation_space.shape))
        action_dim = int(np.prod(probe.action_space.shape))
        probe.close()
        darc = Darc(s, obs_dim, action_dim, setup.seed)
        counter = [0]
        is_ppo = isinstance(source.model, PPO)
        n_envs = (s.n_envs or source.model.n_envs) if is_ppo else 1
        venv = self._source_venv(setup, source, darc, counter, n_envs)
        target = Monitor(make_target_env(setup, budget, "rollouts"))
        overrides: dict[str, Any] = {"tensorboard_log": None}  # the source's log folder must stay untouched
        if not is_ppo:  # off-policy: a buffer for this run's steps, and uniform actions only during the warm-up
            overrides.update(buffer_size=budget.limit * s.source_ratio,
                             learning_starts=min(int(source.model.learning_starts), s.warmup_steps))
        student = source.trainable_copy(env=venv, device=setup.device, **overrides)
        model = student.model
        model.set_random_seed(setup.seed)
        visits = TargetVisits(darc, target, counter, setup.seed)
        before = None
        try:
            steps = budget.limit * s.source_ratio
            model.learn(total_timesteps=steps, reset_num_timesteps=True,
                        callback=[visits, *setup.progress("darc: training in the source simulation", steps)])
            before = darc.accuracy()
            darc.train()  # a last update on everything collected, then the held-out check
        finally:
            venv.close()
            target.close()
        corrections = darc.correction(np.stack(darc.source.held_out)) if darc.source.held_out else np.zeros(0)
        target_corrections = darc.correction(np.stack(darc.target.held_out)) if darc.target.held_out else np.zeros(0)
        metrics = {
            **darc.accuracy(), "accuracy_before_last_update": before, "classifier_updates": darc.updates,
            "source_steps": counter[0], "target_transitions": darc.target.count,
            "mean_correction_source": float(corrections.mean()) if corrections.size else None,
            "mean_correction_target": float(target_corrections.mean()) if target_corrections.size else None,
            "target_episodes": visits.episodes, "n_envs": n_envs,
        }
        return AdaptedPolicy(model=model, normalizer=model.get_vec_normalize_env(), metrics=metrics)

    def _source_venv(self, setup: TransferSetup, source: Policy, darc: Darc, counter: list[int], n_envs: int) -> VecEnv:
        venv: VecEnv = DummyVecEnv([lambda: Monitor(DarcRewardWrapper(make_source_env(setup), darc, counter))
                                    for _ in range(n_envs)])
        venv.seed(setup.seed)
        stats = source.normalizer_file
        if stats is None:
            return venv
        vecnorm = VecNormalize.load(str(stats), venv)
        vecnorm.training = True
        return vecnorm
