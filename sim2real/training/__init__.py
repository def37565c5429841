"""Domain-randomized training with stable-baselines3."""

from sim2real.training.config import (
    ALGORITHMS,
    AlgoConfig,
    TrainConfig,
    algo_config_from_dict,
    env_spec_from_dict,
    env_spec_from_metadata,
    train_config_from_dict,
)
from sim2real.training.loading import ALGORITHM_CLASSES, ObsNormalizer, Policy, check_run_dir, load_policy
from sim2real.training.trainer import (
    build_model,
    env_factory,
    make_vec_env,
    save_final,
    train,
    wrap_normalize,
)

__all__ = [
    "ALGORITHMS",
    "ALGORITHM_CLASSES",
    "AlgoConfig",
    "ObsNormalizer",
    "Policy",
    "TrainConfig",
    "algo_config_from_dict",
    "build_model",
    "check_run_dir",
    "env_factory",
    "env_spec_from_dict",
    "env_spec_from_metadata",
    "load_policy",
    "make_vec_env",
    "save_final",
    "train",
    "train_config_from_dict",
    "wrap_normalize",
]
