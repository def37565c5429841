"""Identify a robot's dynamics from recorded trajectories: a distribution over named parameter scales.

The unknowns are log-scales of named parameter handles or groups (``masses``, ``gains``, ``torso_mass``,
``gravity``, ...; any name :class:`~sim2real.randomization.DynamicsSpec` accepts), each within a prior
range, plus an integer action latency searched as an outer loop. The objective is the k-step replay
error of :class:`~sim2real.sysid.replay.Replay` on the fitting trajectories. In order:

1. **Fit.** CMA-ES (the ``cma`` package) over the log-scales within the prior bounds, on a seeded subset
   of at most ``search_windows`` windows, once per latency ``0..latency_max``; the latency with the lowest
   error wins. A few Levenberg-Marquardt steps on the residuals of all fitting windows then polish the best
   point (CMA-ES finds the basin, Gauss-Newton the last digits).
2. **Identifiability.** The Gauss-Newton Hessian of the error in log space, ``H = J'J / M`` (``J`` the
   Jacobian of the ``M`` scaled residuals by central differences), is eigen-decomposed. An eigen-direction
   is *flat* when its curvature is below ``flat_tolerance`` times the largest one (or moving 10% along it,
   ``identifiable_change``, raises the mean squared error by less than 1e-12): the data cannot see it (a
   parameter with no effect, or a combination that trades off exactly, such as all masses against all gains
   where nothing else, like gravity, sets the scale).
3. **Spread.** A bootstrap over trajectories: each resample (trajectories drawn with replacement) is
   refitted by one Gauss-Newton step from the full-data fit, restricted to the non-flat directions, which
   is the linearization of refitting on that resample; the spread is the standard deviation of the
   refitted log-scales about the reported fit (root mean square, so an unfinished fit widens it).
   Correlated errors within a trajectory stay together, so the spread is not overconfident the way a
   per-sample Laplace estimate is. Directions whose bootstrap spread exceeds
   ``identifiable_change`` count as not identified either. With exact data (a simulator replaying itself)
   the spread is ~0: the data then do determine the parameters, and only the training floor remains.
4. **Report.** A parameter whose axis lies mostly (``> 25%`` of its squared norm) in the not-identified
   directions is flagged, with the parameters it is confounded with, and gets no spread (``null``): its
   calibrated range is its whole prior range. Latencies whose error is within a factor 2 of the best are
   reported as indistinguishable.

The calibrated distribution is log-uniform on ``value * exp(+-max(spread_k * spread, log(1 + min_width)))``
(clipped to the prior) for identified parameters and log-uniform on the prior for flagged ones.
Independent terms cannot follow a confounded valley, so the flagged box is the conservative choice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from sim2real.envs.registry import EnvSpec, resolve_env
from sim2real.randomization.distributions import LogUniform
from sim2real.randomization.factory import make_env, validate_dynamics
from sim2real.randomization.spec import DynamicsSpec, EffectsSpec, ParameterTerm
from sim2real.randomization.wrapper import DomainRandomization, apply_fixed_dynamics
from sim2real.sysid.data import Trajectories, check_env
from sim2real.sysid.replay import Replay, ScaledModels
from sim2real.validation import is_number, require_float, require_int

DEFAULT_PARAMETERS: dict[str, tuple[float, float]] = {"masses": (0.25, 4.0), "gains": (0.25, 4.0)}
FLAG_LOADING = 0.25
"""A parameter is flagged when this share of its axis lies in not-identified directions."""
ABSOLUTE_FLATNESS = 1e-12
"""Rise of the mean squared scaled error, for a move of ``identifiable_change``, below which nothing is seen."""
JACOBIAN_STEP = 1e-3
"""Central-difference step of the Jacobian, in log-scale."""
MIN_BOOTSTRAP_TRAJECTORIES = 5
"""With fewer fitting trajectories the bootstrap resamples blocks of consecutive windows instead."""
BOOTSTRAP_BLOCKS = 10
"""How many blocks the windows are cut into when the trajectories are too few to resample."""


@dataclass(frozen=True)
class Prior:
    """The prior range of one parameter's scale factor (``low < high``, both > 0)."""

    handle: str
    low: float
    high: float

    @property
    def log_bounds(self) -> tuple[float, float]:
        """``(log low, log high)``."""
        return math.log(self.low), math.log(self.high)


