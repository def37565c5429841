"""Transfer methods that adapt a source policy to target dynamics within a budget of target steps."""

from sim2real.transfer.base import (
    METHODS,
    AdaptedPolicy,
    TransferMethod,
    TransferSetup,
    load_setup,
    make_source_env,
    make_target_env,
    prepare_transfer,
    register_method,
    run_transfer,
)
from sim2real.transfer.budget import BudgetExhausted, CountedEnv, TargetBudget

__all__ = [
    "METHODS",
    "AdaptedPolicy",
    "BudgetExhausted",
    "CountedEnv",
    "TargetBudget",
    "TransferMethod",
    "TransferSetup",
    "load_setup",
    "make_source_env",
    "make_target_env",
    "prepare_transfer",
    "register_method",
    "run_transfer",
]

# Importing the method modules registers them in METHODS.
from sim2real.transfer import bc, dagger, dann, darc, finetune, sysid  # noqa: E402, F401
