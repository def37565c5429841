"""Checks of training settings that SB3 would accept silently: hyperparameter values and the torch device.

SB3 trains with ``learning_rate=-1`` or ``n_steps=0`` and falls back to the CPU where CUDA is missing;
these checks refuse such settings before anything is built or written, in the wording of
:mod:`sim2real.validation`.

Example:
    >>> check_hyperparams("ppo", {"learning_rate": 3e-4, "n_steps": 0}, n_envs=4)
    Traceback (most recent call last):
    ...
    ValueError: algo.hyperparams.n_steps=0 must be an integer >= 1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sim2real.envs.registry import episode_limit
from sim2real.validation import require_bool, require_float, require_int


def _positive(name: str, value: Any) -> Any:
    return require_float(name, value, low=0.0, low_open=True)


def _non_negative(name: str, value: Any) -> Any:
    return require_float(name, value, low=0.0)


def _unit(name: str, value: Any) -> Any:
    return require_float(name, value, low=0.0, high=1.0)


def _count(name: str, value: Any) -> Any:
    return require_int(name, value, minimum=1, whole_float=True)


def _optional_positive(name: str, value: Any) -> Any:
    return require_float(name, value, low=0.0, low_open=True, optional=True)


def _auto_or(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """Accepts SB3's ``"auto"`` / ``"auto_0.1"`` strings (SAC's entropy settings) besides numbers."""

    def checked(name: str, value: Any) -> Any:
        return value if isinstance(value, str) and value.startswith("auto") else check(name, value)

    return checked


def linear_start(name: str, value: Any) -> float | None:
    """The start of RL Zoo's ``"lin_<value>"`` (decays linearly from value to 0 over the run), or None when
    ``value`` is not written that way; ``ValueError`` for ``lin_`` without a number."""
    if not (isinstance(value, str) and value.startswith("lin_")):
        return None
    try:
        return float(value[len("lin_"):])
    except ValueError:
        raise ValueError(f"{name}={value!r}: write lin_<number>, e.g. lin_3e-4") from None


def _or_linear(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """Accepts ``"lin_<value>"`` (:func:`linear_start`) besides numbers, its value checked by ``check``."""

    def checked(name: str, value: Any) -> Any:
        start = linear_start(name, value)
        if start is None:
            return check(name, value)
        check(name, start)
        return value

    return checked


def _train_freq(name: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[1] in ("step", "episode"):
        return (_count(name, value[0]), value[1])
    return _count(name, value)


def _gradient_steps(name: str, value: Any) -> Any:
    if value == -1:
        return value  # SB3: as many gradient steps as env steps collected
    return _count(name, value)


HYPERPARAMETER_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "learning_rate": _or_linear(_positive),
    "n_steps": _count,
    "batch_size": _count,
    "n_epochs": _count,
    "gamma": _unit,
    "gae_lambda": _unit,
    "clip_range": _or_linear(_positive),
    "clip_range_vf": _optional_positive,
    "ent_coef": _auto_or(_non_negative),
    "vf_coef": _non_negative,
    "max_grad_norm": _positive,
    "target_kl": _optional_positive,
    "normalize_advantage": require_bool,
    "use_sde": require_bool,
    "sde_sample_freq": lambda name, value: require_int(name, value, minimum=-1),
    "buffer_size": _count,
    "learning_starts": lambda name, value: require_int(name, value, minimum=0, whole_float=True),
    "tau": lambda name, value: require_float(name, value, low=0.0, high=1.0, low_open=True),
    "train_freq": _train_freq,
    "gradient_steps": _gradient_steps,
    "policy_delay": _count,
    "target_policy_noise": _non_negative,
    "target_noise_clip": _non_negative,
    "target_update_interval": _count,
    "target_entropy": _auto_or(lambda name, value: require_float(name, value)),
    "optimize_memory_usage": require_bool,
    "stats_window_size": _count,
}
ON_POLICY = ("ppo", "recurrent_ppo")


SET_BY_THE_TRAINER = frozenset({"policy", "env", "seed", "device", "verbose", "tensorboard_log", "policy_kwargs",
                                "action_noise", "_init_setup_model"})
"""Constructor arguments the trainer sets itself (the network goes in ``algo.network``)."""


def hyperparameter_names(algo: str) -> set[str]:
    """The keyword arguments of ``algo``'s SB3 constructor that ``algo.hyperparams`` may set."""
    import inspect

    from sim2real.policies.policy import ALGORITHM_CLASSES  # SB3: imported only when a config is checked

    return set(inspect.signature(ALGORITHM_CLASSES[algo].__init__).parameters) - SET_BY_THE_TRAINER - {"self"}