def parse_priors(parameters: Mapping[str, Any]) -> tuple[Prior, ...]:
    """Parses ``{handle: [low, high]}`` prior ranges of scale factors; a ``None`` range leaves the handle out
    (so a command line can drop a default: ``transfer.parameters.gains=null``).

    Raises:
        ValueError: an empty mapping, a range that is not two finite numbers, a non-positive scale, or
            ``low >= high``, naming the handle and the bad range.
    """
    if isinstance(parameters, Mapping):
        parameters = {handle: bounds for handle, bounds in parameters.items() if bounds is not None}
    if not isinstance(parameters, Mapping) or not parameters:
        raise ValueError(f"parameters={parameters!r}: give at least one handle with a prior scale range, "
                         f"e.g. {{masses: [0.5, 2.0], gains: [0.5, 2.0]}}")
    priors = []
    for handle, bounds in parameters.items():
        if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or len(bounds) != 2 \
                or not all(is_number(b) and math.isfinite(float(b)) for b in bounds):
            raise ValueError(f"parameter '{handle}': prior range {bounds!r} must be [low, high], two finite numbers")
        low, high = float(bounds[0]), float(bounds[1])
        if low <= 0:
            raise ValueError(f"parameter '{handle}': prior range [{low:g}, {high:g}] is a scale factor and must be > 0 "
                             f"(a scale <= 0 is not physical); e.g. [0.25, 4.0]")
        if low >= high:
            raise ValueError(f"parameter '{handle}': prior range [{low:g}, {high:g}] needs low < high")
        priors.append(Prior(str(handle), low, high))
    return tuple(priors)


def prior_spec(priors: Sequence[Prior]) -> DynamicsSpec:
    """The priors as a log-uniform randomization (what the data is assumed to come from)."""
    terms = tuple(ParameterTerm(p.handle, LogUniform(p.low, p.high), "scale") for p in priors)
    return DynamicsSpec(name="prior", parameters=terms)


def check_priors(env: str | EnvSpec, priors: Sequence[Prior]) -> dict[str, list[str]]:
    """Checks the handles exist on ``env``, the ranges are physical, and no two handles overlap.

    Returns ``{handle: member parameter names}``.

    Raises:
        ValueError: an unknown handle (listing the valid groups and parameters), a range giving a physically
            invalid value, overlapping handles, or a handle whose members are all zero (a scale cannot move them).
    """
    spec = resolve_env(env)
    try:
        validate_dynamics(spec, prior_spec(priors))
    except ValueError as err:
        raise ValueError(f"sysid parameters: {err}") from None
    probe = make_env(spec)
    try:
        nominal = apply_fixed_dynamics(probe, DynamicsSpec(), env_name=spec.name)
        members = {p.handle: DomainRandomization(probe, DynamicsSpec(parameters=prior_spec([p]).parameters),
                                                 env_name=spec.name).dynamics.randomized_names for p in priors}
    finally:
        probe.close()
    seen: dict[str, str] = {}
    for handle, names in members.items():
        for name in names:
            if name in seen:
                raise ValueError(f"sysid parameters '{seen[name]}' and '{handle}' overlap (both scale '{name}'); "
                                 f"identify one of them")
            seen[name] = handle
        if all(nominal[name] == 0 for name in names):
            raise ValueError(f"sysid parameter '{handle}': every member ({', '.join(names)}) is 0 on {spec.name}, "
                             f"so a scale cannot change it; choose another parameter")
    return members


def check_horizon(horizon: int, longest: int, what: str) -> None:
    """Raises before any work when no trajectory can hold one replay window of ``horizon`` steps.

    ``what`` names where ``longest`` (the longest trajectory) comes from, for the message.
    """
    if horizon > longest:
        raise ValueError(f"horizon={horizon} is longer than {what}={longest}: no trajectory holds a replay window of "
                         f"{horizon} steps; lower the horizon (1 is one-step prediction error) or record longer "
                         f"trajectories")


