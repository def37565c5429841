"""Identify a robot's dynamics (system identification) and write calibration.json with its plot.

    python scripts/calibrate.py env=hopper dataset=robot_logs.npz 'sysid.parameters={masses:[0.5,2],frictions:[0.3,3]}'
    python scripts/calibrate.py env=inverted_double_pendulum target=overloaded steps=2000 sysid.latency_max=2
    python scripts/calibrate.py target=overloaded steps=2000 sysid.excitation=policy source=outputs/train/<run>

The dataset format (joint positions/velocities, actions, episode starts + a JSON sidecar) is documented
in sim2real/sysid/data.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim2real.envs.registry import env_spec_from_dict
from sim2real.presets import target_spec, to_dict
from sim2real.runs import CONFIG_FILE, write_text_atomic
from sim2real.seeding import seed_everything, set_torch_threads
from sim2real.sysid.calibrate import calibrate, prepare_calibration
from sim2real.sysid.data import MeasurementSettings
from sim2real.sysid.report import summary
from sim2real.transfer.sysid import Sysid


@hydra.main(config_path="../configs", config_name="calibrate", version_base=None)
def main(cfg: DictConfig) -> None:
    set_torch_threads(cfg.get("torch_threads"))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    raw = to_dict(cfg)
    try:  # every bad input is reported before any work
        settings = Sysid.settings_from_dict({k: v for k, v in raw["sysid"].items() if k != "name"})
        measurement = None if raw["steps"] is None else MeasurementSettings(
            settings.excitation, settings.amplitude, raw["steps"], settings.trajectory_length)
        inputs = prepare_calibration(env_spec_from_dict(raw["env"]), settings.identify_settings(int(raw["seed"])),
                                     dataset=raw["dataset"], measurement=measurement,
                                     target=target_spec(raw["target"]) if measurement else None, policy=raw["source"])
    except ValueError as err:
        sys.exit(f"error: {err}")
    write_text_atomic(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg))
    seed_everything(int(raw["seed"]))
    origin = raw["dataset"] or f"{raw['steps']} fresh steps on target '{inputs.target.name}'"
    print(f"calibrating {inputs.env.name} from {origin} -> {run_dir}")
    calibration = calibrate(inputs, run_dir, seed=int(raw["seed"]))
    for key, value in summary(calibration.to_dict()).items():
        print(f"  {key}: {value}")
    print(f"calibration: {run_dir / 'calibration.json'} (plot calibration.png)")


if __name__ == "__main__":
    main()