def constructor_default(algo: str, name: str) -> Any:
    """The default of ``algo``'s SB3 constructor argument ``name`` (what an unset hyperparameter is)."""
    import inspect

    from sim2real.policies.policy import ALGORITHM_CLASSES

    return inspect.signature(ALGORITHM_CLASSES[algo].__init__).parameters[name].default


def check_hyperparams(algo: str, hyperparams: Mapping[str, Any], n_envs: int) -> None:
    """Refuses hyperparameter names the algorithm's constructor does not take, and values SB3 would take
    without complaint but cannot train with, before anything is written.

    Raises:
        ValueError: ``algo.hyperparams.n_stepz: not a hyperparameter of ppo; valid: ...``,
            ``algo.hyperparams.learning_rate=-1 must be a number > 0``, or a PPO rollout of one step.
    """
    valid = hyperparameter_names(algo)
    for name in hyperparams:
        if name not in valid:
            where = "is set by the trainer (the network: algo.network)" if name in SET_BY_THE_TRAINER else \
                f"is not a hyperparameter of {algo}"
            raise ValueError(f"algo.hyperparams.{name} {where}; valid: {', '.join(sorted(valid))}")
    for name, value in hyperparams.items():
        check = HYPERPARAMETER_CHECKS.get(name)
        if check is not None:
            check(f"algo.hyperparams.{name}", value)
    if algo in ON_POLICY:
        n_steps = hyperparams.get("n_steps", 2048)
        if int(n_steps) * n_envs < 2:
            raise ValueError(f"algo.hyperparams.n_steps={n_steps} with algo.n_envs={n_envs} collects one step per "
                             "update; PPO needs n_steps * n_envs >= 2")
        batch = hyperparams.get("batch_size", 64)
        if int(batch) < 2:
            raise ValueError(f"algo.hyperparams.batch_size={batch} must be an integer >= 2 for {algo}")


def require_device(name: str, value: Any) -> str:
    """``value`` if torch can use it here: ``cpu``, ``auto``, or a CUDA / MPS device that exists.

    Raises:
        ValueError: ``device='cuda' is not available here (torch sees no CUDA device); valid: cpu, auto``.
    """
    import torch

    if not isinstance(value, str):
        raise ValueError(f"{name}={value!r} must be a device name such as cpu, cuda, cuda:0 or auto")
    if value == "auto":
        return value
    try:
        device = torch.device(value)
    except RuntimeError:
        raise ValueError(f"{name}={value!r} is not a torch device; valid: cpu, cuda, cuda:N, mps, auto") from None
    available = ["cpu", "auto"]
    if torch.cuda.is_available():
        available += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        available.append("mps")
    if device.type == "cpu" or str(device) in available:
        return value
    seen = "no CUDA device" if device.type == "cuda" and not torch.cuda.is_available() else f"no {device}"
    raise ValueError(f"{name}={value!r} is not available here (torch sees {seen}); valid: {', '.join(available)}")


def check_train_settings(raw: Mapping[str, Any]) -> None:
    """Checks the raw values of a training config that its converter would coerce (``bool('maybe')`` is True).

    Raises:
        ValueError: ``progress_bar='maybe' must be true or false``, or an unavailable ``device``.
    """
    if "progress_bar" in raw:
        require_bool("progress_bar", raw["progress_bar"])
    if "device" in raw:
        require_device("device", raw["device"])


def check_train_config(config: Any) -> None:
    """All of the above for a built :class:`~sim2real.training.config.TrainConfig` (the library's own entry)."""
    check_hyperparams(config.algo.name, config.algo.hyperparams, config.algo.n_envs)
    require_device("device", config.device)
    require_bool("progress_bar", config.progress_bar)
    if config.train_episode_steps is not None:
        limit = episode_limit(config.env)
        if config.train_episode_steps > limit:
            raise ValueError(f"train_episode_steps={config.train_episode_steps} exceeds {config.env.name}'s episode "
                             f"length ({limit} steps); it can only shorten training episodes (1-{limit}, or null)")
