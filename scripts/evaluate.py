"""Transfer-gap evaluation of policies on the source (nominal) dynamics and a target, with baselines.

    python scripts/evaluate.py 'policies=[outputs/train/a,outputs/transfer/b]' target=high_gravity \\
        episodes=10 seeds=3 hydra.run.dir=outputs/evaluate/demo
    python scripts/evaluate.py 'policies=[RUN]' target=heavy eval=robustness baselines.oracle=ORACLE_RUN

Baselines are given run folders; scripts/pipeline.py trains them (from-scratch and oracle runs) as its stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from sim2real.cli import output_dir, run_script, trusted_code, user_overrides, write_run_config
from sim2real.evaluation import (
    Baselines,
    EvalSettings,
    PolicyEntry,
    SimilaritySettings,
    SweepSpec,
    evaluate_policies,
    format_markdown,
)
from sim2real.presets import target_spec, to_dict
from sim2real.runs import check_artifacts, check_run_dir, claim_run_dir
from sim2real.seeding import set_torch_threads
from sim2real.validation import require_bool, require_known_keys


def eval_settings(data: dict[str, Any]) -> EvalSettings:
    """Builds :class:`EvalSettings` from the ``eval`` config group."""
    data = dict(data)
    require_known_keys("eval", data, EvalSettings.__dataclass_fields__)
    similarity = data.pop("similarity", None)
    sweep = data.pop("sweep", None)
    return EvalSettings(similarity=SimilaritySettings(**similarity) if similarity else None,
                        sweep=SweepSpec.from_dict(sweep) if sweep else None, **data)


def policy_entries(policies: list[str], names: list[str] | None) -> list[PolicyEntry]:
    """Pairs run folders with optional display names."""
    if names is not None and len(names) != len(policies):
        raise ValueError(f"names has {len(names)} entries but policies has {len(policies)}")
    return [PolicyEntry(Path(run), name) for run, name in zip(policies, names or [None] * len(policies))]


def evaluate_command(cfg: DictConfig) -> None:
    """Checks the folder, the policies and the settings, then evaluates and writes the report."""
    out_dir = output_dir()
    set_torch_threads(cfg.get("torch_threads"))
    raw = to_dict(cfg)
    overwrite = require_bool("overwrite", raw["overwrite"])
    check_run_dir(out_dir, "evaluate", overwrite=overwrite)
    trusted_code(raw)
    entries = policy_entries(list(raw["policies"] or []), raw.get("names"))
    for entry in entries:
        check_artifacts(entry.run_dir)
    settings = eval_settings(raw["eval"])
    baselines = Baselines.from_dict(raw["baselines"]) if raw.get("baselines") else None
    with claim_run_dir(out_dir, "evaluate", overwrite=overwrite):
        write_run_config(out_dir, {**raw, "overwrite": False}, user_overrides())
        report = evaluate_policies(entries, target=target_spec(raw["target"]), episodes=raw["episodes"],
                                   seeds=raw["seeds"], out_dir=out_dir, baselines=baselines,
                                   zero_shot=raw.get("zero_shot"), workers=raw.get("workers"), settings=settings)
    print(format_markdown(report))
    print(f"report: {out_dir / 'report.json'}, {out_dir / 'report.md'}")


@hydra.main(config_path="../configs", config_name="evaluate", version_base=None)
def main(cfg: DictConfig) -> None:
    """The Hydra entry point: bad input ends it with ``error: ...`` and exit code 2."""
    run_script(evaluate_command, cfg)


if __name__ == "__main__":
    main()
