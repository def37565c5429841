"""Robustness sweep: a policy's return over a grid of perturbation magnitudes of one or two parameter groups.

Each grid cell is a constant target such as ``{masses: scale 1.2, gains: scale 0.8}`` (from nominal);
every cell is evaluated with the same episode seeds, so differences between cells come from the
dynamics, not from the initial states.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sim2real.envs.registry import EnvSpec
from sim2real.evaluation.parallel import RolloutJob, RolloutKey, episode_seed_bases, run_keyed
from sim2real.evaluation.rollout import RolloutResult
from sim2real.evaluation.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, summarize
from sim2real.randomization.factory import validate_dynamics
from sim2real.randomization.spec import DynamicsSpec
from sim2real.validation import require_choice, require_int, require_known_keys


@dataclass(frozen=True)
class SweepSpec:
    """What a robustness sweep covers.

    Attributes:
        groups: One or two parameter groups (or parameter names) mapped to the scale factors to try,
            e.g. ``{"masses": (0.5, 1.0, 1.5), "gains": (0.6, 1.0, 1.4)}``.
        operation: How a value is applied: ``scale`` (nominal x value) or ``add`` (nominal + value).
        episodes: Episodes per seed and cell.
        seeds: Evaluation seeds per cell.
        policies: Names of the policies to sweep (None: the evaluator's default, its adapted and zero-shot ones).
        coverage_reference: A swept policy whose nominal cell sets one line for every policy's coverage, so
            counts compare across policies (None: each policy's count uses its own nominal cell only). A policy
            that falls on the nominal robot has a low line of its own and so a high count of its own.
    """

    groups: Mapping[str, Sequence[float]]
    operation: str = "scale"
    episodes: int = 5
    seeds: int = 1
    policies: tuple[str, ...] | None = None
    coverage_reference: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.groups) <= 2:
            raise ValueError(f"sweep.groups must name one or two parameter groups, got {list(self.groups)}")
        for name, values in self.groups.items():
            if len(values) < 1:
                raise ValueError(f"sweep.groups.{name}: give at least one value")
        require_choice("sweep.operation", self.operation, ("scale", "add"))
        for name in ("episodes", "seeds"):
            require_int(f"sweep.{name}", getattr(self, name), minimum=1)
        if self.coverage_reference is not None and not isinstance(self.coverage_reference, str):
            raise ValueError(f"sweep.coverage_reference must be the name of a swept policy or null, "
                             f"got {self.coverage_reference!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        """Parses ``{groups: {name: [values]}, operation, episodes, seeds, policies, coverage_reference}``."""
        data = dict(data)
        require_known_keys("sweep", data, cls.__dataclass_fields__)
        groups = {str(k): tuple(float(v) for v in values) for k, values in dict(data.pop("groups", {}) or {}).items()}
        policies = data.pop("policies", None)
        return cls(groups=groups, policies=tuple(policies) if policies else None, **data)

    @property
    def names(self) -> list[str]:
        """The swept groups, in order (rows, then columns of the grid)."""
        return list(self.groups)

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape."""
        return tuple(len(values) for values in self.groups.values())

    def cells(self) -> list[tuple[tuple[float, ...], DynamicsSpec]]:
        """Every grid cell's values and constant target, row-major."""
        cells = []
        for values in itertools.product(*self.groups.values()):
            parameters = {name: {"op": self.operation, "value": value} for name, value in zip(self.names, values)}
            label = ",".join(f"{name}={value:g}" for name, value in zip(self.names, values))
            cells.append((tuple(values), DynamicsSpec.from_dict({"name": label, "parameters": parameters})))
        return cells

    def validate(self, env: str | EnvSpec) -> None:
        """Checks every cell fits the env (names exist, values physically valid) before any rollout."""
        validate_dynamics(env, *(spec for _, spec in self.cells()))

    def swept(self, names: Sequence[str], default: Sequence[str]) -> list[str]:
        """The policies to sweep among the evaluated ``names``: ``policies``, else ``default``.

        Raises:
            ValueError: ``policies`` names a policy that is not evaluated (the message lists the evaluated ones),
                or ``coverage_reference`` names one that is not swept (the message lists the swept ones).
        """
        if self.policies is None:
            swept = list(default)
        else:
            unknown = [name for name in self.policies if name not in names]
            if unknown:
                raise ValueError(f"sweep.policies: unknown {unknown}; known: {', '.join(names)}")
            swept = list(self.policies)
        if self.coverage_reference is not None and self.coverage_reference not in swept:
            raise ValueError(f"sweep.coverage_reference: {self.coverage_reference!r} is not a swept policy; "
                             f"swept: {', '.join(swept) or 'none'}")
        return swept


COVERAGE_FRACTION = 0.5
"""A cell counts as covered when its mean return reaches this fraction of the policy's own nominal cell."""


@dataclass
class SweepResult:
    """Returns over the grid for one policy.

    Attributes:
        policy: Policy name.
        groups: Swept groups (rows, then columns).
        values: The values of each group.
        operation: ``scale`` or ``add``.
        mean: Mean return per cell, shape ``shape``.
        ci_low: Lower bootstrap bound per cell.
        ci_high: Upper bootstrap bound per cell.
        n: Episodes per cell.
    """

    policy: str
    groups: list[str]
    values: list[list[float]]
    operation: str
    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the nominal cell's return and the coverage at half of it."""
        data = asdict(self)
        for key in ("mean", "ci_low", "ci_high"):
            data[key] = np.asarray(getattr(self, key)).tolist()
        data["nominal_return"] = self.nominal_return
        data["cells_at_half_nominal"] = self.cells_at_least(COVERAGE_FRACTION)
        return data

    @property
    def nominal_return(self) -> float | None:
        """Mean return in the grid's unperturbed cell (every value 1 for ``scale``, 0 for ``add``); None if the
        grid has no such cell."""
        identity = 1.0 if self.operation == "scale" else 0.0
        index = []
        for values in self.values:
            if identity not in values:
                return None
            index.append(values.index(identity))
        return float(np.asarray(self.mean)[tuple(index)])

    def covered(self, fraction: float = COVERAGE_FRACTION, nominal: float | None = None) -> np.ndarray | None:
        """Which cells reach ``fraction`` of a nominal return (a boolean grid): this grid's nominal cell, or
        ``nominal`` when given (another policy's, for a line shared by several grids). None without a nominal
        return or with one <= 0, where a fraction of it means nothing."""
        nominal = self.nominal_return if nominal is None else nominal
        if nominal is None or nominal <= 0:
            return None
        return np.asarray(self.mean) >= fraction * nominal

    def cells_at_least(self, fraction: float = COVERAGE_FRACTION, nominal: float | None = None) -> int | None:
        """How many cells :meth:`covered` counts (the coverage of a robustness grid), or None."""
        mask = self.covered(fraction, nominal)
        return None if mask is None else int(mask.sum())


def reference_nominal(sweeps: Sequence[SweepResult], reference: str) -> float | None:
    """The nominal cell's return of the policy ``reference`` among ``sweeps`` (None if its grid has none).

    Raises:
        ValueError: ``reference`` is not among ``sweeps``.
    """
    by_name = {sweep.policy: sweep for sweep in sweeps}
    if reference not in by_name:
        raise ValueError(f"coverage reference {reference!r} is not a swept policy; swept: {', '.join(by_name)}")
    return by_name[reference].nominal_return


def reference_coverage(sweeps: Sequence[SweepResult], reference: str,
                       fraction: float = COVERAGE_FRACTION) -> dict[str, dict[str, Any]]:
    """Every grid's coverage against one line, ``fraction`` of the policy ``reference``'s nominal cell, keyed by
    policy: ``{"policy": reference, "nominal_return": line's nominal, "cells": count or None}``.

    Raises:
        ValueError: ``reference`` is not among ``sweeps``.
    """
    nominal = reference_nominal(sweeps, reference)
    return {sweep.policy: {"policy": reference, "nominal_return": nominal,
                           "cells": None if nominal is None else sweep.cells_at_least(fraction, nominal)}
            for sweep in sweeps}


def sweep_jobs(policy: str, name: str, env: EnvSpec, spec: SweepSpec, eval_seed: int) -> dict[RolloutKey, RolloutJob]:
    """The rollout jobs of a sweep of ``policy`` (a run folder or the random policy) shown as ``name``, keyed by
    (name, cell label, seed index)."""
    bases = episode_seed_bases(eval_seed, spec.seeds)
    return {RolloutKey(name, target.name, k): RolloutJob(policy=policy, env=env, seed=base, episodes=spec.episodes,
                                                         target=target)
            for _, target in spec.cells() for k, base in enumerate(bases)}


def sweep_result(name: str, spec: SweepSpec, results: Mapping[RolloutKey, RolloutResult],
                 confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> SweepResult:
    """Assembles the outcome of :func:`sweep_jobs` for the policy ``name`` into a grid (``KeyError`` if a cell is missing)."""
    summaries = [summarize(np.stack([results[RolloutKey(name, target.name, k)].returns for k in range(spec.seeds)]),
                           seed, confidence, resamples) for _, target in spec.cells()]

    def grid(attribute: str) -> np.ndarray:
        return np.array([getattr(s, attribute) for s in summaries]).reshape(spec.shape)

    return SweepResult(policy=name, groups=spec.names, values=[list(v) for v in spec.groups.values()],
                       operation=spec.operation, mean=grid("mean"), ci_low=grid("ci_low"), ci_high=grid("ci_high"),
                       n=spec.episodes * spec.seeds)


def robustness_sweep(policy: str, name: str, env: EnvSpec, spec: SweepSpec, eval_seed: int = 0,
                     workers: int | None = None) -> SweepResult:
    """Evaluates ``policy`` (a run folder, or ``"random"``) over the grid of ``spec``.

    Args:
        policy: Run folder path or ``"random"``.
        name: Display name.
        env: The robot.
        spec: The grid.
        eval_seed: Root of the episode seeds.
        workers: Processes (None: the default).
    """
    spec.validate(env)
    return sweep_result(name, spec, run_keyed(sweep_jobs(policy, name, env, spec, eval_seed), workers))
