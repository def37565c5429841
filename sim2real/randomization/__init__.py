"""Domain randomization: distributions, operations, the reset-time wrapper (fixed or automatic ranges) and
unmodeled effects."""

from sim2real.randomization.adr import AdrDimension, AdrSpec, AdrState
from sim2real.randomization.distributions import (
    DISTRIBUTIONS,
    Constant,
    Distribution,
    LogUniform,
    Normal,
    TruncatedNormal,
    Uniform,
    make_distribution,
)
from sim2real.randomization.effects import (
    ActionLatency,
    ActionNoise,
    ActuatorFailure,
    MotorStrength,
    ObservationNoise,
    RandomPushes,
    apply_effects,
)
from sim2real.randomization.factory import make_env, validate_dynamics
from sim2real.randomization.operations import OPERATIONS, apply_operation
from sim2real.randomization.spec import NOMINAL, CompiledDynamics, DynamicsSpec, EffectsSpec, ParameterTerm
from sim2real.randomization.wrapper import AdaptiveRandomization, DomainRandomization, apply_fixed_dynamics

__all__ = [
    "DISTRIBUTIONS",
    "NOMINAL",
    "OPERATIONS",
    "ActionLatency",
    "AdaptiveRandomization",
    "AdrDimension",
    "AdrSpec",
    "AdrState",
    "ActionNoise",
    "ActuatorFailure",
    "CompiledDynamics",
    "Constant",
    "Distribution",
    "DomainRandomization",
    "DynamicsSpec",
    "EffectsSpec",
    "LogUniform",
    "MotorStrength",
    "Normal",
    "ObservationNoise",
    "ParameterTerm",
    "RandomPushes",
    "TruncatedNormal",
    "Uniform",
    "apply_effects",
    "apply_fixed_dynamics",
    "apply_operation",
    "make_distribution",
    "make_env",
    "validate_dynamics",
]
