"""Identify a robot's dynamics (system identification) and write calibration.json with its plot.

    python scripts/calibrate.py env=hopper dataset=robot_logs.npz '~sysid.parameters' '+sysid.parameters={masses:[0.5,2],frictions:[0.3,3]}'
    python scripts/calibrate.py env=inverted_double_pendulum target=overloaded steps=2000 sysid.latency_max=2
    python scripts/calibrate.py target=overloaded steps=2000 sysid.excitation=policy source=outputs/train/<run>
    python scripts/calibrate.py env=hopper dataset=outputs/transfer/<sysid run>   # again, from what a sysid run measured

The dataset format (joint positions/velocities, actions, episode starts + a JSON sidecar) is documented
in sim2real/sysid/data.py. The output folder must be new or empty (`overwrite=true` replaces a calibration).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sim2real.cli import output_dir, run_script, trusted_code, user_overrides, write_run_config
from sim2real.envs.registry import env_spec_from_dict
from sim2real.presets import target_spec, to_dict
from sim2real.runs import check_run_dir, claim_run_dir
from sim2real.seeding import seed_everything, set_torch_threads
from sim2real.sysid.calibrate import calibrate, prepare_calibration
from sim2real.sysid.data import MeasurementSettings
from sim2real.sysid.report import summary
from sim2real.transfer.sysid import Sysid
from sim2real.validation import require_bool, require_int


def calibrate_command(cfg: DictConfig) -> None:
    """Checks the folder, the data source and every setting, claims the folder, then identifies."""
    set_torch_threads(cfg.get("torch_threads"))
    run_dir, raw = output_dir(), to_dict(cfg)
    overwrite = require_bool("overwrite", raw["overwrite"])
    check_run_dir(run_dir, "calibrate", overwrite=overwrite)
    trusted_code(raw)
    seed = require_int("seed", raw["seed"], minimum=0, whole_float=True)
    sysid = {k: v for k, v in raw["sysid"].items() if k != "name"}
    # Calibration records `steps` (or reads a dataset): the transfer's measure_steps plays no part here.
    settings = Sysid.settings_from_dict({**sysid, "measure_steps": sysid.get("trajectory_length")})
    steps = None if raw["steps"] is None else require_int("steps", raw["steps"], minimum=1, whole_float=True)
    measurement = None if steps is None else MeasurementSettings(
        settings.excitation, settings.amplitude, steps, settings.trajectory_length)
    inputs = prepare_calibration(env_spec_from_dict(raw["env"]), settings.identify_settings(seed), dataset=raw["dataset"],
                                 measurement=measurement, target=target_spec(raw["target"]) if measurement else None,
                                 policy=raw["source"])
    with claim_run_dir(run_dir, "calibrate", overwrite=overwrite):
        write_run_config(run_dir, {**raw, "overwrite": False}, user_overrides())
        seed_everything(seed)
        origin = raw["dataset"] or f"{steps} fresh steps on target '{inputs.target.name}'"
        print(f"calibrating {inputs.env.name} from {origin} -> {run_dir}")
        calibration = calibrate(inputs, run_dir, seed=seed)
    for key, value in summary(calibration.to_dict()).items():
        print(f"  {key}: {value}")
    print(f"calibration: {run_dir / 'calibration.json'} (plot calibration.png)")


@hydra.main(config_path="../configs", config_name="calibrate", version_base=None)
def main(cfg: DictConfig) -> None:
    """The Hydra entry point: bad input ends it with ``error: ...`` and exit code 2."""
    run_script(calibrate_command, cfg)


if __name__ == "__main__":
    main()
