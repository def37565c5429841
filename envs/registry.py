"""The robots the toolkit knows by short name, and how to construct their base MuJoCo env.

Built in: Gymnasium's MuJoCo suite. Add your own robot with :func:`register_env` (a Gymnasium id, or
an entry point of a ``MujocoEnv`` subclass, with kwargs such as ``xml_file``), or in a Hydra env config
(``configs/env/*.yaml``) by giving ``id`` or ``entry_point`` directly. Any MuJoCo-based env gets the
same parameter handles (:class:`sim2real.envs.parameters.ParameterSet`) automatically.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from sim2real.registry import Registry


@dataclass(frozen=True)
class EnvSpec:
    """How to build one robot's base env.

    Attributes:
        name: Short name used in configs (``hopper``).
        id: A registered Gymnasium id (``Hopper-v5``); or None when ``entry_point`` is given.
        entry_point: ``"package.module:ClassName"`` of a Gymnasium env class (e.g. a ``MujocoEnv`` subclass).
        kwargs: Constructor keyword arguments (e.g. ``xml_file`` for your own MJCF).
        max_episode_steps: Episode length limit; None keeps the registered one.
    """

    name: str
    id: str | None = None
    entry_point: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        if (self.id is None) == (self.entry_point is None):
            raise ValueError(f"env '{self.name}': give exactly one of id (a Gymnasium id) or entry_point ('module:Class')")

    @property
    def label(self) -> str:
        """The Gymnasium id, or the entry point, for metadata and messages."""
        return self.id or str(self.entry_point)


ENVS: Registry[EnvSpec] = Registry("env")


def register_env(spec: EnvSpec) -> EnvSpec:
    """Adds a robot under ``spec.name``; duplicate names are rejected."""
    return ENVS.register(spec.name, spec)


for _name, _id in (
    ("inverted_pendulum", "InvertedPendulum-v5"),
    ("inverted_double_pendulum", "InvertedDoublePendulum-v5"),
    ("reacher", "Reacher-v5"),
    ("hopper", "Hopper-v5"),
    ("half_cheetah", "HalfCheetah-v5"),
    ("walker2d", "Walker2d-v5"),
    ("ant", "Ant-v5"),
    ("swimmer", "Swimmer-v5"),
    ("pusher", "Pusher-v5"),
):
    register_env(EnvSpec(name=_name, id=_id))


def resolve_env(name: str | EnvSpec, **overrides: Any) -> EnvSpec:
    """Returns the spec for a registered name (or passes a spec through), with ``overrides`` applied."""
    spec = name if isinstance(name, EnvSpec) else ENVS.get(name)
    if overrides:
        fields = {**spec.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        spec = EnvSpec(**fields)
    return spec


def make_base_env(spec: EnvSpec, render_mode: str | None = None) -> gym.Env:
    """Constructs the un-randomized env (with Gymnasium's time limit)."""
    kwargs = dict(spec.kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if spec.id is not None:
        try:
            return gym.make(spec.id, max_episode_steps=spec.max_episode_steps, **kwargs)
        except gym.error.Error as err:
            raise ValueError(f"env '{spec.name}': cannot make Gymnasium id '{spec.id}': {err}") from None
    module_name, _, class_name = str(spec.entry_point).partition(":")
    try:
        env_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"env '{spec.name}': cannot import entry_point '{spec.entry_point}': {err}") from None
    env = env_class(**kwargs)
    limit = spec.max_episode_steps or 1000
    return gym.wrappers.TimeLimit(env, max_episode_steps=limit)
