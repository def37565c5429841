"""Domain-randomized training.

    python scripts/train.py env=hopper randomization=default algo=ppo timesteps=300000 seed=1
    python scripts/train.py resume=outputs/train/<run>            # continue an interrupted run
    python scripts/train.py resume=outputs/train/<run> timesteps=200000   # ... or extend a finished one
    python scripts/train.py env=hopper calibration=outputs/calibrate/<run> timesteps=400000  # in a calibrated simulator
    python scripts/train.py init=outputs/train/<source> calibration=outputs/calibrate/<run> timesteps=300000
                                                     # ... continuing a trained policy there
    python scripts/train.py init=outputs/train/<source> calibration=outputs/calibrate/<run> timesteps=160000 \
        select_every=20000                           # ... keeping the checkpoint that scores best there

The output folder must be new or empty; a training run already there is continued only with `resume=`
and replaced only with `overwrite=true` (files the toolkit did not write stay).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim2real.cli import (
    conflicts_with_saved,
    override_keys,
    resume_dir_argv,
    run_script,
    trusted_code,
    user_algo_wins,
    user_overrides,
    write_run_config,
)
from sim2real.envs.registry import check_record_code, env_spec_from_dict, trust_env
from sim2real.policies import read_run_info
from sim2real.presets import to_dict
from sim2real.randomization.factory import validate_dynamics
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import CONFIG_FILE, check_artifacts, check_run_dir, claim_run_dir
from sim2real.seeding import seed_everything, set_torch_threads
from sim2real.sysid.report import calibration_randomization, read_calibration
from sim2real.training import train, train_config_from_dict
from sim2real.training.checks import check_train_config, check_train_settings
from sim2real.training.report import evaluate_run, format_eval_table
from sim2real.training.trainer import check_init
from sim2real.validation import require_bool

# settings a resumed run may change; any other override must agree with the run's saved config
CHANGEABLE_ON_RESUME = ("resume", "overwrite", "timesteps", "progress_bar", "torch_threads", "device",
                        "eval_episodes", "eval_targets")


def resumed_config(run_dir: Path, given: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The saved config of ``run_dir`` with the changeable settings the user gave; refuses conflicting ones."""
    check_artifacts(run_dir)
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.is_file():
        raise ValueError(f"resume={run_dir}: no {CONFIG_FILE} there; is it a training run folder?")
    try:
        saved = to_dict(OmegaConf.load(saved_path))
    except Exception as err:  # omegaconf and yaml raise several types for a damaged file
        raise ValueError(f"'{saved_path}' is not readable YAML ({err}); the run folder is damaged") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("env"), dict) or "algo" not in saved:
        raise ValueError(f"'{saved_path}' is not a training config (no env or algo)")
    check_record_code(saved["env"])  # the folder's config must not pick code to import
    conflicts = conflicts_with_saved(given, saved, overrides, CHANGEABLE_ON_RESUME)
    if conflicts:
        raise ValueError(f"resume={run_dir} continues the run with its saved settings ({saved_path}); these "
                         f"overrides would change them: {', '.join(conflicts)}. On resume only "
                         f"{', '.join(CHANGEABLE_ON_RESUME[2:])} may change; start a new run for other settings")
    given_keys = {key.split(".")[0] for key in override_keys(overrides)}
    return {**saved, **{key: given[key] for key in CHANGEABLE_ON_RESUME if key in given_keys}}


