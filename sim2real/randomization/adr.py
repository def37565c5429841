"""Automatic domain randomization (ADR, OpenAI et al. 2019, "Solving Rubik's Cube with a Robot Hand").

Each randomized dimension (a parameter handle or group scaled from its nominal value, or the action
latency in control steps) has a range that starts narrow, at the nominal value by default. At every
reset, with probability ``boundary_probability``, one dimension is pinned to one of its bounds (a
*boundary evaluation*) while every other dimension is sampled from its current range (uniformly, or
log-uniformly with ``sampling: log_uniform``), as in OpenAI's ADR; with ``boundary_others: nominal`` the other
dimensions sit at their nominal values instead, so a bound is judged on its own (where dimensions act
together, as masses against gains on a pendulum, a bound judged amid the others' wide draws may never move).
With ``nominal_probability``, that share of the other training episodes holds every dimension at its nominal
value: an anchor that keeps the nominal robot in the training data however wide the ranges grow.
Where training episodes are cut short (``train_episode_steps``), ``boundary_episodes: whole`` lets boundary
evaluations run to the robot's own episode end, so a bound is judged on the episode an evaluation plays (a
policy may hold 100 steps at a bound and fall before 1000).
The returns of boundary episodes collect in one buffer
per (dimension, bound); when a buffer holds ``buffer_size`` returns, their mean decides: at or above
the upper threshold the bound moves out (the range widens), below the lower threshold it moves in (the
range narrows, never past its starting range, so every range keeps containing where it began: the
nominal value by default), in between it stays. A scale
factor's bound moves by the factor ``1 + step`` (``high x 1.2``, ``low / 1.2`` outward for ``step: 0.2``:
even steps on a log scale, as perturbations of masses and gains are usually read); the latency's by
``step`` control steps. Ranges never leave their ``limits``.

:class:`AdrSpec` is the configuration (``randomization.adr`` in YAML), :class:`AdrState` the evolving
ranges with their buffers and trajectory (saved in checkpoints and ``metadata.json``). The envs sample
from a copy of the ranges (:class:`~sim2real.randomization.wrapper.AdaptiveRandomization`) that the
training callback refreshes after every change, so the scheme works with any vectorized env.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sim2real.validation import require_float, require_int, require_known_keys

LATENCY = "action_latency"
"""The dimension name of the action latency (integer control steps, applied by the ``ActionLatency`` wrapper)."""

LATENCY_INFO_KEY = "adr_latency"
"""The reset ``info`` key through which the ADR wrapper hands the episode's latency to ``ActionLatency``."""

BOUNDARY_INFO_KEY = "adr_boundary"
"""The step ``info`` key marking a boundary evaluation: ``(dimension, side, value)`` (read by the training loop and
by the cut that spares whole boundary episodes)."""

LOW, HIGH = 0, 1
SIDES = ("low", "high")
SAMPLINGS = ("uniform", "log_uniform")
BOUNDARY_OTHERS = ("sampled", "nominal")
BOUNDARY_EPISODES = ("cut", "whole")


