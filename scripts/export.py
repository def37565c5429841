"""Export a trained or adapted policy as a deployment bundle (ONNX + TorchScript + bundle.json).

    python scripts/export.py run=outputs/train/<run> hydra.run.dir=bundles/hopper
    python scripts/export.py run=outputs/transfer/<run> hydra.run.dir=bundles/hopper overwrite=true

Load the bundle without torch: ``sim2real.policies.deploy.DeployedPolicy.load("bundles/hopper")``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sim2real.export import ParityError, export_bundle, export_settings_from_dict, format_summary
from sim2real.presets import to_dict


@hydra.main(config_path="../configs", config_name="export", version_base=None)
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        if OmegaConf.is_missing(cfg, "run"):
            raise ValueError("give the run folder to export: run=RUN_DIR")
        raw = to_dict(cfg)
        run_dir = Path(raw.pop("run"))
        manifest = export_bundle(run_dir, out_dir, export_settings_from_dict(raw))
    except (ValueError, ParityError) as err:
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # Hydra made it; a failed export leaves nothing
        sys.exit(f"export failed: {err}")
    print(format_summary(manifest))
    print(f"bundle: {out_dir}")


if __name__ == "__main__":
    main()
