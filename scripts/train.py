"""Domain-randomized training.

    python scripts/train.py env=hopper randomization=default algo=ppo timesteps=300000 seed=1
    python scripts/train.py resume=outputs/train/<run>            # continue an interrupted run
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim2real.presets import to_dict
from sim2real.runs import CONFIG_FILE, write_text_atomic
from sim2real.seeding import seed_everything, set_torch_threads
from sim2real.training import train, train_config_from_dict
from sim2real.training.report import evaluate_run, format_eval_table


@hydra.main(config_path="../configs", config_name="train", version_base=None)
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    resume = cfg.resume is not None
    if resume:
        run_dir = Path(cfg.resume)
        saved = run_dir / CONFIG_FILE
        if not saved.is_file():
            sys.exit(f"resume={cfg.resume}: no {CONFIG_FILE} there; is it a training run folder?")
        timesteps_override = [o for o in HydraConfig.get().overrides.task if o.startswith("timesteps=")]
        cfg = OmegaConf.merge(OmegaConf.load(saved), OmegaConf.from_dotlist(timesteps_override))
    config = train_config_from_dict(to_dict(cfg))  # validates everything before any training
    write_text_atomic(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg))
    seed_everything(config.seed)
    set_torch_threads(cfg.get("torch_threads"))
    print(f"training {config.algo.name} on {config.env.name} with randomization '{config.randomization.name}' "
          f"for {config.timesteps} steps -> {run_dir}")
    train(config, run_dir, resume=resume)
    if config.eval_episodes > 0:
        results = evaluate_run(run_dir, config.eval_targets, config.eval_episodes, seed=10_000 + config.seed)
        print(format_eval_table(results))
    print(f"run folder: {run_dir}")


if __name__ == "__main__":
    main()