@dataclass(frozen=True)
class AdrDimension:
    """One ADR dimension.

    Attributes:
        target: A parameter handle or group (``masses``, ``torso_mass``, ``gravity``), scaled from its
            nominal value; or ``action_latency`` (integer control steps).
        init: The starting range ``(low, high)``: scale factors, or steps for the latency.
        limits: The range never leaves ``(low, high)``; for physical parameters ``low`` must keep every
            value physically valid (e.g. masses > 0).
        step: How far one update moves a bound: a scale bound moves by the factor ``1 + step``, the latency's
            by ``step`` control steps (a whole number).
    """

    target: str
    init: tuple[float, float] = (1.0, 1.0)
    limits: tuple[float, float] = (0.5, 2.0)
    step: float = 0.05

    def __post_init__(self) -> None:
        name = f"adr.dimensions.{self.target}"
        require_float(f"{name}.step", self.step, low=0.0, low_open=True)
        low, high = self.limits
        init_low, init_high = self.init
        if not low <= init_low <= init_high <= high:
            raise ValueError(f"{name}: need limits[0] <= init[0] <= init[1] <= limits[1], got init={list(self.init)} "
                             f"limits={list(self.limits)}")
        if self.is_latency:
            for what, value in (("init", self.init), ("limits", self.limits), ("step", (self.step,))):
                if not all(float(v).is_integer() for v in value) or min(value) < 0:
                    raise ValueError(f"{name}.{what}={list(value)} must be whole numbers of control steps >= 0")

    @property
    def is_latency(self) -> bool:
        """Whether this dimension is the action latency."""
        return self.target == LATENCY

    @property
    def nominal(self) -> float:
        """The dimension's nominal value: scale 1, or no latency."""
        return 0.0 if self.is_latency else 1.0

    def to_dict(self) -> dict[str, Any]:
        """The YAML form."""
        return {"init": list(self.init), "limits": list(self.limits), "step": self.step}


