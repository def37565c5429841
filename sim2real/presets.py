"""Named config presets (targets, randomizations, envs) looked up in Hydra's config search path.

Used at the script edge to turn names such as ``heavy`` into typed objects. Inside a Hydra app the
app's search path is used (so a user's own config folder, added with ``hydra.searchpath``, works);
elsewhere the repository's ``configs/`` folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from sim2real.randomization.spec import DynamicsSpec

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def group_options(group: str) -> list[str]:
    """Names of the presets in a config group (e.g. ``target``)."""
    if GlobalHydra.instance().is_initialized():
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))
    folder = CONFIG_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_preset(group: str, name: str) -> dict[str, Any]:
    """The content of preset ``name`` of ``group`` as a plain dict; ``ValueError`` listing valid names."""
    options = group_options(group)
    if name not in options:
        raise ValueError(f"unknown {group} '{name}'; known: {', '.join(options)}")
    if GlobalHydra.instance().is_initialized():
        cfg = compose(config_name=f"{group}/{name}")
    else:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = compose(config_name=f"{group}/{name}")
    return to_dict(cfg[group])


def target_spec(target: str | Mapping[str, Any] | DynamicsSpec | None) -> DynamicsSpec:
    """A target from a preset name, a config mapping, or a spec (None: nominal)."""
    if target is None:
        return DynamicsSpec()
    if isinstance(target, DynamicsSpec):
        return target
    if isinstance(target, str):
        return DynamicsSpec.from_dict(load_preset("target", target), default_name=target)
    return DynamicsSpec.from_dict(to_dict(target), default_name="target")


def to_dict(cfg: Any) -> Any:
    """A resolved plain-Python copy of an OmegaConf node (other values pass through)."""
    if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg
