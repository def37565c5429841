"""The wrapper that samples dynamics at every reset and writes them into the MuJoCo model."""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from sim2real.envs.parameters import ParameterSet
from sim2real.randomization.adr import BOUNDARY_INFO_KEY, LATENCY_INFO_KEY
from sim2real.randomization.distributions import log_uniform
from sim2real.randomization.operations import operation_range
from sim2real.randomization.spec import CompiledDynamics, DynamicsSpec
from sim2real.validation import require_int


class DomainRandomization(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Samples physical parameters at every reset, from the env's seeded RNG, before the inner reset.

    The sample is written from the model's nominal values (never compounding), derived quantities are
    recomputed with ``mj_setConst``, and the values are reported as ``info["dynamics"]`` at reset and
    again in the ``info`` of the episode's last step. Wrap the base MuJoCo env directly (inside any
    observation or action wrappers), so the sample is drawn before the episode's initial state.

    :meth:`privileged` gives the episode's sample of every randomized parameter normalized to [-1, 1]
    over what the randomization can produce (the privileged observation of a teacher or an asymmetric
    critic; ``info["privileged"]`` at reset too).

    Args:
        env: A Gymnasium MuJoCo env (``env.unwrapped`` has ``model`` and ``data``).
        spec: What to sample.
        env_name: Name used in error messages.

    Example:
        >>> import gymnasium as gym
        >>> from sim2real.randomization import DomainRandomization, DynamicsSpec
        >>> spec = DynamicsSpec.from_dict({"parameters": {"masses": {"dist": "uniform", "low": 0.8, "high": 1.2}}})
        >>> env = DomainRandomization(gym.make("InvertedPendulum-v5"), spec)
        >>> _, info = env.reset(seed=0)
        >>> 0.8 * 10.47 < info["dynamics"]["cart_mass"] < 1.2 * 10.48
        True
        >>> env.privileged_names, bool(abs(env.privileged()).max() <= 1)
        (['cart_mass', 'pole_mass'], True)
    """

    def __init__(self, env: gym.Env, spec: DynamicsSpec, env_name: str | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, spec=spec, env_name=env_name)
        super().__init__(env)
        base = env.unwrapped
        if not hasattr(base, "model") or not hasattr(base, "data"):
            raise TypeError(f"{base!r} is not a MuJoCo env: it has no 'model' and 'data'")
        self.parameters = ParameterSet(base.model, base.data)
        self.env_name = env_name or str(env.spec.id if env.spec else base)
        self.dynamics = CompiledDynamics(spec, self.parameters, self.env_name)
        self.enabled = True
        self.values = self.parameters.nominal.copy()
        self._values_dict = self.parameters.as_dict(self.values)
        self._privileged_index, self._low, self._span = privileged_ranges(spec, self.parameters)
        self._pinned: np.ndarray | None = None
        self._kinds = self.dynamics.kinds

    @property
    def privileged_names(self) -> list[str]:
        """Names of the entries of :meth:`privileged`: the randomized parameters, in the model's order."""
        return [self.parameters.names[i] for i in self._privileged_index]

    def privileged(self) -> np.ndarray:
        """The episode's randomized parameters, each mapped linearly from the range the randomization can
        produce onto [-1, 1] (0: the range's middle; a constant or nominal-only entry is 0)."""
        values = self.values[self._privileged_index]
        scaled = np.divide(values - self._low, self._span, out=np.full_like(values, 0.5), where=self._span > 0)
        return 2.0 * scaled - 1.0

    def privileged_bounds(self) -> np.ndarray:
        """``(entries, 2)``: the raw values :meth:`privileged` maps onto -1 and +1, one row per entry."""
        return np.stack([self._low, self._low + self._span], axis=1)

    def pin(self, dynamics: DynamicsSpec | None, nominal: ParameterSet | None = None) -> dict[str, float]:
        """Makes every reset write ``dynamics``' constant values (from the nominal model, as a target's are)
        instead of a sample, while :meth:`privileged` keeps this randomization's scale: how a privileged
        teacher is evaluated on a given robot. None unpins. Returns the pinned ``{name: value}``.

        ``nominal``: the parameters of the model ``dynamics`` applies to, when this env's own nominal is not
        the robot's (a target written into it before the randomization; default: this env's)."""
        if dynamics is None:
            self._pinned, self._kinds = None, self.dynamics.kinds
            self.parameters.restore()
            return {}
        if nominal is not None and nominal.names != self.parameters.names:
            raise ValueError(f"the nominal parameters given to pin are another model's ({len(nominal.names)} "
                             f"parameters, this env has {len(self.parameters.names)})")
        compiled = CompiledDynamics(dynamics, nominal or self.parameters, self.env_name)
        values = compiled.sample(np.random.default_rng(0))
        self.parameters.check_values(values)
        self._pinned, self._kinds = values, self.dynamics.kinds | compiled.kinds
        return self.parameters.as_dict(values)

    def set_enabled(self, enabled: bool) -> None:
        """Turns randomization on or off; off restores the nominal values exactly."""
        self.enabled = enabled
        if not enabled:
            self.parameters.restore()
            self.values = self.parameters.nominal.copy()
            self._values_dict = self.parameters.as_dict(self.values)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        base = self.env.unwrapped
        if seed is not None:
            # Seed the env's RNG here, so the dynamics come from the same seeded stream as the initial state.
            base._np_random, base._np_random_seed = seeding.np_random(seed)
        if self.enabled:
            self.values = self._sample(base.np_random)
            self.parameters.apply(self.values, self._kinds)
            self._values_dict = self.parameters.as_dict(self.values)
        obs, info = self.env.reset(seed=None, options=options)
        info["dynamics"] = self._values_dict
        info["privileged"] = self.privileged()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info["dynamics"] = self._values_dict
        return obs, reward, terminated, truncated, info

    def nominal_dict(self) -> dict[str, float]:
        """``{name: nominal value}`` of every parameter."""
        return self.parameters.as_dict(self.parameters.nominal)

    def _sample(self, rng: np.random.Generator) -> np.ndarray:
        """The episode's full parameter vector."""
        return self.dynamics.sample(rng) if self._pinned is None else self._pinned.copy()


class AdaptiveRandomization(DomainRandomization):
    """Automatic domain randomization (:mod:`sim2real.randomization.adr`): samples every dimension
    from its current range (uniformly, or log-uniformly with ``sampling: log_uniform``); while training,
    with probability ``boundary_probability`` one dimension sits at one of its bounds instead (a boundary
    evaluation; the others sampled, or at nominal with ``boundary_others: nominal``), and with probability
    ``nominal_probability`` another episode holds every dimension at its nominal value.

    The ranges start at ``spec.adr``'s ``init`` and change only through :meth:`set_adr_ranges`, which the
    training loop calls on every env before training and after each update; boundary evaluations start
    with that first call, so outside training (evaluation, a later stage's source domain) the env samples
    the ranges (per ``sampling``) without boundary evaluations. At reset ``info["adr_latency"]`` carries the
    episode's action latency when latency is a dimension (the ``ActionLatency`` wrapper built for this
    randomization applies it); every step's ``info`` of a boundary evaluation carries
    ``adr_boundary = (dimension, side, value)`` (side 0: low, 1: high; ``value``: the bound it was played at, which
    may have moved by the time the episode ends): the step that ends the episode may be cut
    by a wrapper outside this one (a time limit shorter than the robot's), which this wrapper does not see.

    Example:
        >>> import gymnasium as gym
        >>> from sim2real.randomization import DynamicsSpec
        >>> spec = DynamicsSpec.from_dict({"adr": {"dimensions": {"masses": {"init": [1, 1], "limits": [0.5, 2]}}}})
        >>> env = AdaptiveRandomization(gym.make("InvertedPendulum-v5"), spec)
        >>> _, info = env.reset(seed=0)
        >>> info["dynamics"]["pole_mass"] == env.nominal_dict()["pole_mass"]  # the range starts at nominal
        True
        >>> env.set_adr_ranges([2.0], [2.0], boundaries=False)
        >>> _, info = env.reset()
        >>> round(info["dynamics"]["pole_mass"] / env.nominal_dict()["pole_mass"], 6)
        2.0
    """

    def __init__(self, env: gym.Env, spec: DynamicsSpec, env_name: str | None = None) -> None:
        if spec.adr is None:
            raise ValueError(f"randomization '{spec.name}' has no adr block")
        super().__init__(env, spec, env_name)
        self.adr = spec.adr
        self._members = [self.parameters.select(d.target) if not d.is_latency else None for d in self.adr.dimensions]
        for (i, first), (j, second) in itertools.combinations(enumerate(self._members), 2):
            shared = [] if first is None or second is None else sorted(set(first.tolist()) & set(second.tolist()))
            if shared:  # a boundary episode pinning one would have the other's draw overwrite part of it
                names = [self.parameters.names[k] for k in shared]
                raise ValueError(f"{self.env_name}: adr dimensions '{self.adr.dimensions[i].target}' and "
                                 f"'{self.adr.dimensions[j].target}' both scale {names}; give each parameter one dimension")
        self.low, self.high = self.adr.initial_ranges()
        self.boundary: tuple[int, int, float] | None = None
        self.boundaries = False
        self.latency = 0

    def set_adr_ranges(self, low: Any, high: Any, boundaries: bool = True) -> None:
        """Sets the current ranges (one ``low`` and ``high`` per dimension), used from the next reset on, and
        whether boundary evaluations happen (the training loop's updates need them)."""
        self.low, self.high = np.array(low, dtype=float), np.array(high, dtype=float)
        self.boundaries = boundaries

    def _sample(self, rng: np.random.Generator) -> np.ndarray:
        n = len(self.adr.dimensions)
        self.boundary = None
        if self._pinned is not None:
            return self._pinned.copy()
        if self.boundaries and rng.random() < self.adr.boundary_probability:
            dimension, side = int(rng.integers(n)), int(rng.integers(2))
            self.boundary = (dimension, side, float((self.low[dimension], self.high[dimension])[side]))
        values = self.parameters.nominal.copy()
        if (self.boundary is None and self.boundaries and self.adr.nominal_probability > 0
                and rng.random() < self.adr.nominal_probability):  # the anchor: every dimension at nominal
            self.latency = 0
            return values
        for i, (dimension, members) in enumerate(zip(self.adr.dimensions, self._members)):
            if self.boundary is not None and (self.boundary[0] == i or self.adr.boundary_others == "nominal"):
                at = self.boundary[2] if self.boundary[0] == i else dimension.nominal
                factors = np.full(1 if members is None else len(members), at)
            elif dimension.is_latency:
                factors = rng.integers(int(self.low[i]), int(self.high[i]) + 1, size=1)
            elif self.adr.sampling == "log_uniform":
                factors = log_uniform(rng, self.low[i], self.high[i], len(members))
            else:
                factors = rng.uniform(self.low[i], self.high[i], size=len(members))
            if members is None:
                self.latency = int(factors[0])
            else:
                values[members] = self.parameters.nominal[members] * factors
        return values

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        if self.adr.latency is not None:
            info[LATENCY_INFO_KEY] = self.latency
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        if self.boundary is not None:
            info[BOUNDARY_INFO_KEY] = self.boundary
        return obs, reward, terminated, truncated, info


