"""Transfer method ``bc``: behaviour cloning of target-domain demonstrations into the policy's actor.

The actor (initialized from the source policy, or from scratch for comparison) is trained by
supervised regression of its deterministic action onto the expert's, on observations normalized with
the source run's frozen statistics (which are kept: the adapted run copies ``vecnormalize.pkl``).
Regression happens in the space the network outputs: the Gaussian mean for PPO (whose ``predict``
only clips), the tanh-squashed action in ``[-1, 1]`` for SAC and TD3 (whose ``predict`` unscales), so
expert actions are scaled into that space first. The critic is left as it is.

Demonstrations come from a dataset file (``scripts/collect_demos.py``) or are recorded from an expert
run folder on the target; either way every demonstration step is charged to the budget under
``demonstrations``. A dataset larger than the budget is cut to its first whole episodes that fit (to
its first ``budget`` steps if not even one episode fits), and the metrics say so
(``demo_cut_by: budget``, and a warning); the run never fails for it.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn
from torch.nn import functional as F  # noqa: N812

from sim2real.data.demos import (
    DemoDataset,
    env_spec_of_run,
    load_demonstrations,
    record_expert_demonstrations,
)
from sim2real.randomization.factory import make_env
from sim2real.runs import VECNORMALIZE_FILE
from sim2real.seeding import child_seeds
from sim2real.training.config import algo_config_from_dict
from sim2real.training.loading import Policy, check_run_dir
from sim2real.training.trainer import build_model
from sim2real.transfer.base import (
    AdaptedPolicy,
    TransferMethod,
    TransferSetup,
    make_target_env,
    register_method,
)
from sim2real.transfer.budget import TargetBudget

INITS = ("source", "scratch")


@dataclass
class BCSettings:
    """Settings of behaviour cloning (``configs/transfer/bc.yaml``).

    Attributes:
        dataset: Path of a demonstrations ``.npz`` recorded on the target (``scripts/collect_demos.py``).
            Give this or ``expert``.
        expert: Run folder of an expert policy to record demonstrations from on the target (deterministic
            actions), e.g. a policy trained on the target. Give this or ``dataset``.
        demo_steps: Demonstration steps to use: recorded from ``expert``, or the first ones of ``dataset``
            (whole episodes). None: as many as the budget allows.
        init: ``source`` (start from the source policy's actor) or ``scratch`` (a freshly initialized
            network of the same architecture, for comparison).
        epochs: Passes over the demonstrations.
        batch_size: Demonstration steps per gradient step.
        learning_rate: Adam learning rate of the actor.
        validation_split: Fraction of the data held out for validation: the last steps, as one
            contiguous block (mostly whole episodes), so the validation error is not flattered by
            near-duplicate neighbouring steps. 0 to train on everything.
        keep_best: Keep the weights of the epoch with the lowest validation error (instead of the last).
    """

    dataset: str | None = None
    expert: str | None = None
    demo_steps: int | None = None
    init: str = "source"
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    keep_best: bool = True

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init='{self.init}' is not a valid choice; valid: {', '.join(INITS)}")
        for name in ("epochs", "batch_size"):
            _require_positive_int(name, getattr(self, name))
        if self.demo_steps is not None:
            _require_positive_int("demo_steps", self.demo_steps)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate!r} must be > 0")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split={self.validation_split!r} must be in [0, 1)")


def _require_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")


# ----------------------------------------------------------------------------- the supervised core


def actor_parameters(model: BaseAlgorithm) -> list[nn.Parameter]:
    """The parameters that shape the deterministic action (PPO: encoder, policy MLP, action head; SAC/TD3: actor)."""
    policy = model.policy
    if hasattr(policy, "actor"):
        return list(policy.actor.parameters())
    critic = ("value_net.", "mlp_extractor.value_net.", "vf_features_extractor.")
    return [p for name, p in policy.named_parameters() if not name.startswith(critic) and name != "log_std"]


def network_actions(model: BaseAlgorithm, actions: np.ndarray) -> np.ndarray:
    """Env actions mapped into the space the policy network outputs (``[-1, 1]`` for squashed policies)."""
    if model.policy.squash_output:
        return np.clip(model.policy.scale_action(np.asarray(actions, np.float64)), -1.0, 1.0)
    return np.asarray(actions)


def action_error(model: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray) -> float:
    """Mean squared error between the policy's deterministic action and ``actions``, in network space.

    Args:
        model: The SB3 model.
        observations: Observations as the model takes them (normalized if the run normalizes).
        actions: Reference (expert) env actions.
    """
    if len(observations) == 0:
        return float("nan")
    obs_t, target_t = _tensors(model, observations, actions)
    with th.no_grad():
        return float(F.mse_loss(model.policy._predict(obs_t, deterministic=True), target_t))


def _tensors(model: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray) -> tuple[th.Tensor, th.Tensor]:
    device = model.policy.device
    obs_t = th.as_tensor(np.asarray(observations), dtype=th.float32, device=device)
    target = network_actions(model, actions).reshape(len(actions), -1)
    return obs_t, th.as_tensor(target, dtype=th.float32, device=device)


def fit_actor(model: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray, settings: BCSettings,
              seed: int) -> dict[str, Any]:
    """Regresses the actor's deterministic action onto ``actions``; returns losses for the metrics.

    Args:
        model: Trained in place (actor parameters only).
        observations: Observations as the model takes them (normalized if the run normalizes).
        actions: Expert env actions.
        settings: Epochs, batch size, learning rate, validation split, keep_best.
        seed: Seeds the mini-batch order.
    """
    n_val = int(round(len(observations) * settings.validation_split)) if len(observations) > 1 else 0
    n_train = len(observations) - n_val
    obs_t, target_t = _tensors(model, observations, actions)
    train_obs, train_target, val_obs, val_target = obs_t[:n_train], target_t[:n_train], obs_t[n_train:], target_t[n_train:]
    policy = model.policy
    optimizer = th.optim.Adam(actor_parameters(model), lr=settings.learning_rate)
    rng = np.random.default_rng(seed)
    losses = {"train_error_before": _mse(policy, train_obs, train_target), "validation_error_before": _mse(policy, val_obs, val_target)}
    best_error, best_epoch, best_state = losses["validation_error_before"], 0, copy.deepcopy(policy.state_dict())
    for epoch in range(1, settings.epochs + 1):
        policy.set_training_mode(True)
        for batch in np.array_split(rng.permutation(n_train), max(1, n_train // settings.batch_size)):
            loss = F.mse_loss(policy._predict(train_obs[batch], deterministic=True), train_target[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        error = _mse(policy, val_obs, val_target)
        if n_val and error < best_error:
            best_error, best_epoch, best_state = error, epoch, copy.deepcopy(policy.state_dict())
    if settings.keep_best and n_val:
        policy.load_state_dict(best_state)
    else:
        best_epoch = settings.epochs
    policy.set_training_mode(False)
    _sync_target_actor(model)
    return {**losses, "train_error_after": _mse(policy, train_obs, train_target),
            "validation_error_after": _mse(policy, val_obs, val_target), "train_steps": n_train,
            "validation_steps": n_val, "epochs": settings.epochs, "kept_epoch": best_epoch}


def _mse(policy: Any, obs: th.Tensor, target: th.Tensor) -> float | None:
    if len(obs) == 0:
        return None
    policy.set_training_mode(False)
    with th.no_grad():
        return float(F.mse_loss(policy._predict(obs, deterministic=True), target))


def _sync_target_actor(model: BaseAlgorithm) -> None:
    """TD3 keeps a target actor: start it from the cloned actor, as TD3 does at construction."""
    actor_target = getattr(model.policy, "actor_target", None)
    if actor_target is not None:
        actor_target.load_state_dict(model.policy.actor.state_dict())


# ----------------------------------------------------------------------------- shared by bc and dagger


def normalize_observations(source: Policy, observations: np.ndarray) -> np.ndarray:
    """Observations as the (source-normalized) learner takes them."""
    if source.normalizer is None:
        return np.asarray(observations, dtype=np.float32)
    return source.normalizer(np.asarray(observations))


def learner_act(model: BaseAlgorithm, source: Policy) -> Callable[[np.ndarray], np.ndarray]:
    """The learner as an act function on raw observations (source normalizer, deterministic ``predict``)."""

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(normalize_observations(source, obs), deterministic=True)[0]

    return act


def kept_normalizer(setup: TransferSetup, source: Policy) -> Path | None:
    """The source's ``vecnormalize.pkl``, kept frozen for the adapted policy (None if it does not normalize)."""
    path = setup.source_dir / VECNORMALIZE_FILE
    return path if source.normalizer is not None and path.is_file() else None


