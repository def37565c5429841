"""Builds an env with target dynamics, domain randomization, unmodeled effects and the physics guard."""

from __future__ import annotations

import gymnasium as gym

from sim2real.envs.guard import PhysicsGuard
from sim2real.envs.registry import EnvSpec, make_base_env, resolve_env
from sim2real.randomization.adr import LATENCY_INFO_KEY
from sim2real.randomization.effects import apply_effects
from sim2real.randomization.history import HistoryObservation
from sim2real.randomization.privileged import PrivilegedObservation
from sim2real.randomization.spec import DynamicsSpec
from sim2real.randomization.wrapper import AdaptiveRandomization, DomainRandomization, apply_fixed_dynamics


def make_env(
    env: str | EnvSpec,
    randomization: DynamicsSpec | None = None,
    target: DynamicsSpec | None = None,
    render_mode: str | None = None,
    privileged: bool = False,
    privileged_noise: float = 0.0,
) -> gym.Env:
    """Makes a robot env with the given dynamics.

    Layers, innermost first: the base env; the target's parameters written once into the model (the
    target becomes the new nominal); domain randomization around it (sampled from the target's values
    at every reset; adaptive ranges for an ``adr`` randomization); the physics guard; the target's effects;
    the randomization's effects; the observation history when the env spec asks for one
    (``EnvSpec.history``), outermost, so it holds the observations and actions the policy itself saw and
    sent. With ``privileged``, the episode's randomized parameters (normalized, :class:`~sim2real.randomization.privileged.PrivilegedObservation`) are appended
    after everything: ``[observation or history, privileged]``.

    Args:
        env: A registered name (``"hopper"``) or an :class:`EnvSpec`.
        randomization: Domain randomization, or None for none.
        target: Fixed target dynamics, or None for nominal.
        render_mode: Passed to the base env.
        privileged: Append the privileged observation (needs a randomization with parameters).
        privileged_noise: Std of a per-episode Gaussian offset on the privileged observation (a teacher
            trained to act on rough estimates).
    """
    spec = resolve_env(env)
    base = make_base_env(spec, render_mode=render_mode)
    if target is not None and target.parameters:
        apply_fixed_dynamics(base, target, env_name=spec.name)
    wrapped: gym.Env = base
    adaptive = randomization is not None and randomization.adr is not None
    if adaptive:
        wrapped = AdaptiveRandomization(wrapped, randomization, env_name=spec.name)  # type: ignore[arg-type]
    elif randomization is not None and randomization.parameters:
        wrapped = DomainRandomization(wrapped, randomization, env_name=spec.name)
    wrapped = PhysicsGuard(wrapped)
    if target is not None:
        wrapped = apply_effects(wrapped, target.effects)
    if randomization is not None:
        wrapped = apply_effects(wrapped, randomization.effects, latency_key=LATENCY_INFO_KEY if adaptive else None)
    if spec.history > 0:
        wrapped = HistoryObservation(wrapped, spec.history)
    if privileged:
        wrapped = PrivilegedObservation(wrapped, privileged_noise)
    return wrapped


def validate_dynamics(env: str | EnvSpec, *specs: DynamicsSpec | None) -> None:
    """Raises ``ValueError`` if any spec names a parameter the env lacks or can produce invalid values.

    Cheap (builds the env once), so scripts call it before any long work.
    """
    spec = resolve_env(env)
    base = make_base_env(spec)
    try:
        for dynamics in specs:
            if dynamics is None:
                continue
            kind = AdaptiveRandomization if dynamics.adr is not None else DomainRandomization
            env_with = kind(base, dynamics, env_name=spec.name)
            n_actuators = base.action_space.shape[0]
            bad = [i for i in dynamics.effects.disabled_actuators if i >= n_actuators]
            if bad:
                raise ValueError(f"{dynamics.name}: disabled actuators {bad} out of range; {spec.name} has {n_actuators}")
            env_with.set_enabled(False)
    finally:
        base.close()
