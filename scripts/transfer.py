"""Adapt a source policy to target dynamics within a budget of target steps.

    python scripts/transfer.py source=outputs/train/<run> target=high_gravity method=finetune budget=20000 seed=0
    python scripts/transfer.py source=<run> target=noisy method=dann budget=5000 transfer.rounds=3

`method=NAME` is an alias of `transfer=NAME` (the config group configs/transfer/). The output folder must
be new or empty (`overwrite=true` replaces a transfer run there); the source folder is never written.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from sim2real.cli import output_dir, run_script, trusted_code, user_overrides, write_run_config
from sim2real.presets import target_spec, to_dict
from sim2real.runs import check_artifacts, check_run_dir, claim_run_dir
from sim2real.seeding import seed_everything, set_torch_threads
from sim2real.transfer import prepare_transfer, run_transfer
from sim2real.validation import require_bool, require_int


def method_alias(argv: list[str]) -> list[str]:
    """Rewrites ``method=NAME`` (and sweeps ``method=a,b``) into the config-group override ``transfer=NAME``."""
    return [f"transfer={arg[len('method='):]}" if arg.startswith("method=") else arg for arg in argv]


def transfer_command(cfg: DictConfig) -> None:
    """Checks the folder, the source run and every setting, claims the folder, then adapts."""
    set_torch_threads(cfg.get("torch_threads"))
    run_dir = output_dir()
    if OmegaConf.is_missing(cfg, "source"):
        raise ValueError("source=RUN_DIR is required (the source run folder)")
    raw = to_dict(cfg)
    overwrite = require_bool("overwrite", raw["overwrite"])
    check_run_dir(run_dir, "transfer", overwrite=overwrite)
    trusted_code(raw)
    settings = dict(raw["transfer"])
    method = settings.pop("name")
    if raw["method"] != method:
        raise ValueError(f"method={raw['method']!r} conflicts with transfer={method!r}: choose the method with method=NAME")
    check_artifacts(raw["source"])
    instance, setup, source = prepare_transfer(
        raw["source"], target_spec(raw["target"]), method, settings, require_int("budget", raw["budget"], whole_float=True),
        raw["seed"], device=raw["device"], expect_env=raw.get("expect_env"), log=lambda line: print(line, flush=True))
    with claim_run_dir(run_dir, "transfer", overwrite=overwrite):
        write_run_config(run_dir, {**raw, "overwrite": False}, user_overrides())
        seed_everything(setup.seed)
        print(f"transfer '{method}' of {setup.source_dir} ({setup.env.name}, {source.algo}) to target "
              f"'{setup.target.name}' with a budget of {setup.budget} target steps -> {run_dir}")
        metadata = run_transfer(instance, setup, source, run_dir)
    print(f"target steps used: {metadata['target_steps_used']} / {metadata['budget']} {metadata['budget_ledger']}; "
          f"wall time {metadata['wall_time_s']} s")
    for key, value in metadata["metrics"].items():
        text = str(value)
        print(f"  {key}: {text if len(text) <= 300 else text[:300] + ' ... (whole in metadata.json)'}")
    print(f"run folder: {run_dir}")


@hydra.main(config_path="../configs", config_name="transfer", version_base=None)
def main(cfg: DictConfig) -> None:
    """The Hydra entry point: bad input ends it with ``error: ...`` and exit code 2."""
    run_script(transfer_command, cfg)


if __name__ == "__main__":
    sys.argv = method_alias(sys.argv)
    main()