def initial_model(setup: TransferSetup, source: Policy, init: str) -> BaseAlgorithm:
    """The model to train: the source model itself (``source``; loaded fresh, so editing it is safe) or a
    freshly initialized one of the same algorithm, architecture and hyperparameters (``scratch``)."""
    if init == "source":
        return source.model
    algo = algo_config_from_dict(source.metadata["algo_config"], setup.env.name)
    venv = DummyVecEnv([lambda: make_env(setup.env)] * algo.n_envs)  # only gives the spaces: never stepped
    model = build_model(algo, venv, seed=setup.seed, tensorboard_dir=None, device=setup.device)
    venv.close()
    return model


def check_expert(expert: str, setup: TransferSetup) -> dict[str, Any]:
    """Validates an expert run folder for ``setup``; returns its metadata."""
    metadata = check_run_dir(expert)
    name = env_spec_of_run(metadata).name
    if name != setup.env.name:
        raise ValueError(f"expert run '{expert}' is for env '{name}', but the source policy is for '{setup.env.name}'")
    return metadata


def check_demonstration_settings(settings: BCSettings, setup: TransferSetup, source_metadata: dict[str, Any],
                                 need_expert: bool = False) -> None:
    """Checks dataset / expert / init before any work; raises ``ValueError`` naming the problem."""
    if need_expert and settings.expert is None:
        raise ValueError("this method queries an expert: set expert to a run folder, e.g. a policy trained on the target "
                         "(transfer.expert=RUN_DIR on the command line)")
    if not need_expert and (settings.dataset is None) == (settings.expert is None):
        raise ValueError(f"give exactly one of dataset (a demonstrations .npz) and expert (a run folder); "
                         f"got dataset={settings.dataset!r}, expert={settings.expert!r}")
    if settings.dataset is not None:
        load_demonstrations(settings.dataset, setup.env)
    if settings.expert is not None:
        check_expert(settings.expert, setup)
    if settings.init == "scratch" and "algo_config" not in source_metadata:
        raise ValueError(f"init=scratch needs the source's algo_config in '{setup.source_dir}/metadata.json'")
    if settings.expert is not None and settings.dataset is None and (settings.demo_steps or 0) > setup.budget:
        raise ValueError(f"demo_steps={settings.demo_steps} exceeds the budget of {setup.budget} target steps")


