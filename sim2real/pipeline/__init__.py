"""The main job: DR training, zero-shot check, baselines, transfer methods, gap report and export, resumable."""

from sim2real.pipeline.config import MethodRun, PipelineConfig, pipeline_config_from_dict
from sim2real.pipeline.gate import GateThresholds, check_report
from sim2real.pipeline.runner import best_policy, build_stages, run_pipeline
from sim2real.pipeline.stages import Progress, Stage, run_stages

__all__ = [
    "GateThresholds",
    "MethodRun",
    "PipelineConfig",
    "Progress",
    "Stage",
    "best_policy",
    "build_stages",
    "check_report",
    "pipeline_config_from_dict",
    "run_pipeline",
    "run_stages",
]
