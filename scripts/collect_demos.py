"""Record target-domain demonstrations from an expert policy into a dataset.

    python scripts/collect_demos.py expert=outputs/train/<oracle run> target=high_gravity steps=5000 seed=0
    python scripts/collect_demos.py expert=<run> target=heavy episodes=10 hydra.run.dir=outputs/demos/heavy
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sim2real.cli import output_dir, run_script, trusted_code, user_overrides, write_run_config
from sim2real.data import record_expert_demonstrations, save_demonstrations
from sim2real.data.demos import sidecar_path
from sim2real.policies import read_run_info
from sim2real.presets import target_spec, to_dict
from sim2real.randomization.factory import validate_dynamics
from sim2real.runs import RunFolderError, check_artifacts, check_run_dir, claim_run_dir
from sim2real.seeding import set_torch_threads
from sim2real.validation import require_bool, require_int


def dataset_path(run_dir: Path, output: str, overwrite: bool) -> Path:
    """Where the dataset goes (``output`` inside the run folder, or an absolute path); an existing dataset
    there is refused unless ``overwrite``."""
    if not isinstance(output, str) or not output:
        raise ValueError(f"output={output!r} must be a file name (or path) for the dataset")
    path = run_dir / output
    path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    existing = [p for p in (path, sidecar_path(path)) if p.exists()]
    if existing and not overwrite:
        raise RunFolderError(f"output '{existing[0]}' already exists; choose another output=, or set overwrite=true "
                             "to replace that dataset")
    if any(p.is_dir() for p in existing):
        raise RunFolderError(f"output '{path}' is a folder, not a dataset file")
    return path


def collect_command(cfg: DictConfig) -> None:
    """Checks the folder, the dataset path, the expert and the counts, then records."""
    set_torch_threads(cfg.get("torch_threads"))
    run_dir = output_dir()
    if OmegaConf.is_missing(cfg, "expert"):
        raise ValueError("expert=RUN_DIR is required (the run folder of the expert policy)")
    raw = to_dict(cfg)
    overwrite = require_bool("overwrite", raw["overwrite"])
    check_run_dir(run_dir, "demos", overwrite=overwrite)
    path = dataset_path(run_dir, raw["output"], overwrite)
    trusted_code(raw)
    if (raw["steps"] is None) == (raw["episodes"] is None):
        raise ValueError(f"give exactly one of steps=N and episodes=N (got steps={raw['steps']}, episodes={raw['episodes']})")
    unit = "steps" if raw["steps"] is not None else "episodes"
    count = require_int(unit, raw[unit], minimum=1, whole_float=True)
    seed = require_int("seed", raw["seed"], minimum=0, whole_float=True)
    check_artifacts(raw["expert"])
    env = read_run_info(raw["expert"]).env
    target = target_spec(raw["target"])
    validate_dynamics(env, target)
    with claim_run_dir(run_dir, "demos", overwrite=overwrite):
        write_run_config(run_dir, {**raw, "overwrite": False}, user_overrides())
        print(f"recording {count} {unit} of expert {raw['expert']} on {env.name} with target '{target.name}'")
        dataset = record_expert_demonstrations(raw["expert"], target, **{unit: count}, seed=seed)
        path = save_demonstrations(dataset, path)
    counts = dataset.counts()
    print(f"{counts['steps']} steps, {counts['episodes']} episodes ({counts['complete_episodes']} complete), "
          f"mean return {counts['mean_return']}")
    print(f"dataset: {path} (sidecar {path.with_suffix('.json').name})")


@hydra.main(config_path="../configs", config_name="collect_demos", version_base=None)
def main(cfg: DictConfig) -> None:
    """The Hydra entry point: bad input ends it with ``error: ...`` and exit code 2."""
    run_script(collect_command, cfg)


if __name__ == "__main__":
    main()