@dataclass(frozen=True)
class IdentifySettings:
    """Settings of system identification.

    Attributes:
        parameters: ``{handle: (low, high)}``: the parameter handles or groups to identify, with the prior
            range of each one's scale factor (both > 0).
        latency_max: Action latencies ``0..latency_max`` control steps are tried (0: latency not identified).
        horizon: Steps ``k`` of each replayed window in the fit (1: one-step prediction error).
        report_horizon: A longer horizon at which the held-out prediction error is also reported.
        holdout_fraction: Share of the trajectories held out of the fit, to report the prediction error on.
        evaluations: CMA-ES budget of objective evaluations per latency.
        search_windows: CMA-ES scores candidates on a seeded random subset of at most this many windows
            (the polish and the spread use them all).
        polish_steps: Levenberg-Marquardt steps after CMA-ES (0: none).
        bootstrap: Bootstrap resamples of the trajectories for the spread.
        identifiable_change: Relative parameter change that must be visible in the data (flatness test) and
            that the bootstrap spread must stay below, for a parameter to count as identified.
        flat_tolerance: Curvature, relative to the largest, below which a direction counts as flat.
        spread_k: The calibrated range spans ``spread_k`` spreads on each side of the fit ...
        min_width: ... but at least ``x(1 + min_width)`` on each side.
        seed: Seed of the hold-out split, CMA-ES and the bootstrap.
    """

    parameters: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PARAMETERS))
    latency_max: int = 0
    horizon: int = 1
    report_horizon: int = 5
    holdout_fraction: float = 0.2
    evaluations: int = 150
    search_windows: int = 300
    polish_steps: int = 5
    bootstrap: int = 200
    identifiable_change: float = 0.1
    flat_tolerance: float = 1e-6
    spread_k: float = 2.0
    min_width: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        # Stored parsed: a handle given as None (dropped) leaves no trace, and to_dict() sees plain ranges.
        object.__setattr__(self, "parameters", {p.handle: (p.low, p.high) for p in parse_priors(self.parameters)})
        require_int("latency_max", self.latency_max, minimum=0)
        require_int("horizon", self.horizon, minimum=1)
        require_int("report_horizon", self.report_horizon, minimum=1)
        require_float("holdout_fraction", self.holdout_fraction, low=0.0, high=1.0, high_open=True)
        require_int("evaluations", self.evaluations, minimum=10)
        require_int("search_windows", self.search_windows, minimum=10)
        require_int("polish_steps", self.polish_steps, minimum=0)
        require_int("bootstrap", self.bootstrap, minimum=2)
        require_float("identifiable_change", self.identifiable_change, low=0.0, low_open=True)
        require_float("flat_tolerance", self.flat_tolerance, low=0.0, low_open=True)
        require_float("spread_k", self.spread_k, low=0.0, low_open=True)
        require_float("min_width", self.min_width, low=0.0)
        require_int("seed", self.seed, minimum=0)

    @property
    def priors(self) -> tuple[Prior, ...]:
        """The parsed prior ranges."""
        return parse_priors(self.parameters)


@dataclass(frozen=True)
class ParameterEstimate:
    """The identified scale of one parameter handle.

    Attributes:
        handle: The parameter handle or group.
        value: Fitted scale factor (for a flagged parameter: one point among those that fit equally).
        log_spread: Bootstrap standard deviation of the log-scale; None when not identified.
        prior: The prior range.
        calibrated: The range the calibrated randomization draws from (log-uniform).
        identifiable: Whether the data determine it (see the module docstring).
        confounded_with: Other handles sharing its not-identified directions.
        true_value: The true scale where known (a simulated target), else None.
    """

    handle: str
    value: float
    log_spread: float | None
    prior: tuple[float, float]
    calibrated: tuple[float, float]
    identifiable: bool
    confounded_with: tuple[str, ...] = ()
    true_value: float | None = None

    @property
    def error(self) -> float | None:
        """Relative identification error ``value / true - 1`` where the truth is known."""
        return None if self.true_value is None else self.value / self.true_value - 1.0


