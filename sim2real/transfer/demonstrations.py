"""What the methods that learn from an expert's actions (``bc``, ``dagger``) share: their settings, where
demonstrations come from, and the supervised fit of the actor.

The actor (initialized from the source policy, or from scratch for comparison) is trained by
supervised regression of its deterministic action onto the expert's, on observations normalized with
the source run's frozen statistics (which are kept: the adapted run copies ``vecnormalize.pkl``).
Regression happens in the space the network outputs (:meth:`Policy.to_network_space`): the Gaussian
mean for PPO (whose ``predict`` only clips), the tanh-squashed action in ``[-1, 1]`` for SAC and TD3
(whose ``predict`` unscales). The critic is left as it is.

Demonstrations come from a dataset file (``scripts/collect_demos.py``) or are recorded from an expert
run folder on the target; either way every demonstration step is charged to the budget under
``demonstrations``. A dataset larger than the budget is cut to its first whole episodes that fit (to
its first ``budget`` steps if not even one episode fits), and the metrics say so
(``demo_cut_by: budget``, and a warning); the run never fails for it.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv
from torch.nn import functional as F  # noqa: N812

from sim2real.data.demos import DemoDataset, load_demonstrations, record_expert_demonstrations
from sim2real.policies.policy import Policy
from sim2real.policies.run_info import RunInfo, read_run_info
from sim2real.randomization.factory import make_env
from sim2real.training.config import algo_config_from_dict
from sim2real.training.trainer import build_model
from sim2real.transfer.base import TransferSetup, make_target_env, set_checked
from sim2real.transfer.budget import TargetBudget
from sim2real.validation import require_bool, require_choice, require_float, require_int

INITS = ("source", "scratch")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class DemonstrationSettings:
    """Settings of behaviour cloning (``configs/transfer/bc.yaml``), shared by DAgger.

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
        lr_schedule: ``constant`` (``learning_rate`` throughout) or ``cosine`` (annealed from ``learning_rate`` to 0
            over the fit's gradient steps, so the weights kept settle instead of ending wherever the last
            mini-batches left them).
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
    lr_schedule: str = "constant"
    validation_split: float = 0.1
    keep_best: bool = True

    def __post_init__(self) -> None:
        set_checked(
            self,
            dataset=_optional_path("dataset", self.dataset),
            expert=_optional_path("expert", self.expert),
            demo_steps=require_int("demo_steps", self.demo_steps, minimum=1, optional=True),
            init=require_choice("init", self.init, INITS),
            epochs=require_int("epochs", self.epochs, minimum=1),
            batch_size=require_int("batch_size", self.batch_size, minimum=1),
            learning_rate=require_float("learning_rate", self.learning_rate, low=0.0, low_open=True),
            lr_schedule=require_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES),
            validation_split=require_float("validation_split", self.validation_split, low=0.0, high=1.0, high_open=True),
            keep_best=require_bool("keep_best", self.keep_best),
        )


def _optional_path(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name}={value!r} must be a path or null")
    return None if value is None else str(value)


# ----------------------------------------------------------------------------- the supervised core


def action_error(policy: Policy, observations: np.ndarray, actions: np.ndarray) -> float:
    """Mean squared error between the policy's deterministic action and ``actions``, in network space.

    Args:
        policy: The policy.
        observations: Raw observations.
        actions: Reference (expert) env actions.
    """
    if len(observations) == 0:
        return float("nan")
    obs_t, target_t = _tensors(policy, observations, actions)
    return _mse(policy.network_action, policy.model.policy, obs_t, target_t)  # type: ignore[return-value]


def _tensors(policy: Policy, observations: np.ndarray, actions: np.ndarray) -> tuple[th.Tensor, th.Tensor]:
    target = policy.to_network_space(actions).reshape(len(actions), -1)
    return policy.obs_tensor(observations), th.as_tensor(target, dtype=th.float32, device=policy.model.policy.device)


def fit_actor(learner: Policy, observations: np.ndarray, actions: np.ndarray, settings: DemonstrationSettings,
              seed: int) -> dict[str, Any]:
    """Regresses the actor's deterministic action onto ``actions``; returns losses for the metrics.

    Args:
        learner: Trained in place (actor parameters only).
        observations: Raw observations.
        actions: Expert env actions.
        settings: Epochs, batch size, learning rate, validation split, keep_best.
        seed: Seeds the mini-batch order.
    """
    obs_t, target_t = _tensors(learner, observations, actions)
    result = fit_regression(learner.network_action, learner.actor_parameters(), learner.model.policy, obs_t, target_t,
                            settings, seed)
    learner.sync_target_actor()  # TD3 starts its target actor from the cloned actor, as at construction
    return result


