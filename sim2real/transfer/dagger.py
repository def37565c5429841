"""Transfer method ``dagger``: dataset aggregation (Ross, Gordon and Bagnell, 2011) on the target.

Behaviour cloning learns only the states the expert visits; a learner that drifts from them meets
states it was never taught (covariate shift). DAgger closes the loop:

1. clone an initial set of expert demonstrations (from a dataset, or recorded from the expert on the
   target: ``demo_steps``, by default one share of the budget);
2. for each of ``iterations`` rounds: roll out the learner on the target (with probability ``beta_i``
   per step the expert's action is executed instead, ``beta_i = beta * beta_decay ** i``), ask the
   expert what it would have done in every visited state, add those labelled states to the data, and
   retrain the actor on everything gathered so far (warm start, same supervised loss as ``bc``).

Every target step is charged: demonstrations under ``demonstrations``, learner rollouts under
``rollouts``. Expert labels cost no env steps; their number is reported as ``expert_queries``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim2real.data.demos import collect_demonstrations
from sim2real.policies.policy import Policy
from sim2real.policies.run_info import RunInfo, read_run_info
from sim2real.seeding import child_seeds
from sim2real.transfer.base import (
    AdaptedPolicy,
    TransferMethod,
    TransferSetup,
    make_target_env,
    register_method,
    set_checked,
)
from sim2real.transfer.budget import TargetBudget
from sim2real.transfer.demonstrations import (
    DemonstrationSettings,
    MixedActor,
    action_error,
    check_demonstration_settings,
    fit_actor,
    initial_model,
    obtain_demonstrations,
)
from sim2real.validation import require_float, require_int


@dataclass(frozen=True)
class DAggerSettings(DemonstrationSettings):
    """Settings of DAgger (``configs/transfer/dagger.yaml``).

    Every behaviour-cloning setting applies (see
    :class:`~sim2real.transfer.demonstrations.DemonstrationSettings`): ``expert`` (required here: it labels
    the visited states), ``dataset`` (optional initial demonstrations), ``demo_steps`` (initial
    demonstration steps; None: ``budget // (iterations + 1)``), ``init``, ``epochs`` (per retraining),
    ``batch_size``, ``learning_rate``, ``lr_schedule``, ``validation_split``, ``keep_best``.

    Attributes:
        iterations: Rounds of learner rollouts, expert labelling and retraining.
        steps_per_iteration: Target steps of learner rollouts per round. None: the budget left after
            the initial demonstrations, shared equally among the rounds.
        beta: Probability that the expert's action is executed instead of the learner's in the first
            round (0: pure learner rollouts, the common choice once an initial policy is cloned).
        beta_decay: Factor applied to ``beta`` after every round.
    """

    iterations: int = 4
    steps_per_iteration: int | None = None
    beta: float = 0.0
    beta_decay: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        set_checked(
            self,
            iterations=require_int("iterations", self.iterations, minimum=1),
            steps_per_iteration=require_int("steps_per_iteration", self.steps_per_iteration, minimum=1, optional=True),
            beta=require_float("beta", self.beta, low=0.0, high=1.0),
            beta_decay=require_float("beta_decay", self.beta_decay, low=0.0, high=1.0),
        )


@register_method
class DAgger(TransferMethod[DAggerSettings]):
    """Dataset aggregation: the learner's own target rollouts, labelled by the expert."""

    name = "dagger"
    Settings = DAggerSettings
    needs_expert = True

    def validate(self, setup: TransferSetup, source: RunInfo) -> None:
        check_demonstration_settings(self.settings, setup, source, expert_required=True)
        if read_run_info(str(self.settings.expert)).algo == "recurrent_ppo":
            # Labels are queried for a batch of unrelated visited states at once: an LSTM has no state for them.
            raise ValueError(f"DAgger labels visited states in batches, which a recurrent (recurrent_ppo) expert "
                             f"cannot do without its LSTM state; expert '{self.settings.expert}' is recurrent: give "
                             f"a ppo, sac or td3 expert (policy.history=k gives it memory)")
        planned = self._initial_steps(setup.budget) + self.settings.iterations * (self.settings.steps_per_iteration or 0)
        if planned > setup.budget:
            raise ValueError(f"demo_steps + iterations x steps_per_iteration = {planned} exceeds the budget of {setup.budget}")

    def _initial_steps(self, budget: int) -> int:
        return self.settings.demo_steps or budget // (self.settings.iterations + 1)

    def adapt(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> AdaptedPolicy:
        settings = self.settings
        seeds = child_seeds(setup.seed, 2 * settings.iterations + 3)
        expert = Policy.load(str(settings.expert), device=setup.device)
        demos, metrics = obtain_demonstrations(settings, setup, budget, self._initial_steps(budget.limit), seeds[0])
        learner = initial_model(setup, source, settings.init)
        observations, labels = [demos.observations], [demos.actions]
        fit = fit_actor(learner, demos.observations, demos.actions, settings, seeds[1])
        history = [{"iteration": 0, "new_steps": len(demos), "dataset_steps": len(demos), **_fit_summary(fit)}]
        rng = np.random.default_rng(seeds[2])
        for i in range(settings.iterations):
            steps = settings.steps_per_iteration or budget.remaining // (settings.iterations - i)
            steps = min(steps, budget.remaining)
            if steps < 1:
                break
            record = self._round(learner, expert, setup, budget, steps, i, rng, seeds[3 + 2 * i])
            observations.append(record.pop("observations"))
            labels.append(record.pop("labels"))
            fit = fit_actor(learner, np.concatenate(observations), np.concatenate(labels), settings, seeds[4 + 2 * i])
            history.append({**record, "dataset_steps": int(sum(len(o) for o in observations)), **_fit_summary(fit)})
        metrics.update(expert_queries=int(sum(h.get("expert_queries", 0) for h in history)),
                       iterations_done=len(history) - 1, history=history, final_fit=fit)
        return AdaptedPolicy(model=learner.model, normalizer=source.normalizer_file, metrics=metrics)

    def _round(self, learner: Policy, expert: Policy, setup: TransferSetup, budget: TargetBudget, steps: int, i: int,
               rng: np.random.Generator, seed: int) -> dict[str, Any]:
        """One learner rollout of ``steps`` target steps, labelled by the expert."""
        beta = self.settings.beta * self.settings.beta_decay**i
        actor = MixedActor(learner, expert, beta, rng)
        env = make_target_env(setup, budget, "rollouts")
        try:
            visited = collect_demonstrations(actor, env, steps=steps, seed=seed, reset=actor.reset)
        finally:
            env.close()
        labels = expert.act(visited.observations)
        returns = visited.episode_returns()
        return {
            "iteration": i + 1,
            "beta": beta,
            "new_steps": len(visited),
            "expert_queries": len(visited),
            "rollout_episodes": visited.n_episodes,
            "rollout_mean_return": float(returns.mean()) if len(returns) else None,
            "learner_state_error": action_error(learner, visited.observations, labels),
            "observations": visited.observations,
            "labels": labels,
        }


def _fit_summary(fit: dict[str, Any]) -> dict[str, Any]:
    keys = ("train_error_after", "validation_error_after", "kept_epoch")
    return {key: fit[key] for key in keys}
