"""Transfer method ``bc``: behaviour cloning of target-domain demonstrations into the policy's actor.

The actor is regressed onto the expert's deterministic actions (see
:mod:`sim2real.transfer.demonstrations` for the loss, the action space it works in and where the
demonstrations come from); every demonstration step is charged to the budget.
"""

from __future__ import annotations

from sim2real.policies.policy import Policy
from sim2real.policies.run_info import RunInfo
from sim2real.seeding import child_seeds
from sim2real.transfer.base import AdaptedPolicy, TransferMethod, TransferSetup, register_method
from sim2real.transfer.budget import TargetBudget
from sim2real.transfer.demonstrations import (
    DemonstrationSettings,
    check_demonstration_settings,
    fit_actor,
    initial_model,
    obtain_demonstrations,
)

BCSettings = DemonstrationSettings


@register_method
class BehaviourCloning(TransferMethod[BCSettings]):
    """Behaviour cloning of target demonstrations into the source policy's actor."""

    name = "bc"
    Settings = BCSettings
    needs_expert = True

    def validate(self, setup: TransferSetup, source: RunInfo) -> None:
        check_demonstration_settings(self.settings, setup, source)

    def adapt(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> AdaptedPolicy:
        settings = self.settings
        demo_seed, fit_seed = child_seeds(setup.seed, 2)
        demos, metrics = obtain_demonstrations(settings, setup, budget, settings.demo_steps or budget.remaining, demo_seed)
        learner = initial_model(setup, source, settings.init)
        fit = fit_actor(learner, demos.observations, demos.actions, settings, fit_seed)
        return AdaptedPolicy(model=learner.model, normalizer=source.normalizer_file, metrics={**metrics, **fit})