def obtain_demonstrations(settings: BCSettings, setup: TransferSetup, budget: TargetBudget, steps: int,
                          seed: int) -> tuple[DemoDataset, dict[str, Any]]:
    """Up to ``steps`` demonstration steps (from the dataset, else recorded from the expert), all charged.

    Returns the data and metrics: where it came from, steps available and used, whether the budget cut it.
    """
    limit = min(steps, budget.remaining)
    limited_by = "budget" if limit == budget.remaining else "demo_steps"
    if settings.dataset is not None:
        full = load_demonstrations(settings.dataset, setup.env)
        demos = full.first_steps(limit)
        budget.charge(len(demos), "demonstrations")
        cut_by = None if len(demos) == len(full) else limited_by
        metrics = {"demo_source": str(settings.dataset), "demo_steps_available": len(full), "demo_cut_by": cut_by}
        if cut_by:
            warnings.warn(f"using the first {len(demos)} of {len(full)} demonstration steps of '{settings.dataset}' "
                          f"(whole episodes within the {cut_by} limit of {limit})", stacklevel=2)
        _check_target(demos, setup, metrics)
    else:
        env = make_target_env(setup, budget, "demonstrations")
        try:
            demos = record_expert_demonstrations(settings.expert, setup.target, steps=limit, seed=seed, env=env)
        finally:
            env.close()
        metrics = {"demo_source": f"expert {settings.expert}", "demo_steps_available": len(demos), "demo_cut_by": None}
    counts = demos.counts()
    metrics.update(demo_steps_used=len(demos), demo_episodes_used=counts["episodes"], demo_mean_return=counts["mean_return"])
    return demos, metrics


def _check_target(demos: DemoDataset, setup: TransferSetup, metrics: dict[str, Any]) -> None:
    recorded = demos.info.get("target")
    expected = json.loads(json.dumps(setup.target.to_dict()))
    metrics["demo_target"] = (recorded or {}).get("name")
    metrics["demo_target_matches"] = recorded == expected
    if recorded != expected:
        warnings.warn(f"demonstrations were recorded on target '{metrics['demo_target']}', "
                      f"not on the transfer target '{setup.target.name}'", stacklevel=3)


# ----------------------------------------------------------------------------- the method


@register_method
class BehaviourCloning(TransferMethod):
    """Behaviour cloning of target demonstrations into the source policy's actor."""

    name = "bc"
    Settings = BCSettings
    needs_expert = True

    def validate(self, setup: TransferSetup, source_metadata: dict[str, Any]) -> None:
        check_demonstration_settings(self.settings, setup, source_metadata)

    def adapt(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> AdaptedPolicy:
        settings: BCSettings = self.settings
        demo_seed, fit_seed = child_seeds(setup.seed, 2)
        demos, metrics = obtain_demonstrations(settings, setup, budget, settings.demo_steps or budget.remaining, demo_seed)
        model = initial_model(setup, source, settings.init)
        fit = fit_actor(model, normalize_observations(source, demos.observations), demos.actions, settings, fit_seed)
        return AdaptedPolicy(model=model, normalizer=kept_normalizer(setup, source), metrics={**metrics, **fit})
