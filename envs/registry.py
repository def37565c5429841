"""The robots the toolkit knows by short name, and how to construct their base MuJoCo env.

Built in: Gymnasium's MuJoCo suite. Add your own robot with :func:`register_env` (a Gymnasium id, or
an entry point of a ``MujocoEnv`` subclass, with kwargs such as ``xml_file``), or in a Hydra env config
(``configs/env/*.yaml``) by giving ``id`` or ``entry_point`` directly. Any MuJoCo-based env gets the
same parameter handles (:class:`sim2real.envs.parameters.ParameterSet`) automatically.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
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
        history: Observations carry the last ``history`` observations and actions
            (:class:`sim2real.randomization.history.HistoryObservation`); 0 for the plain observation. Part of
            the env a policy acts in, so every consumer of a run (evaluator, transfer methods, export) rebuilds it.
    """

    name: str
    id: str | None = None
    entry_point: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    history: int = 0

    def __post_init__(self) -> None:
        if (self.id is None) == (self.entry_point is None):
            raise ValueError(f"env '{self.name}': give exactly one of id (a Gymnasium id) or entry_point ('module:Class')")
        if isinstance(self.history, bool) or not isinstance(self.history, int) or self.history < 0:
            raise ValueError(f"env '{self.name}': history={self.history!r} must be an integer >= 0 (0: no history)")

    @property
    def label(self) -> str:
        """The Gymnasium id, or the entry point, for metadata and messages."""
        return self.id or str(self.entry_point)

    def to_record(self) -> dict[str, Any]:
        """The ``env`` entry of a run's ``metadata.json`` (read back by :func:`env_spec_from_record`)."""
        return {"name": self.name, "id": self.id, "entry_point": self.entry_point, "kwargs": dict(self.kwargs),
                "max_episode_steps": self.max_episode_steps, "history": self.history}


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
    unknown = set(data) - {"id", "entry_point", "kwargs", "max_episode_steps", "history"}
    if unknown:
        raise ValueError(f"env '{name}': unknown keys {sorted(unknown)}; valid: id, entry_point, kwargs, max_episode_steps, "
                         "history")
    history = data.get("history") or 0
    if data.get("id") is None and data.get("entry_point") is None:
        return resolve_env(name, kwargs=dict(data.get("kwargs") or {}) or None, max_episode_steps=data.get("max_episode_steps"),
                           history=history or None)
    return EnvSpec(name=name, id=data.get("id"), entry_point=data.get("entry_point"),
                   kwargs=dict(data.get("kwargs") or {}), max_episode_steps=data.get("max_episode_steps"), history=history)


_TRUSTED_CODE: set[str] = set()


def trust_env(spec: EnvSpec) -> None:
    """Lets run records name ``spec``'s entry point (or module-qualified Gymnasium id): it comes from the
    user's own config or command line, so the code it imports is the user's choice."""
    for reference in (spec.entry_point, spec.id):
        if reference and ":" in reference:
            _TRUSTED_CODE.add(reference)


def trust_entry_points(references: Iterable[str]) -> None:
    """Trusts ``"module:Class"`` entry points (or ``"module:Env-v0"`` ids) the user names, e.g. on the command line."""
    for reference in references:
        if not isinstance(reference, str) or ":" not in reference:
            raise ValueError(f"trusted_entry_points entry {reference!r} must be 'module:ClassName'")
        _TRUSTED_CODE.add(reference)


def trusted_references() -> list[str]:
    """The entry points trusted so far in this process (handed to worker processes, which start with none)."""
    return sorted(_TRUSTED_CODE)


def check_record_code(env: Mapping[str, Any]) -> None:
    """Refuses a run record whose env would import code nobody chose: an entry point (or a module-qualified
    Gymnasium id, which Gymnasium imports) that is neither a registered robot's nor trusted by the user."""
    registered = {spec.entry_point for spec in map(ENVS.get, ENVS) if spec.entry_point}
    for key in ("entry_point", "id"):
        reference = env.get(key)
        if isinstance(reference, str) and ":" in reference and reference not in registered | _TRUSTED_CODE:
            raise ValueError(
                f"the run's env '{env.get('name')}' names {key} '{reference}': a run folder does not choose code to "
                f"import. Register the robot (sim2real.envs.register_env) or trust it on the command line: "
                f"trusted_entry_points=[{reference}]")


def env_spec_from_record(record: Mapping[str, Any]) -> EnvSpec:
    """The :class:`EnvSpec` a run was made with, from the ``env`` entry of its ``metadata.json``.

    Registered robots come back by name (with the run's kwargs and episode limit); a robot given by its
    own Gymnasium id comes back by that. An entry point (code to import) is honoured only if it is a
    registered robot's or the user trusts it (:func:`trust_env`, :func:`trust_entry_points`): a run
    folder's JSON must not be able to run code.

    Raises:
        ValueError: An entry point nobody registered or trusted.
    """
    env = dict(record)
    check_record_code(env)
    data: dict[str, Any] = {"name": env["name"], "kwargs": env.get("kwargs") or {},
                            "max_episode_steps": env.get("max_episode_steps"), "history": env.get("history") or 0}
    registered_id = ENVS.get(env["name"]).id if env["name"] in ENVS else None
    if env.get("entry_point"):
        data["entry_point"] = env["entry_point"]
    elif env.get("id") and env["id"] != registered_id:
        data["id"] = env["id"]
    return env_spec_from_dict(data)


def episode_limit(spec: EnvSpec) -> int:
    """The robot's episode length: its time limit (the registered one unless ``spec.max_episode_steps``)."""
    probe = make_base_env(spec)
    try:
        return int(probe.spec.max_episode_steps) if probe.spec and probe.spec.max_episode_steps else 1000
    finally:
        probe.close()


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
