"""Loading a run folder's policy (SB3 model plus frozen observation normalization) for acting."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from sim2real.runs import MODEL_FILE, VECNORMALIZE_FILE, load_metadata

ALGORITHM_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "td3": TD3}


@dataclass
class ObsNormalizer:
    """Frozen VecNormalize observation statistics: ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``."""

    mean: np.ndarray
    var: np.ndarray
    clip: float
    epsilon: float

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip).astype(np.float32)

    @classmethod
    def from_vecnormalize_file(cls, path: str | Path) -> ObsNormalizer:
        """Reads the statistics from a file written by ``VecNormalize.save``."""
        with open(path, "rb") as handle:
            vecnorm = pickle.load(handle)  # trusted: a file this toolkit wrote into its own run folder
        rms = vecnorm.obs_rms
        return cls(mean=np.asarray(rms.mean, np.float64), var=np.asarray(rms.var, np.float64),
                   clip=float(vecnorm.clip_obs), epsilon=float(vecnorm.epsilon))


@dataclass
class Policy:
    """A trained policy that acts on raw observations.

    Attributes:
        model: The SB3 model.
        normalizer: Observation normalization, or None if the run did not normalize.
        run_dir: Where it was loaded from.
        metadata: The run's ``metadata.json``.
    """

    model: BaseAlgorithm
    normalizer: ObsNormalizer | None
    run_dir: Path
    metadata: dict[str, Any]

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for one raw observation or a batch, as ``model.predict`` gives them (clipped/unscaled)."""
        obs = np.asarray(obs)
        if self.normalizer is not None:
            obs = self.normalizer(obs)
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return action

    @property
    def env_name(self) -> str:
        """Short name of the env the run used."""
        return str(self.metadata["env"]["name"])


def check_run_dir(run_dir: str | Path) -> dict[str, Any]:
    """Returns the metadata of a complete policy run folder; raises ``ValueError`` explaining what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run folder '{run_dir}' does not exist")
    try:
        metadata = load_metadata(run_dir)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    missing = [name for name in ("env", "algo") if name not in metadata]
    if missing:
        raise ValueError(f"'{run_dir}' is not a policy run: metadata.json lacks {missing}")
    if not (run_dir / MODEL_FILE).is_file():
        raise ValueError(f"'{run_dir}' has no {MODEL_FILE}: the run did not finish (resume it with resume={run_dir})")
    if metadata.get("normalize") and not (run_dir / VECNORMALIZE_FILE).is_file():
        raise ValueError(f"'{run_dir}' normalizes observations but {VECNORMALIZE_FILE} is missing")
    if metadata["algo"] not in ALGORITHM_CLASSES:
        raise ValueError(f"'{run_dir}': unknown algo '{metadata['algo']}'; known: {', '.join(ALGORITHM_CLASSES)}")
    return metadata


def load_policy(run_dir: str | Path, device: str = "cpu") -> Policy:
    """Loads the final policy of a run folder (a trained or adapted run)."""
    run_dir = Path(run_dir)
    metadata = check_run_dir(run_dir)
    model = ALGORITHM_CLASSES[metadata["algo"]].load(run_dir / MODEL_FILE, device=device)
    vecnorm_path = run_dir / VECNORMALIZE_FILE
    normalizer = ObsNormalizer.from_vecnormalize_file(vecnorm_path) if vecnorm_path.is_file() else None
    return Policy(model=model, normalizer=normalizer, run_dir=run_dir, metadata=metadata)
