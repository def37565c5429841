"""Fine-tuning: continue the source's SB3 training on the target, every target step charged.

The source model is loaded with its own algorithm class, placed on target envs wrapped in
:class:`~sim2real.transfer.budget.CountedEnv`, and trained for as many steps as the budget allows (for
PPO, whole rollouts only, so the run stops cleanly at the cap). Options: freeze the encoder or its first
K layers, a new learning rate, L2-SP regularization toward the source weights, and frozen or updating
observation statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from sim2real.policies.policy import Policy
from sim2real.policies.run_info import RunInfo
from sim2real.training.config import algo_config_from_dict
from sim2real.transfer.base import (
    AdaptedPolicy,
    TransferMethod,
    TransferSetup,
    continue_off_policy,
    make_target_env,
    register_method,
    set_checked,
)
from sim2real.transfer.budget import TargetBudget
from sim2real.validation import require_choice, require_float, require_int

NORMALIZATION_MODES = ("keep", "update")


@dataclass(frozen=True)
class FinetuneSettings:
    """Settings of fine-tuning.

    Attributes:
        learning_rate: New constant learning rate; None keeps the source's.
        freeze_layers: Freeze the first K ``Linear`` layers of the actor's encoder (PPO:
            ``mlp_extractor.policy_net``; SAC: ``actor.latent_pi``; TD3: ``actor.mu`` without its output
            layer); ``-1`` freezes the whole encoder, 0 nothing.
        l2sp: L2-SP weight lambda: ``lambda * ||theta - theta_source||^2`` is added to the loss of every
            trainable parameter (0: plain fine-tuning).
        normalization: ``keep`` (source observation statistics, frozen) or ``update`` (re-estimated on the
            target, starting from the source's).
        n_steps: PPO rollout length per env; None keeps the source's, stretched so whole rollouts use
            the budget (shrunk if one rollout would not fit).
        n_envs: Parallel target envs for PPO; None keeps the source's. SAC/TD3 use one.
        warmup_steps: SAC/TD3: target steps collected with the source policy (its exploration noise) before
            the first gradient update, so early updates do not overfit a near-empty replay buffer.
    """

    learning_rate: float | None = None
    freeze_layers: int = 0
    l2sp: float = 0.0
    normalization: str = "update"
    n_steps: int | None = None
    n_envs: int | None = None
    warmup_steps: int = 1000

    def __post_init__(self) -> None:
        set_checked(
            self,
            learning_rate=require_float("learning_rate", self.learning_rate, low=0.0, low_open=True, optional=True),
            freeze_layers=require_int("freeze_layers", self.freeze_layers, minimum=-1),
            l2sp=require_float("l2sp", self.l2sp, low=0.0),
            normalization=require_choice("normalization", self.normalization, NORMALIZATION_MODES),
            n_steps=require_int("n_steps", self.n_steps, minimum=1, optional=True),
            n_envs=require_int("n_envs", self.n_envs, minimum=1, optional=True),
            warmup_steps=require_int("warmup_steps", self.warmup_steps, minimum=0),
        )


@register_method
class Finetune(TransferMethod[FinetuneSettings]):
    """Continue SB3 training of the source model on the target within the budget."""

    name = "finetune"
    Settings = FinetuneSettings

    def validate(self, setup: TransferSetup, source: RunInfo) -> None:
        """Checks the settings against the source run and the budget before any work."""
        s = self.settings
        if source.algo != "ppo" and s.warmup_steps >= setup.budget:
            raise ValueError(f"warmup_steps={s.warmup_steps} leaves nothing of budget={setup.budget} for training")
        if source.algo != "ppo" and source.algo_config is not None:
            train_freq = algo_config_from_dict(dict(source.algo_config), source.env.name).hyperparams.get("train_freq", 1)
            if train_freq not in (1, [1, "step"], (1, "step")):
                raise ValueError(f"finetune continues an off-policy source up to its budget exactly, but the source trains "
                                 f"with train_freq={train_freq!r}, which collects past the point it is asked to stop "
                                 "(the last target steps would exceed the budget); fine-tune a source with train_freq=1")
        hidden = len((source.algo_config or {}).get("network", {}).get("pi", ()))
        if hidden and s.freeze_layers > hidden:
            raise ValueError(f"freeze_layers={s.freeze_layers} but the actor encoder has {hidden} layers")

    def adapt(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> AdaptedPolicy:
        """Fine-tunes a fresh copy of the source model on counted target envs."""
        s = self.settings
        is_ppo = isinstance(source.model, PPO)
        n_envs = (s.n_envs or source.model.n_envs) if is_ppo else 1
        venv = self._target_venv(setup, source, budget, n_envs)
        overrides: dict[str, Any] = {"tensorboard_log": None}  # the source's log folder must stay untouched
        if s.learning_rate is not None:
            overrides["learning_rate"] = s.learning_rate
        if is_ppo:
            n_steps, rollouts = ppo_rollout_plan(budget.limit, n_envs, s.n_steps or source.model.n_steps,
                                                 source.model.batch_size)
            overrides["n_steps"] = n_steps
        else:
            overrides["buffer_size"] = max(budget.limit, 1)
        student = source.trainable_copy(env=venv, device=setup.device, **overrides)
        model = student.model
        model.set_random_seed(setup.seed)
        frozen = freeze_encoder_layers(student, s.freeze_layers)
        hooks = add_l2sp(model, s.l2sp) if s.l2sp > 0 else []
        tracker = EpisodeTracker()
        steps = n_steps * n_envs * rollouts if is_ppo else budget.remaining
        callbacks = [tracker, *setup.progress("finetune on the target", steps)]
        try:
            if is_ppo:
                model.learn(total_timesteps=steps, callback=callbacks, reset_num_timesteps=True)
            else:
                continue_off_policy(model, steps, self.settings.warmup_steps, callbacks)
        finally:
            for hook in hooks:
                hook.remove()
            venv.close()
        for parameter in model.policy.parameters():
            parameter.requires_grad_(True)  # saved models carry no trace of the freezing
        normalizer = model.get_vec_normalize_env()
        metrics = {"frozen_layers": frozen, "target_episodes": tracker.summary(),
                   "n_steps": overrides.get("n_steps"), "n_envs": n_envs}
        return AdaptedPolicy(model=model, normalizer=normalizer, metrics=metrics)

    def _target_venv(self, setup: TransferSetup, source: Policy, budget: TargetBudget, n_envs: int) -> VecEnv:
        venv: VecEnv = DummyVecEnv([lambda: Monitor(make_target_env(setup, budget, "rollouts")) for _ in range(n_envs)])
        venv.seed(setup.seed)
        stats = source.normalizer_file
        if stats is None:
            return venv
        vecnorm = VecNormalize.load(str(stats), venv)
        vecnorm.training = self.settings.normalization == "update"
        return vecnorm


def ppo_rollout_plan(budget: int, n_envs: int, n_steps: int, batch_size: int = 1) -> tuple[int, int]:
    """``(n_steps, rollouts)`` so that ``rollouts`` whole rollouts of ``n_steps * n_envs`` fit ``budget``.

    The rollout length is stretched to use the budget as fully as possible, keeping a rollout a whole
    number of minibatches where the budget allows.

    Example:
        >>> ppo_rollout_plan(20_000, 4, 512, batch_size=64)
        (544, 9)
    """
    if budget < n_envs:
        raise ValueError(f"budget={budget} is smaller than one step of {n_envs} envs")
    rollouts = max(1, budget // (n_steps * n_envs))
    longest = budget // (rollouts * n_envs)
    granule = math.lcm(n_envs, batch_size) // n_envs
    return (longest // granule * granule or longest), rollouts


def freeze_encoder_layers(policy: Policy, count: int) -> int:
    """Freezes the first ``count`` encoder ``Linear`` layers (-1: all); returns how many were frozen."""
    layers = policy.encoder_layers()
    if count > len(layers):
        raise ValueError(f"freeze_layers={count} but the actor encoder has {len(layers)} layers")
    chosen = layers if count == -1 else layers[:count]
    for layer in chosen:
        layer.requires_grad_(False)
    return len(chosen)


def add_l2sp(model: BaseAlgorithm, weight: float) -> list[torch.utils.hooks.RemovableHandle]:
    """Adds ``2 * weight * (theta - theta_source)`` to each trainable parameter's gradient.

    That is the gradient of ``weight * ||theta - theta_source||^2`` added to whatever loss the algorithm
    back-propagates (gradient clipping then sees the total). Returns the hook handles to remove.
    """
    handles = []
    for parameter in model.policy.parameters():
        if not parameter.requires_grad:
            continue
        anchor = parameter.detach().clone()
        handles.append(parameter.register_hook(_l2sp_hook(parameter, anchor, weight)))
    return handles


def _l2sp_hook(parameter: torch.Tensor, anchor: torch.Tensor, weight: float):  # type: ignore[no-untyped-def]
    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad + 2.0 * weight * (parameter.detach() - anchor)

    return hook


class EpisodeTracker(BaseCallback):
    """Records the (training-time, stochastic) returns of target episodes the method already paid for."""

    def __init__(self) -> None:
        super().__init__()
        self.returns: list[float] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "episode" in info:
                self.returns.append(float(info["episode"]["r"]))
        return True

    def summary(self) -> dict[str, Any]:
        """Episode count and the mean return of the first and last tenth of the episodes."""
        if not self.returns:
            return {"episodes": 0}
        k = max(1, len(self.returns) // 10)
        return {"episodes": len(self.returns), "first_return": float(np.mean(self.returns[:k])),
                "last_return": float(np.mean(self.returns[-k:]))}
