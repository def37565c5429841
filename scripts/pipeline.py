"""The main job: DR source training -> zero-shot check -> baselines -> transfer methods -> gap report -> export.

    python scripts/pipeline.py                                   # the small default
    python scripts/pipeline.py hydra.run.dir=outputs/my_run      # rerun the same command to resume
    python scripts/pipeline.py -m seed=0,1,2 budget=10000,20000  # a sweep (see configs/pipeline.yaml)

Every stage writes its own folder; a rerun skips the stages that are complete and valid. The whole
config is validated before the first stage starts.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sim2real.cli import (
    output_dir,
    run_script,
    trusted_code,
    user_algo_wins,
    user_overrides,
    write_run_config,
)
from sim2real.envs.registry import trust_env
from sim2real.pipeline import pipeline_config_from_dict, run_pipeline
from sim2real.presets import to_dict
from sim2real.runs import check_run_dir, claim_run_dir, run_kind
from sim2real.seeding import seed_everything, set_torch_threads


def pipeline_command(cfg: DictConfig) -> None:
    """Checks the folder and the whole config, claims the folder, then runs (or resumes) the stages."""
    out_dir = output_dir()
    resume = run_kind(out_dir) == "pipeline"  # rerunning the same command continues the pipeline there
    check_run_dir(out_dir, "pipeline", resume=resume)
    overrides = user_overrides()
    raw = user_algo_wins(to_dict(cfg), overrides)
    trusted_code(raw)
    config = pipeline_config_from_dict(raw)
    trust_env(config.env)
    with claim_run_dir(out_dir, "pipeline", resume=resume):
        write_run_config(out_dir, raw, overrides)
        seed_everything(config.seed)
        set_torch_threads(cfg.get("torch_threads"))
        print(f"pipeline: {config.env.name}, target '{config.target.name}', methods {[m.name for m in config.methods]}, "
              f"budget {config.budget} target steps, seed {config.seed} -> {out_dir}")
        try:
            summary = run_pipeline(config, out_dir)
        except KeyboardInterrupt:
            print(f"continue with the same command and hydra.run.dir={out_dir}: finished stages are kept, "
                  "a training stage resumes from its checkpoint", flush=True)
            raise
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


@hydra.main(config_path="../configs", config_name="pipeline", version_base=None)
def main(cfg: DictConfig) -> None:
    """The Hydra entry point: bad input ends it with ``error: ...`` and exit code 2."""
    run_script(pipeline_command, cfg)


if __name__ == "__main__":
    main()