@dataclass(frozen=True)
class LatencyEstimate:
    """The identified action latency (control steps).

    Attributes:
        value: The latency with the lowest error.
        searched: Latencies tried.
        losses: Fit error (mean squared scaled error) of each latency at its CMA-ES point, on all fitting
            windows: what the latencies are compared on (the winner's polished error is ``fit["loss"]``).
        calibrated: ``(low, high)`` latencies the data cannot tell apart from the best (error within x2).
        true_value: The true latency where known.
    """

    value: int
    searched: tuple[int, ...]
    losses: dict[int, float]
    calibrated: tuple[int, int]
    true_value: int | None = None

    @property
    def identified(self) -> bool:
        """Searched (more than one candidate) and unique."""
        return len(self.searched) > 1 and self.calibrated[0] == self.calibrated[1]


def calibrated_randomization(ranges: Mapping[str, Sequence[float]], latency: Sequence[int] | None,
                             base: DynamicsSpec | None = None, name: str = "calibrated") -> DynamicsSpec:
    """A calibrated randomization: ``base``'s terms and effects (e.g. the source's, covering what was not
    identified) with a log-uniform scale term per identified handle after them (so they override on shared
    members), and ``latency`` (``[low, high]`` control steps, ``None`` when it was not searched) in the effects.
    An ADR ``base`` counts with the ranges it stands at (the ranges a finished source reached), not its limits."""
    base = (base or DynamicsSpec(name=name)).at_current_ranges()
    terms = tuple(ParameterTerm(handle, LogUniform(*map(float, r)), "scale") for handle, r in ranges.items())
    kept = tuple(t for t in base.parameters if t.target not in ranges)  # same handle: replaced
    effects = base.effects
    if latency is not None:
        low, high = (int(v) for v in latency)
        effects = replace(effects, action_latency=low, action_latency_max=high if high > low else None)
    return DynamicsSpec(name=name, parameters=kept + terms, effects=effects)


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`identify`: a distribution over the dynamics, and how well it predicts.

    Attributes:
        env: The robot's name.
        parameters: One estimate per identified handle, in the order given.
        latency: The action latency.
        directions: The eigen-directions of the error's curvature in log-scale space, each with its
            eigenvalue, bootstrap spread and status (``identified``, ``flat`` or ``uncertain``).
        fit: Fit error, evaluations, windows, horizon.
        heldout: k-step prediction error (RMS of the scaled error) on held-out trajectories, before
            calibration (nominal simulator, no latency) and after, per horizon.
        data: Steps and trajectories used for the fit and held out.
        settings: The identification settings.
        wall_time_s: Time taken.
    """

    env: str
    parameters: tuple[ParameterEstimate, ...]
    latency: LatencyEstimate
    directions: tuple[dict[str, Any], ...]
    fit: dict[str, Any]
    heldout: tuple[dict[str, Any], ...]
    data: dict[str, Any]
    settings: IdentifySettings
    wall_time_s: float = 0.0

    @property
    def non_identifiable(self) -> list[str]:
        """Handles the data cannot determine."""
        return [p.handle for p in self.parameters if not p.identifiable]

    @property
    def scales(self) -> dict[str, float]:
        """Fitted ``{handle: scale}``."""
        return {p.handle: p.value for p in self.parameters}

    def randomization(self, base: DynamicsSpec | None = None, name: str = "calibrated") -> DynamicsSpec:
        """The calibrated randomization over ``base`` (:func:`calibrated_randomization`)."""
        latency = self.latency.calibrated if len(self.latency.searched) > 1 else None
        return calibrated_randomization({p.handle: p.calibrated for p in self.parameters}, latency, base, name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (what ``calibration.json`` holds)."""
        params = {}
        for p in self.parameters:
            interval = None if p.log_spread is None else [p.value * math.exp(-2 * p.log_spread),
                                                          p.value * math.exp(2 * p.log_spread)]
            params[p.handle] = {"value": p.value, "log_spread": p.log_spread, "interval_95": interval,
                                "prior": list(p.prior), "calibrated_range": list(p.calibrated),
                                "identifiable": p.identifiable, "confounded_with": list(p.confounded_with),
                                "true_value": p.true_value, "error": p.error}
        lat = self.latency
        return {
            "env": self.env,
            "parameters": params,
            "non_identifiable": self.non_identifiable,
            "latency": {"value": lat.value, "searched": list(lat.searched),
                        "losses": {str(k): v for k, v in lat.losses.items()}, "calibrated_range": list(lat.calibrated),
                        "identified": lat.identified, "true_value": lat.true_value},
            "directions": list(self.directions),
            "fit": self.fit,
            "heldout": list(self.heldout),
            "data": self.data,
            "randomization": self.randomization().to_dict(),
            "settings": {**asdict(self.settings), "parameters": {k: list(v) for k, v in self.settings.parameters.items()}},
            "spread_method": f"bootstrap over units of one {self.fit.get('bootstrap_unit', 'trajectory')} "
                             f"({self.settings.bootstrap} resamples), each refitted by one Gauss-Newton step from "
                             f"the full-data fit in the identified directions",
            "wall_time_s": self.wall_time_s,
        }