def initialized(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``init=``: the robot, algorithm and policy settings become the init run's (its weights need them);
    refuses overrides that would change them."""
    info = read_run_info(raw["init"])
    keys = override_keys(overrides)
    changed = [key for key in keys if "." in key and key.split(".")[0] in ("env", "algo", "policy")]
    changed += [key for key in keys if key == "policy"]
    changed += [f"{key}={raw[key]['name']}" for key, theirs in (("env", info.env.name), ("algo", info.algo))
                if key in keys and raw[key].get("name") != theirs]
    if changed:
        raise ValueError(f"init={raw['init']} continues a {info.algo} policy for {info.env.name} with its own robot, "
                         f"algorithm and policy settings; these overrides would change them: {', '.join(changed)}")
    record = info.env.to_record()
    env = {key: record[key] for key in ("name", "kwargs", "max_episode_steps", "history")}
    if info.env != env_spec_from_dict(env):  # a robot given by its own Gymnasium id or entry point
        env.update(id=record["id"], entry_point=record["entry_point"])
    noise = (info.record.get("policy") or {}).get("privileged_noise", 0.0)
    return {**raw, "env": env, "algo": info.algo_config,
            "policy": {"history": 0, "privileged": info.privileged, "privileged_noise": noise}}


def calibrated(raw: dict[str, Any]) -> dict[str, Any]:
    """The randomization of ``calibration=``: the calibrated ranges over the configured randomization (which
    covers what was not identified), as ``method=sysid`` trains; the run's config records it in full."""
    calibration = read_calibration(raw["calibration"], env=raw["env"]["name"])
    base = DynamicsSpec.from_dict(raw.get("randomization"), default_name="randomization")
    if base.adr is not None:
        raise ValueError(f"calibration={raw['calibration']} trains under fixed calibrated ranges; randomization="
                         f"{base.name} (ADR) cannot be their base: give a fixed one (default, none, wide, ...)")
    return calibration_randomization(calibration, base).to_dict()


def train_command(cfg: DictConfig) -> None:
    """Checks the folder and every setting, claims the folder, then trains (or resumes) and evaluates."""
    overrides = user_overrides()
    raw = user_algo_wins(to_dict(cfg), overrides)
    resume = raw.get("resume") is not None
    overwrite = require_bool("overwrite", raw.get("overwrite", False))
    run_dir = Path(raw["resume"]) if resume else Path(HydraConfig.get().runtime.output_dir)
    check_run_dir(run_dir, "train", resume=resume, overwrite=overwrite)
    trusted_code(raw)
    if resume:
        raw = resumed_config(run_dir, raw, overrides)  # its randomization already holds any calibration
    else:
        if raw.get("init") is not None:
            raw = initialized(raw, overrides)
        if raw.get("calibration") is not None:
            raw["randomization"] = calibrated(raw)
    raw.update(resume=None, overwrite=False)  # the saved config describes the run, not this command
    check_train_settings(raw)
    config = train_config_from_dict(raw)  # validates everything before any training
    check_train_config(config)
    check_init(config)
    validate_dynamics(config.env, config.randomization, config.target, *config.eval_targets)
    trust_env(config.env)  # the robot of the user's own config; the final evaluation rebuilds it from the record
    with claim_run_dir(run_dir, "train", resume=resume, overwrite=overwrite) as claim:
        write_run_config(run_dir, raw, None if claim.resumed else overrides)
        seed_everything(config.seed)
        set_torch_threads(cfg.get("torch_threads"))
        print(f"training {config.algo.name} on {config.env.name} with randomization '{config.randomization.name}' "
              f"for {config.timesteps} steps -> {run_dir}")
        try:
            train(config, run_dir, resume=claim.resumed)
        except KeyboardInterrupt:
            print(f"continue with: scripts/train.py resume={run_dir}", flush=True)
            raise
        if config.eval_episodes > 0:
            results = evaluate_run(run_dir, config.eval_targets, config.eval_episodes, seed=10_000 + config.seed)
            print(format_eval_table(results))
    print(f"run folder: {run_dir}")


@hydra.main(config_path="../configs", config_name="train", version_base=None)
def main(cfg: DictConfig) -> None:
    """The Hydra entry point: bad input ends it with ``error: ...`` and exit code 2."""
    run_script(train_command, cfg)


if __name__ == "__main__":
    sys.argv = resume_dir_argv(sys.argv)
    main()
