"""The main job: DR source training -> zero-shot check -> baselines -> transfer methods -> gap report -> export.

    python scripts/pipeline.py                                   # the small default
    python scripts/pipeline.py hydra.run.dir=outputs/my_run      # rerun the same command to resume
    python scripts/pipeline.py -m seed=0,1,2 budget=10000,20000  # a sweep (see configs/pipeline.yaml)

Every stage writes its own folder; a rerun skips the stages that are complete and valid. The whole
config is validated before the first stage starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim2real.pipeline import pipeline_config_from_dict, run_pipeline
from sim2real.presets import to_dict
from sim2real.runs import CONFIG_FILE, write_text_atomic
from sim2real.seeding import seed_everything, set_torch_threads


@hydra.main(config_path="../configs", config_name="pipeline", version_base=None)
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = pipeline_config_from_dict(to_dict(cfg))
    except ValueError as err:
        sys.exit(f"pipeline: {err}")
    write_text_atomic(out_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg))
    seed_everything(config.seed)
    set_torch_threads(cfg.get("torch_threads"))
    print(f"pipeline: {config.env.name}, target '{config.target.name}', methods {[m.name for m in config.methods]}, "
          f"budget {config.budget} target steps, seed {config.seed} -> {out_dir}")
    summary = run_pipeline(config, out_dir)
    report_md = out_dir / "report" / "report.md"
    if report_md.is_file():
        print()
        print(report_md.read_text())
    print(f"wall time {summary['wall_time_s']:.0f} s; artifacts:")
    for name, stage in summary["stages"].items():
        print(f"  {name:24s} {stage['folder']}")
    for extra in ("report/report.json", "report/report.md", "export/bundle", "pipeline.json"):
        if (out_dir / extra).exists():
            print(f"  {extra:24s} {out_dir / extra}")


if __name__ == "__main__":
    main()