class ReplayObjective:
    """The replay error as a function of log-scales (and latency), counting evaluations."""

    def __init__(self, replay: Replay, models: ScaledModels, priors: Sequence[Prior]) -> None:
        self.replay = replay
        self.models = models
        self.priors = tuple(priors)
        self.evaluations = 0

    def scales(self, x: np.ndarray) -> dict[str, float]:
        """``{handle: exp(x_i)}``."""
        return {p.handle: float(math.exp(v)) for p, v in zip(self.priors, x)}

    def residuals(self, x: np.ndarray, latency: int) -> np.ndarray:
        """Scaled residuals ``(windows, horizon, dims)`` at log-scales ``x``."""
        self.evaluations += 1
        return self.replay.residuals(self.models(self.scales(x)), latency)

    def __call__(self, x: np.ndarray, latency: int) -> float:
        return float(np.mean(self.residuals(x, latency) ** 2))


def split_episodes(data: Trajectories, holdout_fraction: float, rng: np.random.Generator
                   ) -> tuple[Trajectories, Trajectories]:
    """``(fit, held out)``: a seeded random share of the trajectories held out (none if only one)."""
    n = data.n_episodes
    held = min(n - 1, int(round(holdout_fraction * n))) if n > 1 else 0
    order = rng.permutation(n)
    return data.select_episodes(np.sort(order[held:])), data.select_episodes(np.sort(order[:held]))


def cma_fit(objective: ReplayObjective, latency: int, evaluations: int, seed: int) -> tuple[np.ndarray, float]:
    """CMA-ES over the log-scales within the prior bounds; returns the best point and its error.

    ``cma`` needs two dimensions at least: a single parameter gets a dummy second coordinate the
    objective ignores.
    """
    lows, highs = (np.array(b) for b in zip(*(p.log_bounds for p in objective.priors)))
    n = len(lows)
    pad = 1 if n == 1 else 0
    lo, hi = np.append(lows, [-1.0] * pad), np.append(highs, [1.0] * pad)
    options = {"bounds": [lo.tolist(), hi.tolist()], "CMA_stds": (hi - lo).tolist(), "seed": seed % (2**31 - 2) + 1,
               "maxfevals": evaluations, "tolx": 1e-7, "tolfun": 1e-14, "tolflatfitness": 10, "verbose": -9}
    import cma  # imports matplotlib and scipy.stats: loaded only when a fit runs

    es = cma.CMAEvolutionStrategy(((lo + hi) / 2).tolist(), 0.25, options)
    while not es.stop():
        candidates = es.ask()
        es.tell(candidates, [objective(np.asarray(c)[:n], latency) for c in candidates])
    best = np.asarray(es.result.xbest)[:n]
    return best, float(es.result.fbest)


def jacobian(objective: ReplayObjective, x: np.ndarray, latency: int) -> tuple[np.ndarray, np.ndarray]:
    """``(J, r)``: residuals at ``x`` flattened per window ``(windows, m)`` and their Jacobian by central
    differences ``(windows, m, n)``."""
    r = objective.residuals(x, latency)
    r = r.reshape(len(r), -1)
    columns = []
    for i in range(len(x)):
        step = np.zeros_like(x)
        step[i] = JACOBIAN_STEP
        plus = objective.residuals(x + step, latency).reshape(r.shape)
        minus = objective.residuals(x - step, latency).reshape(r.shape)
        columns.append((plus - minus) / (2 * JACOBIAN_STEP))
    return np.stack(columns, axis=-1), r


