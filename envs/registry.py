"""The robots the toolkit knows by short name, and how to construct their base MuJoCo env.

Built in: Gymnasium's MuJoCo suite. Add your own robot with :func:`register_env` (a Gymnasium id, or
an entry point of a ``MujocoEnv`` subclass, with kwargs such as ``xml_file``), or in a Hydra env config
(``configs/env/*.yaml``) by giving ``id`` or ``entry_point`` directly. Any MuJoCo-based env gets the
same parameter handles (:class:`sim2real.envs.parameters.ParameterSet`) automatically.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
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

    def to_record(self) -> dict[str, Any]:
        """The ``env`` entry of a run's ``metadata.json`` (read back by :func:`env_spec_from_record`)."""
        return {"name": self.name, "id": self.id, "entry_point": self.entry_point, "kwargs": dict(self.kwargs),
                "max_episode_steps": self.max_episode_steps}


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


def env_spec_from_dict(data: Mapping[str, Any]) -> EnvSpec:
    """Builds an :class:`EnvSpec` from an env config (``name`` plus optional ``id``/``entry_point``/``kwargs``)."""
    data = dict(data)
    name = str(data.pop("name"))
    unknown = set(data) - {"id", "entry_point", "kwargs", "max_episode_steps"}
    if unknown:
        raise ValueError(f"env '{name}': unknown keys {sorted(unknown)}; valid: id, entry_point, kwargs, max_episode_steps")
    if data.get("id") is None and data.get("entry_point") is None:
        return resolve_env(name, kwargs=dict(data.get("kwargs") or {}) or None, max_episode_steps=data.get("max_episode_steps"))
    return EnvSpec(name=name, id=data.get("id"), entry_point=data.get("entry_point"),
                   kwargs=dict(data.get("kwargs") or {}), max_episode_steps=data.get("max_episode_steps"))


def env_spec_from_record(record: Mapping[str, Any]) -> EnvSpec:
    """The :class:`EnvSpec` a run was made with, from the ``env`` entry of its ``metadata.json``.

    Registered robots come back by name (with the run's kwargs and episode limit); a robot given by its
    own Gymnasium id or entry point comes back by that, so runs of user-defined robots load anywhere the
    robot is importable.
    """
    env = dict(record)
    data: dict[str, Any] = {"name": env["name"], "kwargs": env.get("kwargs") or {},
                            "max_episode_steps": env.get("max_episode_steps")}
    registered_id = ENVS.get(env["name"]).id if env["name"] in ENVS else None
    if env.get("entry_point"):
        data["entry_point"] = env["entry_point"]
    elif env.get("id") and env["id"] != registered_id:
        data["id"] = env["id"]
    return env_spec_from_dict(data)


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
