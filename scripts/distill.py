"""Distill a student with history from a privileged teacher, by DAgger in simulation (zero target steps).

    python scripts/distill.py teacher=outputs/train/<teacher run> history=4 iterations=8
    python scripts/distill.py teacher=<run> randomization=wide_mass_gain hydra.run.dir=outputs/distill/student
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim2real.presets import load_preset, to_dict
from sim2real.randomization.spec import DynamicsSpec
from sim2real.seeding import seed_everything, set_torch_threads
from sim2real.training.distill import DistillSettings, distill


@hydra.main(config_path="../configs", config_name="distill", version_base=None)
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        if OmegaConf.is_missing(cfg, "teacher"):
            raise ValueError("give the teacher's run folder: teacher=RUN_DIR (trained with policy=teacher)")
        raw = to_dict(cfg)
        teacher, name = raw.pop("teacher"), raw.pop("randomization")
        set_torch_threads(raw.pop("torch_threads"))
        settings = DistillSettings.from_dict(raw)
        randomization = DynamicsSpec.from_dict(load_preset("randomization", name), default_name=name) if name else None
    except ValueError as err:
        sys.exit(f"distill: {err}")
    seed_everything(settings.seed)
    metadata = distill(teacher, run_dir, settings, randomization)
    print(f"student (history {settings.history}, {metadata['timesteps_done']} simulated steps, 0 target steps): {run_dir}")


if __name__ == "__main__":
    main()
