"""The pipeline's typed configuration, validated as a whole before the first stage starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim2real.envs.registry import EnvSpec, episode_limit
from sim2real.policies import RunInfo, read_run_info
from sim2real.randomization.factory import validate_dynamics
from sim2real.randomization.spec import DynamicsSpec
from sim2real.training.checks import check_train_config, check_train_settings
from sim2real.training.config import PolicyConfig, TrainConfig, train_config_from_dict
from sim2real.training.distill import DistillSettings
from sim2real.validation import require_bool, require_int, require_known_keys

# the source-training settings of configs/pipeline.yaml (env, algo, randomization and seed are the pipeline's own)
SOURCE_KEYS = ("timesteps", "train_episode_steps", "checkpoint_every", "eval_episodes", "eval_targets", "progress_bar",
               "device", "select_every", "select_episodes")
# the student block: the teacher's training steps, privileged noise and training episode length, then
# DistillSettings (its seed is the pipeline's)
TEACHER_KEYS = ("teacher_timesteps", "teacher_privileged_noise", "teacher_train_episode_steps")
STUDENT_KEYS = (*TEACHER_KEYS, *(f for f in DistillSettings.__dataclass_fields__ if f != "seed"))


@dataclass(frozen=True)
class StudentRun:
    """A privileged teacher trained in the source's randomization, and a history student distilled from it in
    simulation: a zero-target-step policy evaluated beside the transfer methods.

    Attributes:
        teacher: The teacher's training (the source's env, algorithm, randomization and seed, privileged actor).
        settings: The distillation (:mod:`sim2real.training.distill`).
        raw: The block as configured (for the stage fingerprint).
    """

    teacher: TrainConfig
    settings: DistillSettings
    raw: dict[str, Any]


@dataclass(frozen=True)
class MethodRun:
    """One transfer method with its settings.

    Attributes:
        name: The method's name in :data:`sim2real.transfer.METHODS`.
        settings: A ``Settings`` instance of the method.
        raw: The settings as configured (for the stage fingerprint).
        needs_expert: The method learns from an expert's actions (its class's ``needs_expert``).
    """

    name: str
    settings: Any
    raw: dict[str, Any]
    needs_expert: bool = False

    @property
    def wants_expert(self) -> bool:
        """It needs an expert and its settings name neither an expert nor a dataset: the pipeline's oracle serves."""
        return self.needs_expert and not self.settings.expert and not self.settings.dataset


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline does.

    Attributes:
        source: Training of the domain-randomized source policy (ignored when ``source_run`` is given).
        source_run: An existing source run folder to reuse instead of training one.
        target: The target dynamics.
        methods: Transfer methods, each run with ``budget`` target steps.
        budget: Target steps every method may spend (hard cap).
        seed: Seed of training, transfer and baselines.
        oracle_timesteps: Training steps of the oracle (trained on the target, no randomization); 0 to skip.
        oracle_run: An existing oracle run folder (trained on this target) to reuse instead of training one.
        scratch: Train a from-scratch baseline on the target with the same budget.
        random_baseline: Include a uniform-random policy.
        episodes: Evaluation episodes per seed.
        eval_seeds: Evaluation seeds.
        workers: Evaluation processes.
        export: Export the best policy.
        export_observations: Observations recorded for the export parity check.
        zero_shot_episodes: Episodes of the quick zero-shot check right after source training.
        student: A teacher and its distilled history student, or None.
    """

    source: TrainConfig
    source_run: Path | None
    target: DynamicsSpec
    methods: tuple[MethodRun, ...]
    budget: int
    seed: int = 0
    oracle_timesteps: int = 0
    oracle_run: Path | None = None
    scratch: bool = True
    random_baseline: bool = True
    episodes: int = 10
    eval_seeds: int = 3
    workers: int = 2
    export: bool = True
    export_observations: int = 1000
    zero_shot_episodes: int = 5
    student: StudentRun | None = None

    @property
    def env(self) -> EnvSpec:
        """The robot."""
        return self.source.env


def pipeline_config_from_dict(cfg: Mapping[str, Any]) -> PipelineConfig:
    """Builds and validates the whole pipeline config (raises ``ValueError`` naming the bad value)."""
    from sim2real.presets import load_preset, target_spec
    from sim2real.transfer import METHODS

    cfg = dict(cfg)
    seed = require_int("seed", cfg.get("seed", 0), minimum=0, whole_float=True)
    require_known_keys("source", cfg["source"], SOURCE_KEYS)
    check_train_settings(cfg["source"])
    source = train_config_from_dict({**cfg["source"], "env": cfg["env"], "algo": cfg.get("algo"),
                                     "randomization": cfg["randomization"], "seed": seed})
    check_train_config(source)
    target = target_spec(cfg["target"])
    validate_dynamics(source.env, source.randomization, target)
    if target.is_identity:
        raise ValueError("target 'nominal' changes nothing: choose a perturbed target (e.g. target=high_gravity)")
    source_run = Path(cfg["source_run"]) if cfg.get("source_run") else None
    if source_run is not None:
        _given_run("source_run", source_run, source.env)
    budget = require_int("budget", cfg.get("budget"), minimum=1, whole_float=True)
    limit = episode_limit(source.env)
    if budget < limit:
        raise ValueError(f"budget={budget} is less than one episode of {source.env.name} ({limit} steps)")
    methods_cfg = cfg.get("methods") or []
    if not methods_cfg:
        raise ValueError(f"methods is empty; choose from: {', '.join(METHODS.names())}")
    overrides = dict(cfg.get("method_settings") or {})
    unknown = set(overrides) - set(METHODS.names())
    if unknown:
        raise ValueError(f"method_settings for unknown methods {sorted(unknown)}; known: {', '.join(METHODS.names())}")
    methods = []
    for name in methods_cfg:
        method_class = METHODS.get(str(name))
        raw = {k: v for k, v in load_preset("transfer", str(name)).items() if k != "name"}
        raw.update(overrides.get(name) or {})
        methods.append(MethodRun(str(name), method_class.settings_from_dict(raw), raw, method_class.needs_expert))
    if len({m.name for m in methods}) != len(methods):
        raise ValueError(f"methods lists a method twice: {list(methods_cfg)}")
    needs_expert = [m.name for m in methods if m.wants_expert]
    oracle_timesteps = require_int("oracle_timesteps", cfg.get("oracle_timesteps", 0), minimum=0, whole_float=True)
    oracle_run = Path(cfg["oracle_run"]) if cfg.get("oracle_run") else None
    trained_on = _given_run("oracle_run", oracle_run, source.env).target if oracle_run is not None else target
    if trained_on != target:
        raise ValueError(f"oracle_run '{oracle_run}' was trained on target '{trained_on.name}', not '{target.name}'")
    if needs_expert and oracle_timesteps == 0 and oracle_run is None:
        raise ValueError(f"methods {needs_expert} learn from an expert on the target: set oracle_timesteps > 0 "
                         "(the oracle is their expert) or give method_settings.<method>.expert=RUN_DIR")
    return PipelineConfig(
        source=source, source_run=source_run, target=target, methods=tuple(methods), budget=budget, seed=seed,
        oracle_timesteps=oracle_timesteps, oracle_run=oracle_run, scratch=require_bool("scratch", cfg.get("scratch", True)),
        random_baseline=require_bool("random_baseline", cfg.get("random_baseline", True)),
        episodes=require_int("episodes", cfg.get("episodes", 10), minimum=1, whole_float=True),
        eval_seeds=require_int("eval_seeds", cfg.get("eval_seeds", 3), minimum=1, whole_float=True),
        workers=require_int("workers", cfg.get("workers", 2), minimum=1, whole_float=True),
        export=require_bool("export", cfg.get("export", True)),
        export_observations=require_int("export_observations", cfg.get("export_observations", 1000), minimum=1000, whole_float=True),
        zero_shot_episodes=require_int("zero_shot_episodes", cfg.get("zero_shot_episodes", 5), minimum=1, whole_float=True),
        student=_student(cfg.get("student"), source, seed),
    )


def _student(block: Mapping[str, Any] | None, source: TrainConfig, seed: int) -> StudentRun | None:
    """The ``student`` block: None when absent; ``ValueError`` naming a bad key or value."""
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ValueError(f"student={block!r} must be null or a mapping of {', '.join(STUDENT_KEYS)}")
    raw = dict(block)
    require_known_keys("student", raw, STUDENT_KEYS)
    if "teacher_timesteps" not in raw:
        raise ValueError("student needs teacher_timesteps: the privileged teacher's training steps (e.g. 300000)")
    timesteps = require_int("student.teacher_timesteps", raw["teacher_timesteps"], minimum=1, whole_float=True)
    settings = DistillSettings.from_dict({k: v for k, v in raw.items() if k not in TEACHER_KEYS} | {"seed": seed})
    policy = PolicyConfig(privileged="actor", privileged_noise=raw.get("teacher_privileged_noise", 0.0))
    episode_steps = require_int("student.teacher_train_episode_steps", raw.get("teacher_train_episode_steps"),
                                minimum=1, whole_float=True, optional=True)
    # the source's checkpoint selection scores observations alone, which a privileged teacher cannot act on
    teacher = dataclasses.replace(source, timesteps=timesteps, policy=policy, train_episode_steps=episode_steps,
                                  select_every=0)
    check_train_config(teacher)  # e.g. a randomization with no parameters leaves the teacher nothing to see
    return StudentRun(teacher, settings, raw)


def _given_run(key: str, run_dir: Path, env: EnvSpec) -> RunInfo:
    """An existing run folder the pipeline reuses, checked to be for ``env``."""
    info = read_run_info(run_dir)
    if info.env.name != env.name:
        raise ValueError(f"{key} '{run_dir}' is for env '{info.env.name}', not '{env.name}'")
    return info
