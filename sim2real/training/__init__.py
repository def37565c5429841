"""Domain-randomized training with stable-baselines3."""

from sim2real.training.config import (
    ALGORITHMS,
    AlgoConfig,
    TrainConfig,
    algo_config_from_dict,
    train_config_from_dict,
)
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
    "AlgoConfig",
    "TrainConfig",
    "algo_config_from_dict",
    "build_model",
    "env_factory",
    "make_vec_env",
    "save_final",
    "train",
    "train_config_from_dict",
    "wrap_normalize",
]