def polish(objective: ReplayObjective, x: np.ndarray, loss: float, latency: int, steps: int) -> tuple[np.ndarray, float]:
    """Levenberg-Marquardt steps on the residuals from ``x``, kept within the prior bounds."""
    lows, highs = (np.array(b) for b in zip(*(p.log_bounds for p in objective.priors)))
    damping = 1e-6  # near Gauss-Newton: Marquardt's diagonal damping would stall weak, correlated directions
    for _ in range(steps):
        jac, r = jacobian(objective, x, latency)
        jac, r = jac.reshape(-1, len(x)), r.ravel()
        gram, grad = jac.T @ jac, jac.T @ r
        if not np.trace(gram) > 0:
            break
        system = gram + damping * np.diag(np.diag(gram)) + 1e-12 * np.trace(gram) * np.eye(len(x))
        candidate = np.clip(x - np.linalg.solve(system, grad), lows, highs)
        candidate_loss = objective(candidate, latency)
        if candidate_loss < loss:
            moved = float(np.max(np.abs(candidate - x)))
            x, loss, damping = candidate, candidate_loss, damping / 3
            if moved < 1e-6:
                break
        else:
            damping *= 100
    return x, loss


def bootstrap_units(replay: Replay) -> tuple[np.ndarray, str]:
    """The resampling unit of each window, and what a unit is.

    Units are the trajectories, so that errors correlated within one stay together. With fewer than
    :data:`MIN_BOOTSTRAP_TRAJECTORIES` (one long log, say), resampling them would give a spread of ~0, so
    each trajectory's windows are cut into blocks of consecutive windows instead (about
    :data:`BOOTSTRAP_BLOCKS` in all, never spanning two trajectories): a block bootstrap.
    """
    episode = replay.episode_of
    if len(np.unique(episode)) >= MIN_BOOTSTRAP_TRAJECTORIES:
        return episode, "trajectory"
    block = max(1, math.ceil(len(episode) / BOOTSTRAP_BLOCKS))
    # Window positions within their trajectory (windows are stored in order, trajectory by trajectory).
    first = np.searchsorted(episode, episode, side="left")
    position = np.arange(len(episode)) - first
    key = episode * (len(episode) + 1) + position // block
    _, unit = np.unique(key, return_inverse=True)
    return unit.astype(int), f"block of {block} consecutive windows"


