"""Reference policies for the transfer report: random, from scratch on the target, and the oracle.

* random: uniform random actions (seeded per evaluation seed); the 0 of the normalized score.
* scratch: trained on the target from scratch with the same target-step budget as the adapted
  policies (one run per budget); what an adapted policy must beat for transfer to be worth it.
* oracle: trained on the target with a full budget; the 100 of the normalized score.

Existing run folders can be given; missing scratch and oracle runs can be trained here through
:func:`sim2real.training.train`, with the source policy's algorithm and hyperparameters, the target as
the training dynamics and no randomization.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim2real.envs.registry import env_spec_from_record
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import load_metadata
from sim2real.training.config import TrainConfig, algo_config_from_dict
from sim2real.training.loading import check_run_dir


@dataclass(frozen=True)
class Baselines:
    """Which baselines the report includes.

    Attributes:
        random: Evaluate a uniform-random policy.
        scratch: From-scratch runs on the target, by target-step budget (``{budget: run folder}``).
        oracle: A run trained on the target with a full budget.
        train_missing: Train the scratch runs for budgets without one, and the oracle if missing.
        oracle_timesteps: Training steps of a trained oracle (None: the source run's ``timesteps``).
        train_seed: Seed of trained baselines.
    """

    random: bool = True
    scratch: dict[int, Path] = field(default_factory=dict)
    oracle: Path | None = None
    train_missing: bool = False
    oracle_timesteps: int | None = None
    train_seed: int = 0

    def __post_init__(self) -> None:
        for budget in self.scratch:
            if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
                raise ValueError(f"baselines.scratch: budget {budget!r} must be a positive integer")
        if self.oracle_timesteps is not None and self.oracle_timesteps <= 0:
            raise ValueError(f"baselines.oracle_timesteps={self.oracle_timesteps} must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Baselines:
        """Parses ``{random, scratch, oracle, train_missing, oracle_timesteps, train_seed}``.

        ``scratch`` is a run folder (its budget read from its metadata), a list of them, or a mapping
        ``{budget: run folder}``.
        """
        data = dict(data or {})
        valid = set(cls.__dataclass_fields__)
        unknown = set(data) - valid
        if unknown:
            raise ValueError(f"baselines: unknown keys {sorted(unknown)}; valid: {sorted(valid)}")
        scratch = scratch_runs(data.pop("scratch", None))
        oracle = data.pop("oracle", None)
        return cls(scratch=scratch, oracle=Path(oracle) if oracle else None, **data)


def scratch_runs(value: Any) -> dict[int, Path]:
    """``{budget: run folder}`` from a folder, a list of folders, or a mapping; budgets of bare folders from metadata."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {int(budget): Path(run) for budget, run in value.items()}
    folders = [value] if isinstance(value, (str, Path)) else list(value)
    runs: dict[int, Path] = {}
    for folder in folders:
        metadata = check_run_dir(folder)
        runs[int(metadata.get("timesteps_done") or metadata["timesteps"])] = Path(folder)
    return runs


def baseline_train_config(source_metadata: dict[str, Any], target: DynamicsSpec, timesteps: int, seed: int) -> TrainConfig:
    """A training config for a baseline: the source run's env and algorithm, on ``target``, no randomization."""
    env = env_spec_from_record(source_metadata["env"])
    algo_data = dict(source_metadata.get("algo_config") or {"name": source_metadata["algo"]})
    return TrainConfig(env=env, algo=algo_config_from_dict(algo_data, env.name), randomization=DynamicsSpec(),
                       target=target, timesteps=int(timesteps), seed=seed, checkpoint_every=0, eval_episodes=0,
                       progress_bar=False)


def train_baseline(run_dir: Path, source_metadata: dict[str, Any], target: DynamicsSpec, timesteps: int,
                   seed: int) -> Path:
    """Trains (or reuses a complete) baseline run into ``run_dir``; returns ``run_dir``."""
    from sim2real.training.trainer import train

    if (run_dir / "metadata.json").is_file():
        metadata = load_metadata(run_dir)
        if metadata.get("complete") and int(metadata.get("timesteps_done", 0)) >= timesteps:
            return run_dir
    config = baseline_train_config(source_metadata, target, timesteps, seed)
    print(f"training baseline {run_dir.name}: {config.algo.name} on {config.env.name}/{target.name} for {timesteps} steps")
    train(config, run_dir, resume=True)
    return run_dir
