"""MuJoCo environments with named, randomizable physical parameters."""

from sim2real.envs.guard import PhysicsGuard
from sim2real.envs.parameters import GROUPS, KINDS, Parameter, ParameterSet
from sim2real.envs.registry import ENVS, EnvSpec, episode_limit, make_base_env, register_env, resolve_env

__all__ = [
    "ENVS",
    "GROUPS",
    "KINDS",
    "EnvSpec",
    "Parameter",
    "ParameterSet",
    "PhysicsGuard",
    "episode_limit",
    "make_base_env",
    "register_env",
    "resolve_env",
]