def analyse(objective: ReplayObjective, x: np.ndarray, latency: int, settings: IdentifySettings,
            rng: np.random.Generator, unit: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Eigen-structure of the curvature and the linearized bootstrap.

    Returns ``(directions, log_spread per parameter, flagged loading per parameter)``; the spread is NaN
    for parameters whose axis lies in not-identified directions.
    """
    jac, r = jacobian(objective, x, latency)
    n_res = r.size
    flat_jac = jac.reshape(-1, len(x))
    hessian = flat_jac.T @ flat_jac / n_res
    eigenvalues, vectors = np.linalg.eigh(hessian)
    change = math.log1p(settings.identifiable_change)
    flat = eigenvalues * change**2 < max(ABSOLUTE_FLATNESS, settings.flat_tolerance * eigenvalues.max() * change**2)
    # Per-unit normal equations (``unit``: each window's resampling unit, :func:`bootstrap_units`), resampled
    # with replacement.
    n_units = int(unit.max()) + 1
    grams = np.zeros((n_units, len(x), len(x)))
    grads = np.zeros((n_units, len(x)))
    np.add.at(grams, unit, np.einsum("wmi,wmj->wij", jac, jac))
    np.add.at(grads, unit, np.einsum("wmi,wm->wi", jac, r))
    kept = vectors[:, ~flat]
    samples = np.zeros((settings.bootstrap, len(x)))
    if kept.shape[1] and n_units > 1:
        for b in range(settings.bootstrap):
            counts = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units))
            gram = kept.T @ np.tensordot(counts, grams, axes=1) @ kept
            grad = kept.T @ (counts @ grads)
            samples[b] = -kept @ np.linalg.lstsq(gram, grad, rcond=None)[0]
    # A single unit cannot be resampled: no spread can be estimated, so nothing counts as identified.
    unseen = flat | (n_units < 2)
    direction_spread = np.where(unseen, np.inf, np.sqrt(np.mean((samples @ vectors) ** 2, axis=0)))
    bad = flat | (direction_spread > change)
    loading = (vectors[:, bad] ** 2).sum(axis=1)
    # Root mean square about the reported point, not the resamples' mean: an unfinished fit widens it.
    spread = np.where(loading > FLAG_LOADING, np.nan, np.sqrt(np.mean(samples**2, axis=0)))
    handles = [p.handle for p in objective.priors]
    directions = []
    for j in np.argsort(-eigenvalues):
        status = "flat" if flat[j] else ("uncertain" if bad[j] else "identified")
        directions.append({"direction": {h: float(v) for h, v in zip(handles, vectors[:, j])},
                           "eigenvalue": float(eigenvalues[j]),
                           "log_spread": None if flat[j] else float(direction_spread[j]), "status": status})
    return directions, spread, loading


def true_scales(env: str | EnvSpec, truth: DynamicsSpec, priors: Sequence[Prior]) -> dict[str, float | None]:
    """The true scale of each handle under ``truth`` (a known target), where all its members share one."""
    spec = resolve_env(env)
    nominal_env, true_env = make_env(spec), make_env(spec, target=truth)
    try:
        nominal = apply_fixed_dynamics(nominal_env, DynamicsSpec(), env_name=spec.name)
        true = apply_fixed_dynamics(true_env, DynamicsSpec(), env_name=spec.name)
        result: dict[str, float | None] = {}
        for p in priors:
            names = DomainRandomization(nominal_env, DynamicsSpec(parameters=prior_spec([p]).parameters),
                                        env_name=spec.name).dynamics.randomized_names
            ratios = [true[n] / nominal[n] for n in names if nominal[n] != 0]
            result[p.handle] = float(ratios[0]) if ratios and np.allclose(ratios, ratios[0], rtol=1e-9) else None
        return result
    finally:
        nominal_env.close()
        true_env.close()


def true_latency(truth: DynamicsSpec | None) -> int | None:
    """The fixed action latency of a known target (None when drawn per episode or unknown)."""
    if truth is None:
        return None
    effects: EffectsSpec = truth.effects
    if effects.action_latency_max not in (None, effects.action_latency):
        return None
    return int(effects.action_latency)


def identify(env: str | EnvSpec, data: Trajectories, settings: IdentifySettings,
             truth: DynamicsSpec | None = None) -> Calibration:
    """Identifies the scales of ``settings.parameters`` (and the latency) from ``data``.

    Args:
        env: The simulator to calibrate (its nominal model).
        data: Trajectories recorded on the system to identify (see :mod:`sim2real.sysid.data`).
        settings: What to identify and how.
        truth: The true dynamics where known (a simulated target), only to report identification errors.

    Raises:
        ValueError: unknown or overlapping parameters, unphysical priors, data from another env, or data
            without a single window of ``horizon`` steps.
    """
    start = time.perf_counter()
    spec = resolve_env(env)
    priors = settings.priors
    check_priors(spec, priors)
    check_env(data, spec)
    split_rng, search_rng, bootstrap_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(settings.seed).spawn(3))
    fit_data, held_data = split_episodes(data, settings.holdout_fraction, split_rng)
    replay = Replay(spec, fit_data, settings.horizon)
    if not len(replay):
        longest = data.longest_episode
        where = "of the data" if longest < settings.horizon else \
            f"left for the fit after holding out {held_data.n_episodes} (holdout_fraction={settings.holdout_fraction})"
        raise ValueError(f"no trajectory {where} is {settings.horizon} steps long (horizon={settings.horizon}; the "
                         f"longest recorded is {longest}); record longer trajectories or lower the horizon")
    models = ScaledModels(spec)
    chosen = np.sort(search_rng.permutation(len(replay))[: settings.search_windows])
    search = ReplayObjective(replay.subset(chosen), models, priors)
    fits = {d: cma_fit(search, d, settings.evaluations, settings.seed + d) for d in range(settings.latency_max + 1)}
    objective = ReplayObjective(replay, models, priors)
    # Every latency scored on all fitting windows at its CMA-ES point; the latencies are compared (and ties
    # found) on these, before the winner alone is polished, so that no latency is favoured by a polish.
    losses = {d: objective(x, d) for d, (x, _) in fits.items()}
    latency = min(losses, key=losses.__getitem__)
    best = losses[latency]
    tied = [d for d, value in losses.items() if value - best <= max(ABSOLUTE_FLATNESS, best)]
    x, loss = polish(objective, fits[latency][0], best, latency, settings.polish_steps)
    unit, unit_kind = bootstrap_units(replay)
    directions, spread, loading = analyse(objective, x, latency, settings, bootstrap_rng, unit)
    truth_scales = true_scales(spec, truth, priors) if truth is not None else {}
    estimates = _estimates(priors, x, spread, loading, directions, settings, truth_scales)
    latency_estimate = LatencyEstimate(value=latency, searched=tuple(fits), losses=losses,
                                       calibrated=(min(tied), max(tied)), true_value=true_latency(truth))
    heldout = _heldout_errors(spec, held_data, replay, models, objective.scales(x), latency, settings)
    return Calibration(
        env=spec.name, parameters=estimates, latency=latency_estimate, directions=tuple(directions),
        fit={"loss": loss, "rmse": math.sqrt(loss), "evaluations": search.evaluations + objective.evaluations,
             "windows": len(replay), "search_windows": len(chosen), "horizon": settings.horizon,
             "bootstrap_unit": unit_kind},
        heldout=heldout,
        data={"steps": len(data), "episodes": data.n_episodes, "fit_steps": len(fit_data),
              "fit_episodes": fit_data.n_episodes, "heldout_steps": len(held_data),
              "heldout_episodes": held_data.n_episodes},
        settings=settings, wall_time_s=round(time.perf_counter() - start, 2))


def _estimates(priors: Sequence[Prior], x: np.ndarray, spread: np.ndarray, loading: np.ndarray,
               directions: list[dict[str, Any]], settings: IdentifySettings,
               truth: Mapping[str, float | None]) -> tuple[ParameterEstimate, ...]:
    bad_directions = [d["direction"] for d in directions if d["status"] != "identified"]
    floor = math.log1p(settings.min_width)
    estimates = []
    for i, prior in enumerate(priors):
        identifiable = not loading[i] > FLAG_LOADING
        partners = [] if identifiable else _partners(prior.handle, bad_directions)
        lows, highs = prior.log_bounds
        if identifiable:
            width = max(settings.spread_k * float(spread[i]), floor)
            calibrated = (math.exp(max(x[i] - width, lows)), math.exp(min(x[i] + width, highs)))
        else:
            calibrated = (prior.low, prior.high)
        estimates.append(ParameterEstimate(
            handle=prior.handle, value=float(math.exp(x[i])), log_spread=float(spread[i]) if identifiable else None,
            prior=(prior.low, prior.high), calibrated=calibrated, identifiable=identifiable,
            confounded_with=tuple(partners), true_value=truth.get(prior.handle)))
    return tuple(estimates)


def _partners(handle: str, directions: list[dict[str, float]], share: float = 0.05) -> list[str]:
    """Handles with a real share of a not-identified direction that ``handle`` also has a share of."""
    involved = [d for d in directions if d[handle] ** 2 > share]
    return sorted({h for d in involved for h, v in d.items() if h != handle and v**2 > share})


def _heldout_errors(env: EnvSpec, held: Trajectories, fit_replay: Replay, models: ScaledModels,
                    scales: dict[str, float], latency: int, settings: IdentifySettings) -> tuple[dict[str, Any], ...]:
    """RMS scaled k-step error on held-out trajectories: nominal simulator vs calibrated, per horizon."""
    rows = []
    nominal, fitted = models({}), models(scales)
    for horizon in sorted({1, settings.horizon, settings.report_horizon}):
        replay = Replay(env, held, horizon, scale=fit_replay.scale) if len(held) else None
        if replay is None or not len(replay):
            rows.append({"horizon": horizon, "windows": 0, "rmse_before": None, "rmse_after": None})
            continue
        rows.append({"horizon": horizon, "windows": len(replay),
                     "rmse_before": math.sqrt(replay.loss(nominal, 0)),
                     "rmse_after": math.sqrt(replay.loss(fitted, latency))})
    return tuple(rows)
