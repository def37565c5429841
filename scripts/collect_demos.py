"""Record target-domain demonstrations from an expert policy into a dataset.

    python scripts/collect_demos.py expert=outputs/train/<oracle run> target=high_gravity steps=5000 seed=0
    python scripts/collect_demos.py expert=<run> target=heavy episodes=10 hydra.run.dir=outputs/demos/heavy
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim2real.data import record_expert_demonstrations, save_demonstrations
from sim2real.policies import read_run_info
from sim2real.presets import target_spec, to_dict
from sim2real.randomization.factory import validate_dynamics
from sim2real.runs import CONFIG_FILE, write_text_atomic
from sim2real.seeding import set_torch_threads
from sim2real.validation import require_int


@hydra.main(config_path="../configs", config_name="collect_demos", version_base=None)
def main(cfg: DictConfig) -> None:
    set_torch_threads(cfg.get("torch_threads"))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if OmegaConf.is_missing(cfg, "expert"):
        sys.exit("error: expert=RUN_DIR is required (the run folder of the expert policy)")
    raw = to_dict(cfg)
    try:  # every bad input is reported before recording starts
        if (raw["steps"] is None) == (raw["episodes"] is None):
            raise ValueError(f"give exactly one of steps=N and episodes=N (got steps={raw['steps']}, episodes={raw['episodes']})")
        unit = "steps" if raw["steps"] is not None else "episodes"
        count = require_int(unit, raw[unit], minimum=1)
        env = read_run_info(raw["expert"]).env
        target = target_spec(raw["target"])
        validate_dynamics(env, target)
    except ValueError as err:
        sys.exit(f"error: {err}")
    write_text_atomic(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg))
    print(f"recording {count} {unit} of expert {raw['expert']} on {env.name} with target '{target.name}'")
    dataset = record_expert_demonstrations(raw["expert"], target, **{unit: count}, seed=int(raw["seed"]))
    path = save_demonstrations(dataset, run_dir / raw["output"])
    counts = dataset.counts()
    print(f"{counts['steps']} steps, {counts['episodes']} episodes ({counts['complete_episodes']} complete), "
          f"mean return {counts['mean_return']}")
    print(f"dataset: {path} (sidecar {path.with_suffix('.json').name})")


if __name__ == "__main__":
    main()
