"""Reference policies for the transfer report: random, from scratch on the target, and the oracle.

* random: uniform random actions (seeded per evaluation seed); the 0 of the normalized score.
* scratch: trained on the target from scratch with the same target-step budget as the adapted
  policies (one run per budget); what an adapted policy must beat for transfer to be worth it.
* oracle: trained on the target with a full budget; the 100 of the normalized score.

The evaluator takes the scratch and oracle runs as given run folders; the pipeline
(:mod:`sim2real.pipeline`) trains them as stages of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim2real.policies import read_run_info
from sim2real.validation import require_int, require_known_keys


@dataclass(frozen=True)
class Baselines:
    """Which baselines the report includes.

    Attributes:
        random: Evaluate a uniform-random policy.
        scratch: From-scratch runs on the target, by target-step budget (``{budget: run folder}``).
        oracle: A run trained on the target with a full budget.
    """

    random: bool = True
    scratch: dict[int, Path] = field(default_factory=dict)
    oracle: Path | None = None

    def __post_init__(self) -> None:
        for budget in self.scratch:
            require_int("baselines.scratch budget", budget, minimum=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Baselines:
        """Parses ``{random, scratch, oracle}``.

        ``scratch`` is a run folder (its budget read from its metadata), a list of them, or a mapping
        ``{budget: run folder}``.
        """
        data = dict(data or {})
        require_known_keys("baselines", data, cls.__dataclass_fields__)
        scratch = scratch_runs(data.pop("scratch", None))
        oracle = data.pop("oracle", None)
        return cls(scratch=scratch, oracle=Path(oracle) if oracle else None, **data)


def scratch_runs(value: Any) -> dict[int, Path]:
    """``{budget: run folder}`` from a folder, a list of folders, or a mapping; the budget of a bare folder is
    the one it was trained within (its metadata's ``budget``, which the pipeline's scratch run records: it
    trains whole rollouts inside it), else the training steps it was asked for (``timesteps``: SB3 may run a
    few more to finish a rollout, which must not make it another budget than the adapted policies')."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {int(budget): Path(run) for budget, run in value.items()}
    folders = [value] if isinstance(value, (str, Path)) else list(value)
    budgets = {}
    for folder in folders:
        info = read_run_info(folder)
        if info.budget and not info.is_transfer:
            budgets[info.budget] = Path(folder)
        else:
            budgets[int(info.timesteps) if info.timesteps and not info.is_transfer else info.steps_spent] = Path(folder)
    return budgets
