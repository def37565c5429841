"""Typed training configuration, converted once from Hydra's config at the script edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sim2real.envs.registry import EnvSpec, env_spec_from_dict
from sim2real.policies.networks import NetworkConfig
from sim2real.randomization.spec import DynamicsSpec
from sim2real.validation import require_choice, require_float, require_int

ALGORITHMS = ("ppo", "sac", "td3", "recurrent_ppo")
VEC_ENVS = ("dummy", "subproc")
PRIVILEGED_MODES = ("none", "critic", "actor")


@dataclass(frozen=True)
class AlgoConfig:
    """An SB3 algorithm and its settings.

    Attributes:
        name: ``ppo``, ``sac``, ``td3`` or ``recurrent_ppo`` (sb3-contrib's RecurrentPPO: an LSTM policy).
        hyperparams: Keyword arguments of the SB3 constructor (``n_steps``, ``learning_rate``, ...).
        network: Actor and critic architecture.
        normalize: Wrap the envs in ``VecNormalize`` (observations; rewards too for on-policy).
        normalize_reward: Normalize rewards as well (PPO benefits; off-policy usually not).
        n_envs: Parallel envs.
        vec_env: ``dummy`` (in-process; fastest for small MuJoCo envs on few cores) or ``subproc``.
        action_noise_sigma: Gaussian exploration noise for TD3 (relative to the action range); 0 for none.
    """

    name: str = "ppo"
    hyperparams: dict[str, Any] = field(default_factory=dict)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    normalize: bool = True
    normalize_reward: bool = True
    n_envs: int = 4
    vec_env: str = "dummy"
    action_noise_sigma: float = 0.0

    def __post_init__(self) -> None:
        require_choice("algo", self.name, ALGORITHMS)
        require_choice("vec_env", self.vec_env, VEC_ENVS)
        require_int("n_envs", self.n_envs, minimum=1)


@dataclass(frozen=True)
class PolicyConfig:
    """What the policy and its critic observe (the observation history itself is part of the env:
    ``EnvSpec.history``, set from the config's ``policy.history``).

    Attributes:
        privileged: ``none``; ``critic`` (asymmetric actor-critic: the critic also sees the episode's
            randomized parameters, the actor does not, so the policy deploys like any other; PPO only);
            ``actor`` (a privileged teacher: actor and critic see them; a teacher acts only in simulation,
            a student distilled from it deploys).
        privileged_noise: ``actor`` only: std of a Gaussian offset drawn per episode and added to the
            teacher's privileged observation in training (in its [-1, 1] units), so the teacher acts well on
            rough values, as its student's estimates from history will be (0: exact values).
    """

    privileged: str = "none"
    privileged_noise: float = 0.0

    def __post_init__(self) -> None:
        require_choice("policy.privileged", self.privileged, PRIVILEGED_MODES)
        object.__setattr__(self, "privileged_noise", require_float("policy.privileged_noise", self.privileged_noise, low=0.0))
        if self.privileged_noise > 0 and self.privileged != "actor":
            raise ValueError(f"policy.privileged_noise={self.privileged_noise} perturbs a teacher's privileged "
                             f"observation; it needs policy.privileged=actor, not {self.privileged}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs.

    Attributes:
        env: The robot (with its observation history, ``env.history``).
        algo: The algorithm.
        policy: What the policy and critic observe beyond the env's observation (privileged information).
        randomization: Domain randomization during training.
        target: Fixed dynamics trained on (nominal for a source policy; a target for an oracle).
        timesteps: Total environment steps.
        train_episode_steps: Truncate training episodes after this many steps (None: the robot's own
            length). More, shorter episodes per update mean more draws of the randomization; evaluation,
            transfer and export keep the robot's own length (the env record is unchanged).
        seed: Seed for the model and the envs.
        checkpoint_every: Save a resumable checkpoint every this many steps (0: only at the end).
        eval_episodes: Episodes of the final nominal-vs-perturbed evaluation (0 to skip).
        eval_targets: Targets evaluated at the end besides nominal.
        progress_bar: Show a progress bar while training.
        device: Torch device (``cpu`` or ``cuda``; ``auto`` picks).
        init: A finished run folder whose policy this run starts from (weights, optimizer state, observation
            statistics: e.g. a source continued under a calibrated randomization), with its robot, algorithm and
            policy settings; this run's steps are counted from 0. None: a fresh policy.
        select_every: Score the policy every this many steps on ``select_episodes`` deterministic episodes under
            the run's own randomization and target (e.g. a calibrated simulation) and make the best-scoring one the run's
            final policy, not the last (0: the last). Checkpoints keep the selection, so resume continues it.
        select_episodes: Episodes of each scoring (reset seeds ``20_000 + seed`` onwards, the same each time;
            the final evaluation's are ``10_000 + seed`` onwards).
    """

    env: EnvSpec
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    randomization: DynamicsSpec = field(default_factory=DynamicsSpec)
    target: DynamicsSpec = field(default_factory=DynamicsSpec)
    timesteps: int = 50_000
    train_episode_steps: int | None = None
    seed: int = 0
    checkpoint_every: int = 10_000
    eval_episodes: int = 5
    eval_targets: tuple[DynamicsSpec, ...] = ()
    progress_bar: bool = True
    device: str = "cpu"
    init: Path | None = None
    select_every: int = 0
    select_episodes: int = 10

    def __post_init__(self) -> None:
        require_int("timesteps", self.timesteps, minimum=1)
        require_int("select_every", self.select_every, minimum=0)
        require_int("select_episodes", self.select_episodes, minimum=1)
        if self.select_every > self.timesteps:
            raise ValueError(f"select_every={self.select_every} is more than timesteps={self.timesteps}: no policy "
                             f"before the end would be scored; give at most {self.timesteps}, or 0 to keep the last")
        if self.select_every and self.randomization.adr is not None:
            raise ValueError(f"select_every={self.select_every} scores policies on fixed dynamics; ADR's ranges move "
                             f"during the run, so its scores would not compare: give select_every=0 with ADR")
        if self.select_every and (self.policy.privileged != "none" or self.algo.name == "recurrent_ppo"):
            raise ValueError(f"select_every={self.select_every} scores a policy on its observation alone; a "
                             f"{'recurrent' if self.algo.name == 'recurrent_ppo' else 'privileged'} policy needs more: "
                             f"give select_every=0")
        require_int("checkpoint_every", self.checkpoint_every, minimum=0)
        require_int("eval_episodes", self.eval_episodes, minimum=0)
        if self.train_episode_steps is not None:
            require_int("train_episode_steps", self.train_episode_steps, minimum=1)
        if self.policy.privileged != "none" and not (self.randomization.parameters or self.randomization.effects.per_episode):
            raise ValueError(f"policy.privileged={self.policy.privileged}: privileged observations are the randomized "
                             f"parameters and per-episode effects (a latency range, a sensor bias, a motor strength "
                             f"range), but randomization '{self.randomization.name}' has none")
        if self.policy.privileged == "critic" and self.algo.name != "ppo":
            raise ValueError(f"policy.privileged=critic (asymmetric actor-critic) needs algo=ppo, not {self.algo.name}")
        if self.algo.name == "recurrent_ppo" and (self.policy.privileged != "none" or self.env.history):
            raise ValueError("algo=recurrent_ppo keeps its memory in its LSTM: policy.history must be 0 and "
                             "policy.privileged none")


def policy_settings_from_dict(data: Mapping[str, Any] | None) -> tuple[int, PolicyConfig]:
    """The config's ``policy`` block: ``(history, PolicyConfig)``; unknown keys are rejected."""
    data = dict(data or {})
    unknown = set(data) - {"history", "privileged", "privileged_noise"}
    if unknown:
        raise ValueError(f"policy: unknown keys {sorted(unknown)}; valid: history, privileged, privileged_noise")
    history = require_int("policy.history", data.get("history", 0) or 0, minimum=0, whole_float=True)
    return history, PolicyConfig(privileged=str(data.get("privileged", "none")),
                                 privileged_noise=data.get("privileged_noise", 0.0) or 0.0)


def algo_config_from_dict(data: Mapping[str, Any], env_name: str) -> AlgoConfig:
    """Builds an :class:`AlgoConfig`, applying the per-env block ``env_overrides[env_name]`` if present.

    Raises:
        ValueError: ``data`` is empty: no algorithm was chosen (an env without a default in
            ``configs/algo/default/``, such as a user's own robot, needs ``algo=<name>``).
    """
    if not data:
        raise ValueError(f"no algorithm chosen for env '{env_name}' (it has no configs/algo/default/{env_name}.yaml); "
                         f"give one: algo={' | algo='.join(ALGORITHMS)}")
    data = _deep_merge(dict(data), dict(dict(data.get("env_overrides") or {}).get(env_name) or {}))
    data.pop("env_overrides", None)
    network = dict(data.pop("network", {}) or {})
    valid = set(AlgoConfig.__dataclass_fields__)
    unknown = set(data) - valid
    if unknown:
        raise ValueError(f"algo: unknown keys {sorted(unknown)}; valid: {sorted(valid | {'env_overrides'})}")
    net_unknown = set(network) - {"pi", "vf", "activation", "extra"}
    if net_unknown:
        raise ValueError(f"algo.network: unknown keys {sorted(net_unknown)}; valid: pi, vf, activation, extra")
    net = NetworkConfig(
        pi=tuple(network.get("pi", (64, 64))),
        vf=tuple(network.get("vf", (64, 64))),
        activation=str(network.get("activation", "tanh")),
        extra=dict(network.get("extra") or {}),
    )
    return AlgoConfig(**{**data, "hyperparams": dict(data.get("hyperparams") or {}), "network": net})


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), dict(value))
        else:
            merged[key] = value
    return merged