@dataclass(frozen=True)
class AdrSpec:
    """Automatic domain randomization settings.

    Attributes:
        dimensions: The randomized dimensions, in order.
        thresholds: ``(lower, upper)`` mean return of a bound's boundary episodes: below ``lower`` the
            bound moves in, at or above ``upper`` it moves out.
        env_thresholds: Per-env ``(lower, upper)`` replacing ``thresholds`` (returns differ by robot).
        boundary_probability: Probability that an episode is a boundary evaluation.
        buffer_size: Boundary returns averaged before a bound moves.
        sampling: How a scale dimension is drawn inside its range outside boundary evaluations: ``uniform``
            in the factor, or ``log_uniform`` (uniform in its logarithm, as even as the bounds' multiplicative
            steps: a range x0.5-2 then puts half its draws below the nominal value, not a third). The latency
            is always drawn uniformly over whole steps.
        boundary_others: In a boundary evaluation, the other dimensions are ``sampled`` from their current
            ranges (OpenAI's ADR) or held at their ``nominal`` values (scale 1, latency 0; every starting range
            must then contain them).
        nominal_probability: Share of the training episodes that are not boundary evaluations played with every
            dimension at its nominal value (0: none, as in OpenAI's ADR; every starting range must contain the
            nominal value otherwise). Outside training the ranges alone are sampled.
        boundary_episodes: Where training episodes are cut (``train_episode_steps``), boundary evaluations are
            ``cut`` like the others (their returns then meet thresholds scaled by the cut) or played ``whole``, to
            the robot's episode end (thresholds unscaled). Without a cut both are the same.
    """

    dimensions: tuple[AdrDimension, ...]
    thresholds: tuple[float, float] = (0.0, 1.0)
    env_thresholds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    boundary_probability: float = 0.5
    buffer_size: int = 5
    sampling: str = "uniform"
    boundary_others: str = "sampled"
    nominal_probability: float = 0.0
    boundary_episodes: str = "cut"

    def __post_init__(self) -> None:
        if not self.dimensions:
            raise ValueError("adr.dimensions: give at least one dimension, e.g. masses: {init: [1, 1], limits: [0.5, 2], step: 0.05}")
        targets = [d.target for d in self.dimensions]
        if len(set(targets)) != len(targets):
            raise ValueError(f"adr.dimensions: {targets} names a dimension twice")
        require_float("adr.boundary_probability", self.boundary_probability, low=0.0, high=1.0, low_open=True)
        require_int("adr.buffer_size", self.buffer_size, minimum=1)
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"adr.sampling={self.sampling!r}: choose one of {list(SAMPLINGS)}")
        if self.boundary_others not in BOUNDARY_OTHERS:
            raise ValueError(f"adr.boundary_others={self.boundary_others!r}: choose one of {list(BOUNDARY_OTHERS)}")
        require_float("adr.nominal_probability", self.nominal_probability, low=0.0, high=1.0, high_open=True)
        if self.boundary_episodes not in BOUNDARY_EPISODES:
            raise ValueError(f"adr.boundary_episodes={self.boundary_episodes!r}: choose one of {list(BOUNDARY_EPISODES)}")
        holders = [f"{name}={value}" for name, value, holds in (
            ("boundary_others", "nominal", self.boundary_others == "nominal"),
            ("nominal_probability", self.nominal_probability, self.nominal_probability > 0)) if holds]
        if holders:
            for d in self.dimensions:
                if not d.init[0] <= d.nominal <= d.init[1]:
                    raise ValueError(f"adr.dimensions.{d.target}.init={list(d.init)} leaves out the nominal value "
                                     f"{d.nominal:g} that {' and '.join(holders)} holds it at; start the range there "
                                     f"or use boundary_others=sampled and nominal_probability=0")
        if self.sampling == "log_uniform":
            for d in self.physical:
                if not d.limits[0] > 0:
                    raise ValueError(f"adr.dimensions.{d.target}.limits={list(d.limits)}: log_uniform sampling needs "
                                     "scale factors > 0")
        for where, pair in (("adr.thresholds", self.thresholds),
                            *((f"adr.env_thresholds.{env}", pair) for env, pair in self.env_thresholds.items())):
            _check_thresholds(where, pair)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdrSpec:
        """Parses ``{dimensions: {target: {init, limits, step}}, thresholds, env_thresholds, boundary_probability,
        buffer_size, sampling, boundary_others, nominal_probability, boundary_episodes}``."""
        data = dict(data)
        require_known_keys("adr", data, ("dimensions", "thresholds", "env_thresholds", "boundary_probability", "buffer_size",
                                         "sampling", "boundary_others", "nominal_probability", "boundary_episodes"))
        dimensions = []
        for target, entry in dict(data.pop("dimensions", None) or {}).items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"adr.dimensions.{target}: expected {{init: [low, high], limits: [low, high], step: x}}, got {entry!r}")
            require_known_keys(f"adr.dimensions.{target}", entry, ("init", "limits", "step"))
            kwargs: dict[str, Any] = {k: _pair(f"adr.dimensions.{target}.{k}", v) for k, v in entry.items() if k != "step"}
            if "step" in entry:
                kwargs["step"] = entry["step"]
            dimensions.append(AdrDimension(target=str(target), **kwargs))
        kwargs = {}
        if "thresholds" in data:
            kwargs["thresholds"] = _pair("adr.thresholds", data.pop("thresholds"))
        kwargs["env_thresholds"] = {str(env): _pair(f"adr.env_thresholds.{env}", pair)
                                    for env, pair in dict(data.pop("env_thresholds", None) or {}).items()}
        return cls(dimensions=tuple(dimensions), **kwargs, **data)

    def to_dict(self) -> dict[str, Any]:
        """The form :meth:`from_dict` reads."""
        return {"dimensions": {d.target: d.to_dict() for d in self.dimensions}, "thresholds": list(self.thresholds),
                "env_thresholds": {env: list(pair) for env, pair in self.env_thresholds.items()},
                "boundary_probability": self.boundary_probability, "buffer_size": self.buffer_size,
                "sampling": self.sampling, "boundary_others": self.boundary_others,
                "nominal_probability": self.nominal_probability, "boundary_episodes": self.boundary_episodes}

    def starting_at(self, ranges: Mapping[str, Sequence[float]]) -> AdrSpec:
        """The same settings with the ranges starting at ``ranges`` (``{dimension: [low, high]}``, e.g. the ranges
        a finished run reached).

        Raises:
            ValueError: ``ranges`` names other dimensions, or a range outside its limits.
        """
        if set(ranges) != {d.target for d in self.dimensions}:
            raise ValueError(f"ADR ranges for {sorted(ranges)} do not match the dimensions {[d.target for d in self.dimensions]}")
        dims = tuple(replace(d, init=_pair(f"adr ranges.{d.target}", ranges[d.target])) for d in self.dimensions)
        return replace(self, dimensions=dims)

    def thresholds_for(self, env_name: str) -> tuple[float, float]:
        """``(lower, upper)`` for one robot."""
        return tuple(self.env_thresholds.get(env_name, self.thresholds))  # type: ignore[return-value]

    def initial_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` of every dimension where it starts."""
        return (np.array([d.init[0] for d in self.dimensions], dtype=float),
                np.array([d.init[1] for d in self.dimensions], dtype=float))

    @property
    def latency(self) -> AdrDimension | None:
        """The latency dimension, if any."""
        return next((d for d in self.dimensions if d.is_latency), None)

    @property
    def physical(self) -> tuple[AdrDimension, ...]:
        """The dimensions that scale physical parameters."""
        return tuple(d for d in self.dimensions if not d.is_latency)


def whole_boundary_episodes(spec: AdrSpec | None) -> bool:
    """Whether ``spec`` plays its boundary evaluations to the robot's episode end where training episodes are cut."""
    return spec is not None and spec.boundary_episodes == "whole"


class AdrState:
    """The current ADR ranges, the boundary buffers and the trajectory of the ranges.

    Example:
        >>> spec = AdrSpec((AdrDimension("masses", init=(1.0, 1.0), limits=(0.5, 2.0), step=0.1),),
        ...                thresholds=(100.0, 500.0), buffer_size=2)
        >>> state = AdrState(spec, env_name="hopper")
        >>> state.record(0, HIGH, 600.0, timesteps=10), state.record(0, HIGH, 700.0, timesteps=20)
        (False, True)
        >>> state.low.tolist(), state.high.tolist()  # the high bound moved out by the factor 1.1
        ([1.0], [1.1])
    """

    def __init__(self, spec: AdrSpec, env_name: str, episode_fraction: float = 1.0) -> None:
        """``episode_fraction``: a training episode's length over the robot's registered episode length (below 1 for
        ``train_episode_steps`` or a shortened ``max_episode_steps``, above 1 for a lengthened one); the thresholds,
        returns of the registered episode, are scaled by it."""
        require_float("episode_fraction", episode_fraction, low=0.0, low_open=True)
        self.spec = spec
        self.names = [d.target for d in spec.dimensions]
        self.lower_threshold, self.upper_threshold = (t * episode_fraction for t in spec.thresholds_for(env_name))
        self.low, self.high = spec.initial_ranges()
        self._limits = np.array([d.limits for d in spec.dimensions], dtype=float)
        self._init = np.stack(spec.initial_ranges(), axis=1)
        self._steps = np.array([d.step for d in spec.dimensions], dtype=float)
        self._additive = np.array([d.is_latency for d in spec.dimensions])
        self.buffers: list[list[list[float]]] = [[[], []] for _ in spec.dimensions]
        self.performance: list[list[float | None]] = _no_performance(len(self.names))
        """The mean return of the last full buffer at each bound (``None`` before the first)."""
        self.decisions: list[list[list[int]]] = _no_decisions(len(self.names))
        """How many full buffers at each bound moved it ``[in, nowhere, out]`` (a move clipped at a limit or at
        the starting range counts as nowhere)."""
        self.trajectory: list[dict[str, Any]] = [self._snapshot(0)]
        self.stale = 0
        """Boundary returns dropped because their bound had moved since the episode began."""

    def record(self, dimension: int, side: int, episode_return: float, timesteps: int, value: float | None = None) -> bool:
        """Adds a boundary episode's return; moves the bound when its buffer is full. Returns whether a range changed.

        ``value``: the bound the episode was played at. An episode that began before the bound moved (another
        env's, or one reset from the old ranges in the step that moved it) judged the old bound: it is dropped
        (counted in :attr:`stale`), so every decision rests on returns at the bound it moves."""
        bound = (self.low, self.high)[side][dimension]
        if value is not None and not math.isclose(value, bound, rel_tol=1e-9, abs_tol=1e-12):
            self.stale += 1
            return False
        buffer = self.buffers[dimension][side]
        buffer.append(float(episode_return))
        if len(buffer) < self.spec.buffer_size:
            return False
        mean = float(np.mean(buffer))
        buffer.clear()
        self.performance[dimension][side] = mean
        if mean >= self.upper_threshold:
            moved = self._move(dimension, side, outward=True)
            self.decisions[dimension][side][2 if moved else 1] += 1
        elif mean < self.lower_threshold:
            moved = self._move(dimension, side, outward=False)
            self.decisions[dimension][side][0 if moved else 1] += 1
        else:
            moved = False
            self.decisions[dimension][side][1] += 1
        if moved:
            self.trajectory.append(self._snapshot(timesteps))
        return moved

    def _move(self, dimension: int, side: int, outward: bool) -> bool:
        step, (limit_low, limit_high) = self._steps[dimension], self._limits[dimension]
        (init_low, init_high), low, high = self._init[dimension], self.low[dimension], self.high[dimension]
        if self._additive[dimension]:
            up, down = (lambda v: v + step), (lambda v: v - step)
        else:
            up, down = (lambda v: v * (1.0 + step)), (lambda v: v / (1.0 + step))
        if side == LOW:
            new = max(down(low), limit_low) if outward else min(up(low), init_low)
            changed, self.low[dimension] = new != low, round(new, 9)
        else:
            new = min(up(high), limit_high) if outward else max(down(high), init_high)
            changed, self.high[dimension] = new != high, round(new, 9)
        return bool(changed)

    def _snapshot(self, timesteps: int) -> dict[str, Any]:
        return {"timesteps": int(timesteps), "low": self.low.round(6).tolist(), "high": self.high.round(6).tolist()}

    def ranges(self) -> dict[str, list[float]]:
        """``{dimension: [low, high]}`` now."""
        return {name: [float(lo), float(hi)] for name, lo, hi in zip(self.names, self.low, self.high)}

    def to_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (and what ``metadata.json`` records)."""
        return {"dimensions": self.names, "thresholds": [self.lower_threshold, self.upper_threshold],
                "ranges": self.ranges(), "buffers": self.buffers, "performance": self.performance,
                "decisions": self.decisions, "trajectory": self.trajectory, "stale": self.stale}

    def load_dict(self, data: Mapping[str, Any]) -> None:
        """Restores what :meth:`to_dict` saved (the dimensions must match)."""
        if list(data["dimensions"]) != self.names:
            raise ValueError(f"ADR state has dimensions {list(data['dimensions'])}, the config {self.names}")
        self.low = np.array([data["ranges"][n][0] for n in self.names], dtype=float)
        self.high = np.array([data["ranges"][n][1] for n in self.names], dtype=float)
        self.buffers = [[list(map(float, side)) for side in sides] for sides in data["buffers"]]
        # performance and decisions are absent from states saved before they were recorded: start them afresh
        performance = data.get("performance") or _no_performance(len(self.names))
        decisions = data.get("decisions") or _no_decisions(len(self.names))
        self.performance = [[None if v is None else float(v) for v in sides] for sides in performance]
        self.decisions = [[[int(n) for n in side] for side in sides] for sides in decisions]
        self.trajectory = [dict(entry) for entry in data["trajectory"]]
        self.stale = int(data.get("stale", 0))  # absent from states saved before stale returns were dropped


def _no_performance(dimensions: int) -> list[list[float | None]]:
    return [[None, None] for _ in range(dimensions)]


def _no_decisions(dimensions: int) -> list[list[list[int]]]:
    return [[[0, 0, 0], [0, 0, 0]] for _ in range(dimensions)]


def _pair(name: str, value: Any) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name}={value!r} must be a pair [low, high]")
    return (require_float(f"{name}[0]", value[0]), require_float(f"{name}[1]", value[1]))


def _check_thresholds(where: str, pair: tuple[float, float]) -> None:
    lower, upper = pair
    if not lower < upper:
        raise ValueError(f"{where}={list(pair)}: the lower threshold (narrow below it) must be below the upper one "
                         f"(widen at or above it)")