def fit_regression(predict: Callable[[th.Tensor], th.Tensor], parameters: Iterable[th.nn.Parameter],
                   module: th.nn.Module, inputs: th.Tensor, targets: th.Tensor, settings: DemonstrationSettings,
                   seed: int) -> dict[str, Any]:
    """The supervised core: Adam on the mean squared error of ``predict(inputs)`` against ``targets``, in
    shuffled mini-batches (the learning rate constant or cosine-annealed to 0: ``lr_schedule``), the last
    ``validation_split`` of the rows held out (``keep_best``: the epoch with the lowest held-out error is kept).

    Args:
        predict: Differentiable map from a batch of inputs to predictions.
        parameters: What is trained (everything else in ``module`` stays as it is).
        module: The module ``predict`` runs (its train/eval mode is set; its state is what ``keep_best`` keeps).
        inputs: Network inputs, one row per example.
        targets: Targets, one row per example.
        settings: Epochs, batch size, learning rate, validation split, keep_best.
        seed: Seeds the mini-batch order.

    Returns:
        Errors before and after, on the training and held-out rows, and the epoch kept.
    """
    n_val = int(round(len(inputs) * settings.validation_split)) if len(inputs) > 1 else 0
    n_train = len(inputs) - n_val
    train_x, train_y, val_x, val_y = inputs[:n_train], targets[:n_train], inputs[n_train:], targets[n_train:]
    optimizer = th.optim.Adam(parameters, lr=settings.learning_rate)
    batches_per_epoch = max(1, n_train // settings.batch_size)
    schedule = (th.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs * batches_per_epoch)
                if settings.lr_schedule == "cosine" else None)
    rng = np.random.default_rng(seed)
    losses = {"train_error_before": _mse(predict, module, train_x, train_y),
              "validation_error_before": _mse(predict, module, val_x, val_y)}
    best_error, best_epoch, best_state = losses["validation_error_before"], 0, copy.deepcopy(module.state_dict())
    for epoch in range(1, settings.epochs + 1):
        module.train(True)
        for batch in np.array_split(rng.permutation(n_train), batches_per_epoch):
            loss = F.mse_loss(predict(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
        error = _mse(predict, module, val_x, val_y)
        if n_val and error < best_error:
            best_error, best_epoch, best_state = error, epoch, copy.deepcopy(module.state_dict())
    if settings.keep_best and n_val:
        module.load_state_dict(best_state)
    else:
        best_epoch = settings.epochs
    module.train(False)
    return {**losses, "train_error_after": _mse(predict, module, train_x, train_y),
            "validation_error_after": _mse(predict, module, val_x, val_y), "train_steps": n_train,
            "validation_steps": n_val, "epochs": settings.epochs, "kept_epoch": best_epoch}


def _mse(predict: Callable[[th.Tensor], th.Tensor], module: th.nn.Module, inputs: th.Tensor,
         targets: th.Tensor) -> float | None:
    if len(inputs) == 0:
        return None
    module.train(False)
    with th.no_grad():
        return float(F.mse_loss(predict(inputs), targets))


def initial_model(setup: TransferSetup, source: Policy, init: str) -> Policy:
    """The policy to train: the source itself (``source``; loaded fresh for this run, so editing it is safe)
    or a freshly initialized one of the same algorithm, architecture and hyperparameters (``scratch``)."""
    if init == "source":
        return source
    algo = algo_config_from_dict(source.info.algo_config, setup.env.name)
    venv = DummyVecEnv([lambda: make_env(setup.env)] * algo.n_envs)  # only gives the spaces: never stepped
    model = build_model(algo, venv, seed=setup.seed, tensorboard_dir=None, device=setup.device)
    venv.close()
    return Policy(model, source.normalizer, source.info)


@dataclass
class MixedActor:
    """Acts as the expert with probability ``beta`` per step, else as the learner (DAgger's rollouts)."""

    learner: Policy
    expert: Policy
    beta: float
    rng: np.random.Generator

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        use_expert = self.beta > 0.0 and self.rng.random() < self.beta
        return self.expert.act(obs) if use_expert else self.learner.act(obs)

    def reset(self) -> None:
        """Starts a new episode for both policies."""
        self.learner.reset()
        self.expert.reset()


# ----------------------------------------------------------------------------- where demonstrations come from


def check_expert(expert: str, setup: TransferSetup) -> RunInfo:
    """Validates an expert run folder for ``setup``; returns what it says about itself."""
    info = read_run_info(expert)
    if info.env.name != setup.env.name:
        raise ValueError(f"expert run '{expert}' is for env '{info.env.name}', but the source policy is for '{setup.env.name}'")
    return info


def check_demonstration_settings(settings: DemonstrationSettings, setup: TransferSetup, source: RunInfo,
                                 expert_required: bool = False) -> None:
    """Checks dataset / expert / init against the setup before any work; raises ``ValueError`` naming the problem."""
    if expert_required and settings.expert is None:
        raise ValueError("this method queries an expert: set expert to a run folder, e.g. a policy trained on the target "
                         "(transfer.expert=RUN_DIR on the command line)")
    if not expert_required and (settings.dataset is None) == (settings.expert is None):
        raise ValueError(f"give exactly one of dataset (a demonstrations .npz) and expert (a run folder); "
                         f"got dataset={settings.dataset!r}, expert={settings.expert!r}")
    if settings.dataset is not None:
        load_demonstrations(settings.dataset, setup.env)
    if settings.expert is not None:
        check_expert(settings.expert, setup)
    if settings.init == "scratch" and source.algo_config is None:
        raise ValueError(f"init=scratch needs the source's algo_config in '{setup.source_dir}/metadata.json'")
    if settings.expert is not None and settings.dataset is None and (settings.demo_steps or 0) > setup.budget:
        raise ValueError(f"demo_steps={settings.demo_steps} exceeds the budget of {setup.budget} target steps")


def obtain_demonstrations(settings: DemonstrationSettings, setup: TransferSetup, budget: TargetBudget, steps: int,
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
            demos = record_expert_demonstrations(str(settings.expert), setup.target, steps=limit, seed=seed, env=env)
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
