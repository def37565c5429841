"""Policy export for deployment: ONNX and TorchScript bundles with normalization inside, parity-checked.

Export with :func:`export_bundle` (or ``scripts/export.py``); run a bundle without torch with
:class:`sim2real.policies.deploy.DeployedPolicy`.
"""

from sim2real.export.bundle import (
    MIN_PARITY_OBSERVATIONS,
    ExportSettings,
    check_output_dir,
    export_bundle,
    export_settings_from_dict,
    run_dynamics,
)
from sim2real.export.graph import ActionProcessing, DeployableActor, build_deployable
from sim2real.export.parity import ParityError, Rollouts, record_rollouts
from sim2real.export.report import format_summary

__all__ = [
    "MIN_PARITY_OBSERVATIONS",
    "ActionProcessing",
    "DeployableActor",
    "ExportSettings",
    "ParityError",
    "Rollouts",
    "build_deployable",
    "check_output_dir",
    "export_bundle",
    "export_settings_from_dict",
    "format_summary",
    "record_rollouts",
    "run_dynamics",
]
