"""Adapt a source policy to target dynamics within a budget of target steps.

    python scripts/transfer.py source=outputs/train/<run> target=high_gravity method=finetune budget=20000 seed=0
    python scripts/transfer.py source=<run> target=noisy method=dann budget=5000 transfer.rounds=3

`method=NAME` is an alias of `transfer=NAME` (the config group configs/transfer/).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim2real.presets import target_spec, to_dict
from sim2real.runs import CONFIG_FILE, write_text_atomic
from sim2real.seeding import seed_everything, set_torch_threads
from sim2real.transfer import prepare_transfer, run_transfer


def method_alias(argv: list[str]) -> list[str]:
    """Rewrites ``method=NAME`` (and sweeps ``method=a,b``) into the config-group override ``transfer=NAME``."""
    return [f"transfer={arg[len('method='):]}" if arg.startswith("method=") else arg for arg in argv]


@hydra.main(config_path="../configs", config_name="transfer", version_base=None)
def main(cfg: DictConfig) -> None:
    set_torch_threads(cfg.get("torch_threads"))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if OmegaConf.is_missing(cfg, "source"):
        sys.exit("error: source=RUN_DIR is required (the source run folder)")
    raw = to_dict(cfg)
    settings = dict(raw["transfer"])
    method = settings.pop("name")
    if raw["method"] != method:
        sys.exit(f"method={raw['method']!r} conflicts with transfer={method!r}: choose the method with method=NAME")
    try:
        budget = int(raw["budget"]) if isinstance(raw["budget"], float) and raw["budget"].is_integer() else raw["budget"]
        instance, setup, source = prepare_transfer(
            raw["source"], target_spec(raw["target"]), method, settings, budget, int(raw["seed"]),
            device=str(raw["device"]), expect_env=raw.get("expect_env"))
    except ValueError as err:  # every bad input is reported before any work
        sys.exit(f"error: {err}")
    write_text_atomic(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg))
    seed_everything(setup.seed)
    print(f"transfer '{method}' of {setup.source_dir} ({setup.env.name}, {source.algo}) to target "
          f"'{setup.target.name}' with a budget of {setup.budget} target steps -> {run_dir}")
    metadata = run_transfer(instance, setup, source, run_dir)
    print(f"target steps used: {metadata['target_steps_used']} / {metadata['budget']} {metadata['budget_ledger']}; "
          f"wall time {metadata['wall_time_s']} s")
    for key, value in metadata["metrics"].items():
        print(f"  {key}: {value}")
    print(f"run folder: {run_dir}")


if __name__ == "__main__":
    sys.argv = method_alias(sys.argv)
    main()