def train_config_from_dict(cfg: Mapping[str, Any]) -> TrainConfig:
    """Converts a resolved Hydra config (as a plain dict) into a validated :class:`TrainConfig`."""
    env = env_spec_from_dict(cfg["env"])
    history, policy = policy_settings_from_dict(cfg.get("policy"))
    if history and env.history and history != env.history:
        raise ValueError(f"policy.history={history} and env.history={env.history} disagree; give one of them")
    if history:
        env = replace(env, history=history)
    return TrainConfig(
        env=env,
        algo=algo_config_from_dict(cfg.get("algo") or {}, env.name),
        policy=policy,
        randomization=DynamicsSpec.from_dict(cfg.get("randomization"), default_name="randomization"),
        target=DynamicsSpec.from_dict(cfg.get("target"), default_name="target"),
        timesteps=require_int("timesteps", cfg.get("timesteps", 50_000), whole_float=True),
        train_episode_steps=require_int("train_episode_steps", cfg.get("train_episode_steps"), minimum=1,
                                        whole_float=True, optional=True),
        seed=require_int("seed", cfg.get("seed", 0), minimum=0, whole_float=True),
        checkpoint_every=require_int("checkpoint_every", cfg.get("checkpoint_every", 10_000), whole_float=True),
        eval_episodes=require_int("eval_episodes", cfg.get("eval_episodes", 5), whole_float=True),
        eval_targets=tuple(_target(t) for t in (cfg.get("eval_targets") or [])),
        progress_bar=bool(cfg.get("progress_bar", True)),
        device=str(cfg.get("device", "cpu")),
        init=None if cfg.get("init") is None else Path(str(cfg["init"])),
        select_every=require_int("select_every", cfg.get("select_every", 0), minimum=0, whole_float=True),
        select_episodes=require_int("select_episodes", cfg.get("select_episodes", 10), minimum=1, whole_float=True),
    )


def _target(entry: Any) -> DynamicsSpec:
    """A target from a preset name or an inline mapping."""
    from sim2real.presets import target_spec

    return target_spec(entry)
