"""Typed descriptions of dynamics: which parameters are sampled how, and which unmodeled effects apply.

The same :class:`DynamicsSpec` describes a domain-randomization scheme (distributions over parameters,
sampled at every reset) and a target (constant perturbations, e.g. all frictions x0.5). Both are
parsed from plain dictionaries (Hydra YAML) by :meth:`DynamicsSpec.from_dict`, which rejects unknown
keys, names, distributions and operations with the valid choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from sim2real.envs.parameters import ParameterSet, compact_index
from sim2real.randomization.adr import AdrSpec
from sim2real.randomization.distributions import (
    DISTRIBUTIONS,
    Distribution,
    LogUniform,
    Uniform,
    make_distribution,
)
from sim2real.randomization.operations import operation_function, operation_range
from sim2real.validation import require_float

TERM_KEYS = {"dist", "op", "shared", "value", "low", "high", "mean", "std"}


@dataclass(frozen=True)
class ParameterTerm:
    """Randomization of one parameter or group.

    Attributes:
        target: A parameter handle (``torso_mass``) or group (``masses``).
        distribution: What the sampled value is drawn from.
        operation: ``scale`` (nominal x sample), ``add`` (nominal + sample) or ``absolute`` (sample).
        shared: For a group, one sample for all members (True) or one each (False).
    """

    target: str
    distribution: Distribution
    operation: str = "scale"
    shared: bool = False

    def __post_init__(self) -> None:
        try:
            operation_function(self.operation)
        except ValueError as err:
            raise ValueError(f"{self.target}: {err}") from None

    def describe(self) -> str:
        """A short human-readable form, e.g. ``masses: scale uniform(low=0.8, high=1.2)``."""
        return f"{self.target}: {self.operation} {self.distribution!r}"


@dataclass(frozen=True)
class EffectsSpec:
    """Unmodeled effects, applied as Gymnasium wrappers.

    Attributes:
        obs_noise_std: Std of Gaussian noise added to every observation, per step.
        obs_bias_std: Std of a Gaussian bias drawn per episode and added to every observation.
        action_noise_std: Std of Gaussian noise added to actions, relative to half the action range.
        action_latency: Actions reach the robot this many control steps late.
        action_latency_max: If set, the latency is drawn per episode uniformly from
            ``[action_latency, action_latency_max]``.
        motor_strength: ``(low, high)`` range of a per-episode factor multiplying actions (before clipping).
        disabled_actuators: Indices of actuators whose command is forced to zero (a broken joint).
        push_probability: Per-step probability that a random push starts.
        push_force: Largest push force magnitude (N), drawn uniformly up to it in a random horizontal direction.
        push_duration: Steps a push lasts.
        push_body: Body pushed; default the first body with mass (the torso or cart).
    """

    obs_noise_std: float = 0.0
    obs_bias_std: float = 0.0
    action_noise_std: float = 0.0
    action_latency: int = 0
    action_latency_max: int | None = None
    motor_strength: tuple[float, float] | None = None
    disabled_actuators: tuple[int, ...] = ()
    push_probability: float = 0.0
    push_force: float = 0.0
    push_duration: int = 1
    push_body: str | None = None

    def __post_init__(self) -> None:
        for name in ("obs_noise_std", "obs_bias_std", "action_noise_std", "push_force"):
            require_float(name, getattr(self, name), low=0.0)  # finite: inf noise would train on NaN observations
        require_float("push_probability", self.push_probability, low=0.0, high=1.0)
        for name in ("action_latency", "push_duration"):
            _require_int(name, getattr(self, name), minimum=0 if name == "action_latency" else 1)
        if self.action_latency_max is not None:
            _require_int("action_latency_max", self.action_latency_max, minimum=self.action_latency)
        if self.motor_strength is not None:
            low, high = self.motor_strength
            _require(0 <= low <= high, f"motor_strength={list(self.motor_strength)} must be [low, high] with 0 <= low <= high")
        for index in self.disabled_actuators:
            _require_int("disabled_actuators entry", index, minimum=0)

    @property
    def per_episode(self) -> bool:
        """Whether an effect draws a new value every episode (a latency range, a sensor bias, a motor
        strength range): what a privileged observation can report besides the randomized parameters."""
        latency = self.action_latency_max is not None and self.action_latency_max > self.action_latency
        strength = self.motor_strength is not None and self.motor_strength[1] > self.motor_strength[0]
        return latency or strength or self.obs_bias_std > 0

    @property
    def active(self) -> bool:
        """Whether any effect changes the env."""
        return self != EffectsSpec()


@dataclass(frozen=True)
class DynamicsSpec:
    """A randomization scheme or a target: parameter terms plus unmodeled effects.

    Attributes:
        name: Preset name, for reports.
        parameters: Terms applied in order; a later term overrides an earlier one on shared parameters.
        effects: Unmodeled effects.
        adr: Automatic domain randomization (:mod:`sim2real.randomization.adr`): its ranges replace the
            distributions while training. ``parameters`` then hold one uniform term over each dimension's
            limits (what validation and the privileged observation's scale use), and a latency dimension
            sets ``effects.action_latency``/``action_latency_max`` to its limits.
    """

    name: str = "nominal"
    parameters: tuple[ParameterTerm, ...] = ()
    effects: EffectsSpec = field(default_factory=EffectsSpec)
    adr: AdrSpec | None = None

    @property
    def is_identity(self) -> bool:
        """True when the spec changes nothing."""
        return not self.parameters and not self.effects.active

    def at_current_ranges(self) -> DynamicsSpec:
        """An ADR randomization frozen at its current ranges (``adr.dimensions[*].init``: for a finished run,
        the ranges it reached, as :class:`~sim2real.policies.RunInfo` reads them), drawn as its ``sampling``
        says: a plain randomization for a consumer that builds its own terms on top. Others unchanged.

        (``parameters`` of an ADR spec span the dimensions' limits, a range the policy may never have seen.)
        """
        if self.adr is None:
            return self
        draw = LogUniform if self.adr.sampling == "log_uniform" else Uniform
        terms = tuple(ParameterTerm(d.target, draw(*d.init)) for d in self.adr.physical)
        effects = self.effects
        if self.adr.latency is not None:
            low, high = (int(v) for v in self.adr.latency.init)
            effects = replace(effects, action_latency=low, action_latency_max=high if high > low else None)
        return DynamicsSpec(name=self.name, parameters=terms, effects=effects)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, default_name: str = "custom") -> DynamicsSpec:
        """Parses ``{name, parameters: {target: {dist, op, ...}}, effects: {...}}``."""
        data = dict(data or {})
        unknown = set(data) - {"name", "parameters", "effects", "description", "adr"}
        _require(not unknown, f"unknown keys {sorted(unknown)} in dynamics spec; valid: name, description, parameters, effects, adr")
        name = str(data.get("name") or default_name)
        terms = tuple(_parse_term(target, term) for target, term in dict(data.get("parameters") or {}).items())
        effects = dict(data.get("effects") or {})
        if data.get("adr") is None:
            return cls(name=name, parameters=terms, effects=_parse_effects(effects))
        _require(not terms, f"{name}: an adr randomization samples the parameters of adr.dimensions; "
                            f"move {[t.target for t in terms]} there (or drop the adr block)")
        adr = AdrSpec.from_dict(data["adr"])
        if adr.latency is not None:
            given = sorted({"action_latency", "action_latency_max"} & set(effects))
            _require(not given, f"{name}: adr.dimensions.action_latency sets the latency; remove effects {given}")
            effects["action_latency"], effects["action_latency_max"] = (int(v) for v in adr.latency.limits)
        terms = tuple(ParameterTerm(d.target, Uniform(*d.limits)) for d in adr.physical)
        return cls(name=name, parameters=terms, effects=_parse_effects(effects), adr=adr)

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form :meth:`from_dict` reads (for metadata and logs)."""
        params = {}
        for term in self.parameters:
            dist = term.distribution
            kind = next(k for k, v in DISTRIBUTIONS.items() if isinstance(dist, v) and type(dist) is v)
            entry: dict[str, Any] = {"op": term.operation, "dist": kind, **asdict(dist)}  # type: ignore[call-overload]
            if term.shared:
                entry["shared"] = True
            params[term.target] = entry
        effects = {k: v for k, v in asdict(self.effects).items() if v != getattr(EffectsSpec(), k)}
        if self.adr is not None:  # the parameters (and a latency range) derive from adr.dimensions
            if self.adr.latency is not None:
                effects = {k: v for k, v in effects.items() if k not in ("action_latency", "action_latency_max")}
            return {"name": self.name, "adr": self.adr.to_dict(), "effects": effects}
        return {"name": self.name, "parameters": params, "effects": effects}

    def validate(self, parameters: ParameterSet, env_name: str = "env") -> None:
        """Checks every target name exists and no sample can give a physically invalid value."""
        for term in self.parameters:
            try:
                idx = parameters.select(term.target)
            except ValueError as err:
                raise ValueError(f"{self.name}: {err} (env {env_name})") from None
            low, high = term.distribution.support()
            lowest, _ = operation_range(term.operation, parameters.nominal[idx], low, high)
            bad = np.flatnonzero(parameters.below_bounds(idx, lowest))
            if bad.size:
                i, value = idx[bad[0]], lowest[bad[0]]
                raise ValueError(
                    f"{self.name}: '{term.describe()}' can set '{parameters.names[i]}' to {value:g} on {env_name}; "
                    f"{parameters.rule(i)} (narrow the range, or use truncated_normal / log_uniform)"
                )
        n_actuators = int(np.sum(parameters.kinds == "gain"))
        for index in self.effects.disabled_actuators:
            _require(index < n_actuators, f"{self.name}: disabled actuator {index} out of range; {env_name} has {n_actuators} (0..{n_actuators - 1})")


class CompiledDynamics:
    """A :class:`DynamicsSpec` bound to one model's :class:`ParameterSet`, ready to sample fast."""

    def __init__(self, spec: DynamicsSpec, parameters: ParameterSet, env_name: str = "env") -> None:
        spec.validate(parameters, env_name)
        self.spec = spec
        self.parameters = parameters
        self._terms = [(parameters.select(t.target), t) for t in spec.parameters]
        touched = np.concatenate([idx for idx, _ in self._terms]) if self._terms else np.zeros(0, int)
        self._fast_terms = [(compact_index(idx), 1 if t.shared else len(idx), parameters.nominal[idx].copy(),
                             operation_function(t.operation), t.distribution) for idx, t in self._terms]
        self.kinds: frozenset[str] = frozenset(parameters.kinds[touched].tolist())
        """The parameter kinds this spec writes (the others stay as they are)."""

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Draws a full parameter vector (non-randomized parameters stay nominal)."""
        values = self.parameters.nominal.copy()
        for idx, size, nominal, combine, distribution in self._fast_terms:
            values[idx] = combine(nominal, distribution.sample(rng, size))
        return values

    @property
    def randomized_names(self) -> list[str]:
        """Names of the parameters this spec writes, in order, without repeats."""
        names = [self.parameters.names[i] for idx, _ in self._terms for i in idx]
        return list(dict.fromkeys(names))


def _parse_term(target: str, term: Any) -> ParameterTerm:
    if not isinstance(term, Mapping):
        raise ValueError(f"parameter '{target}': expected a mapping like {{op: scale, dist: uniform, low: 0.8, high: 1.2}}, got {term!r}")
    term = dict(term)
    unknown = set(term) - TERM_KEYS
    _require(not unknown, f"parameter '{target}': unknown keys {sorted(unknown)}; valid: {sorted(TERM_KEYS)}")
    operation = str(term.pop("op", "scale"))
    shared = bool(term.pop("shared", False))
    if "value" in term:
        dist_name = str(term.pop("dist", "constant"))
        _require(dist_name == "constant", f"parameter '{target}': 'value' goes with dist: constant, not '{dist_name}'")
        term["value"] = term.pop("value")
    else:
        dist_name = str(term.pop("dist", "uniform"))
    try:
        kwargs = {k: _number(f"{target}.{k}", v) for k, v in term.items()}
        distribution = make_distribution(dist_name, **kwargs)
    except ValueError as err:
        raise ValueError(f"parameter '{target}': {err}") from None
    return ParameterTerm(target=target, distribution=distribution, operation=operation, shared=shared)


def _parse_effects(data: dict[str, Any]) -> EffectsSpec:
    valid = set(EffectsSpec.__dataclass_fields__)
    unknown = set(data) - valid
    _require(not unknown, f"unknown effects {sorted(unknown)}; valid: {sorted(valid)}")
    if data.get("motor_strength") is not None:
        value = data["motor_strength"]
        pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
        _require(len(pair) == 2, f"motor_strength={value!r} must be a number or [low, high]")
        data["motor_strength"] = (float(pair[0]), float(pair[1]))
    if "disabled_actuators" in data:
        data["disabled_actuators"] = tuple(data["disabled_actuators"] or ())
    return EffectsSpec(**data)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r} must be a number")
    return float(value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


NOMINAL = DynamicsSpec()
