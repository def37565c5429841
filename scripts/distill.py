"""Distill a student with history from a privileged teacher, by DAgger in simulation (zero target steps).

    python scripts/distill.py teacher=outputs/train/<teacher run> history=4 iterations=8
    python scripts/distill.py teacher=<run> iterations=16 hydra.run.dir=outputs/distill/student

The output folder must be new or empty (`overwrite=true` replaces a student there; never another kind of run).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from sim2real.cli import output_dir, run_script, user_overrides, write_run_config
from sim2real.presets import to_dict
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import check_run_dir, claim_run_dir
from sim2real.seeding import seed_everything, set_torch_threads
from sim2real.training.distill import (
    DistillSettings,
    check_randomization,
    distill,
    load_teacher,
    student_env_spec,
)
from sim2real.validation import require_bool


def distill_command(cfg: DictConfig) -> None:
    """Checks the folder, the teacher and every setting, claims the folder, then distills."""
    run_dir = output_dir()
    if OmegaConf.is_missing(cfg, "teacher"):
        raise ValueError("give the teacher's run folder: teacher=RUN_DIR (trained with policy=teacher)")
    raw = to_dict(cfg)
    overwrite = require_bool("overwrite", raw.pop("overwrite"))
    check_run_dir(run_dir, "distill", overwrite=overwrite)
    teacher, chosen = raw.pop("teacher"), raw.pop("randomization", None)
    set_torch_threads(raw.pop("torch_threads"))
    settings = DistillSettings.from_dict(raw)
    randomization = DynamicsSpec.from_dict(chosen, default_name="randomization") if chosen else None
    teacher_policy = load_teacher(teacher)  # not a teacher, a too-short history, another privileged scale: refused here
    student_env_spec(teacher_policy, settings.history)
    check_randomization(teacher_policy, randomization)
    with claim_run_dir(run_dir, "distill", overwrite=overwrite):
        write_run_config(run_dir, {**to_dict(cfg), "overwrite": False}, user_overrides())
        seed_everything(settings.seed)
        metadata = distill(teacher, run_dir, settings, randomization)
    selection = metadata["metrics"].get("selection_steps")
    spent = f"{metadata['timesteps_done']} simulated steps" + (f" + {selection} to choose a round" if selection else "")
    print(f"student (history {settings.history}, {spent}, 0 target steps): {run_dir}")


@hydra.main(config_path="../configs", config_name="distill", version_base=None)
def main(cfg: DictConfig) -> None:
    """The Hydra entry point: bad input ends it with ``error: ...`` and exit code 2."""
    run_script(distill_command, cfg)


if __name__ == "__main__":
    main()