class EpisodeCut(gym.Wrapper):
    """Truncates training episodes after ``steps`` steps, as gymnasium's ``TimeLimit`` does (``truncated=True``:
    SB3 bootstraps the value there), except ADR boundary evaluations when ``spare_boundaries``: a step whose
    ``info`` carries ``adr_boundary`` (:class:`AdaptiveRandomization`, inside this wrapper) is not cut, so those
    episodes run to the robot's own end (``adr.boundary_episodes: whole``).

    Example:
        >>> import gymnasium as gym
        >>> env = EpisodeCut(gym.make("InvertedPendulum-v5"), steps=3)
        >>> _ = env.reset(seed=0)
        >>> [env.step(env.action_space.sample() * 0)[3] for _ in range(3)]
        [False, False, True]
    """

    def __init__(self, env: gym.Env, steps: int, spare_boundaries: bool = False) -> None:
        super().__init__(env)
        self.steps = require_int("steps", steps, minimum=1)
        self.spare_boundaries = spare_boundaries
        self._elapsed = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._elapsed = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._elapsed += 1
        if self._elapsed >= self.steps and not (self.spare_boundaries and BOUNDARY_INFO_KEY in info):
            truncated = True
        return obs, reward, terminated, truncated, info


def privileged_ranges(spec: DynamicsSpec, parameters: ParameterSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index, low, span)`` of every parameter ``spec`` randomizes: the range its terms can produce
    (the last term touching a parameter decides, as when sampling). An unbounded distribution (``normal``)
    counts its mean +- 3 std."""
    low, high = parameters.nominal.copy(), parameters.nominal.copy()
    touched = np.zeros(len(parameters.nominal), bool)
    for term in spec.parameters:
        idx = parameters.select(term.target)
        lowest, highest = term.distribution.support()
        if not (np.isfinite(lowest) and np.isfinite(highest)):
            mean, std = term.distribution.mean, term.distribution.std  # type: ignore[attr-defined]
            lowest, highest = mean - 3 * std, mean + 3 * std
        low[idx], high[idx] = operation_range(term.operation, parameters.nominal[idx], lowest, highest)
        touched[idx] = True
    index = np.flatnonzero(touched)
    return index, low[index], high[index] - low[index]


def apply_fixed_dynamics(env: gym.Env, spec: DynamicsSpec, rng: np.random.Generator | None = None,
                         env_name: str = "env") -> dict[str, float]:
    """Writes one sample of ``spec`` into the env's model once (how a target's constant dynamics are set).

    Returns the resulting ``{name: value}``.
    """
    base = env.unwrapped
    parameters = ParameterSet(base.model, base.data)
    compiled = CompiledDynamics(spec, parameters, env_name)
    values = compiled.sample(rng or np.random.default_rng(0))
    parameters.check_values(values)
    parameters.apply(values)
    return parameters.as_dict(values)
