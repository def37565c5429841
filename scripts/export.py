"""Export a trained or adapted policy as a deployment bundle (ONNX + TorchScript + bundle.json).

    python scripts/export.py run=outputs/train/<run> hydra.run.dir=bundles/hopper
    python scripts/export.py run=outputs/transfer/<run> hydra.run.dir=bundles/hopper overwrite=true

Load the bundle without torch: ``sim2real.policies.deploy.DeployedPolicy.load("bundles/hopper")``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sim2real.cli import output_dir, run_script, trusted_code
from sim2real.export import ParityError, export_bundle, export_settings_from_dict, format_summary
from sim2real.export.bundle import recover_interrupted_export
from sim2real.presets import to_dict
from sim2real.runs import check_artifacts, check_run_dir, claim_run_dir


def export_command(cfg: DictConfig) -> None:
    """Checks the bundle folder, the run and the settings, then exports (atomically)."""
    out_dir = output_dir()
    if OmegaConf.is_missing(cfg, "run"):
        raise ValueError("give the run folder to export: run=RUN_DIR")
    raw = to_dict(cfg)
    run_dir = Path(raw.pop("run"))
    trusted_code({"trusted_entry_points": raw.pop("trusted_entry_points", None)})
    settings = export_settings_from_dict(raw)
    check_run_dir(out_dir, "export", overwrite=settings.overwrite)
    check_artifacts(run_dir)
    with claim_run_dir(out_dir, "export", overwrite=settings.overwrite, clear=False):
        recover_interrupted_export(out_dir)  # a bundle an export killed mid-swap moved aside is back first
        try:
            manifest = export_bundle(run_dir, out_dir, settings)
        except ParityError as err:  # the graphs do not reproduce the policy: nothing was written
            raise ValueError(f"export failed: {err}") from None
    print(format_summary(manifest))
    print(f"bundle: {out_dir}")


@hydra.main(config_path="../configs", config_name="export", version_base=None)
def main(cfg: DictConfig) -> None:
    """The Hydra entry point: bad input ends it with ``error: ...`` and exit code 2."""
    run_script(export_command, cfg)


if __name__ == "__main__":
    main()
