"""The transfer-method extension point and the runner that turns an adaptation into a run folder.

A method subclasses ``TransferMethod[ItsSettings]``, declares that frozen ``Settings`` dataclass (every
field documented, checked in its own ``__post_init__`` with :mod:`sim2real.validation` and stored back
canonical with :func:`set_checked`), implements :meth:`TransferMethod.adapt`, and registers itself in
:data:`METHODS`. Everything it takes from the target env goes through :func:`make_target_env` (or is
charged to the budget explicitly, e.g. demonstrations), so the budget is a hard cap for every method alike.
"""

from __future__ import annotations

import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from sim2real.envs.registry import EnvSpec, episode_limit
from sim2real.policies.policy import Policy
from sim2real.policies.run_info import RunInfo, read_run_info
from sim2real.randomization.factory import make_env, validate_dynamics
from sim2real.randomization.spec import DynamicsSpec
from sim2real.registry import Registry
from sim2real.runs import MODEL_FILE, VECNORMALIZE_FILE, atomic_path, final_files_record, update_metadata
from sim2real.training.callbacks import ProgressPrinter
from sim2real.training.checks import require_device
from sim2real.training.trainer import collect_without_updates
from sim2real.transfer.budget import CountedEnv, TargetBudget
from sim2real.validation import require_int, require_known_keys

SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class TransferSetup:
    """What every method is given.

    Attributes:
        source_dir: The source (domain-randomized) run folder; never modified.
        env: The robot (taken from the source run).
        source_randomization: The randomization the source was trained with (the source domain).
        target: The target dynamics.
        budget: Target steps allowed.
        seed: Seed of this adaptation.
        device: Torch device.
        log: Where a method reports the progress of its long trainings (``print`` in a script); None: silently.
        run_dir: The run folder being written (set by :func:`run_transfer`), where a method keeps at once what
            a later failure must not take with it, such as measured target data (sysid); None: nowhere.
    """

    source_dir: Path
    env: EnvSpec
    source_randomization: DynamicsSpec
    target: DynamicsSpec
    budget: int
    seed: int = 0
    device: str = "cpu"
    log: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    run_dir: Path | None = field(default=None, compare=False)

    def progress(self, label: str, timesteps: int) -> list[Any]:
        """The callbacks that report a training of ``timesteps`` steps to ``log`` (a line per tenth, at least
        every 10,000 steps): none without a ``log``."""
        if self.log is None:
            return []
        return [ProgressPrinter(self.log, label, timesteps, every=max(1, min(10_000, timesteps // 10)))]


@dataclass
class AdaptedPolicy:
    """A method's output.

    Attributes:
        model: The adapted SB3 model (same algorithm as the source).
        normalizer: Observation statistics to save beside it: a ``VecNormalize`` (re-estimated), a path to
            a ``vecnormalize.pkl`` to copy (kept), or None (the policy takes raw observations).
        metrics: Method-specific figures for metadata (losses, classifier accuracies, ...).
    """

    model: BaseAlgorithm
    normalizer: VecNormalize | Path | None
    metrics: dict[str, Any] = field(default_factory=dict)


class TransferMethod(ABC, Generic[SettingsT]):
    """Base class of transfer methods. Subclasses set ``name`` and ``Settings`` and implement ``adapt``.

    Attributes:
        name: The method's name in :data:`METHODS` and on the command line (``method=NAME``).
        Settings: The method's frozen settings dataclass (``SettingsT``), which checks itself when built.
        needs_expert: The method learns from an expert's actions (BC, DAgger). Its settings have ``expert``
            (a policy run folder) and ``dataset`` (demonstrations recorded from one); a pipeline that has an
            expert on the target (its oracle) passes it as ``expert`` where neither is set.
        needs_dataset: The method cannot run without a recorded dataset of target steps (its ``dataset``
            setting); a pipeline must supply one.
        supports_recurrent: The method can adapt a recurrent (``recurrent_ppo``) source. None does today:
            each acts, labels or trains step by step or in batches without the LSTM's state.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[Any]]
    needs_expert: ClassVar[bool] = False
    needs_dataset: ClassVar[bool] = False
    supports_recurrent: ClassVar[bool] = False

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings

    @classmethod
    def settings_from_dict(cls, data: dict[str, Any] | None) -> Any:
        """Builds the method's ``Settings``; rejects unknown keys naming the valid ones, and bad values."""
        data = dict(data or {})
        require_known_keys(f"method '{cls.name}'", data, (f.name for f in fields(cls.Settings)))
        try:
            return cls.Settings(**data)
        except ValueError as err:
            raise ValueError(f"method '{cls.name}': {err}") from None

    def validate(self, setup: TransferSetup, source: RunInfo) -> None:
        """Checks what needs the setup or the source run (e.g. budget below one round); raises ``ValueError``."""
        return None

    def check(self, setup: TransferSetup, source: RunInfo) -> None:
        """Everything checked before any work (and before a target step is spent): the kind of source the
        method can adapt, then the method's own :meth:`validate`."""
        if source.algo == "recurrent_ppo" and not self.supports_recurrent:
            raise ValueError(f"method '{self.name}' cannot adapt a recurrent (recurrent_ppo) source: it would run the "
                             "LSTM without its state; give a source trained with policy.history=k (ppo, sac or td3)")
        self.validate(setup, source)

    @abstractmethod
    def adapt(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> AdaptedPolicy:
        """Adapts ``source`` to ``setup.target``, spending target steps only through ``budget``."""

    def write_artifacts(self, adapted: AdaptedPolicy, run_dir: Path) -> list[Path]:
        """Writes method-specific files (reports, plots) into the run folder after the policy; returns them."""
        return []


def set_checked(settings: Any, **values: Any) -> None:
    """Stores checked, canonical values (``int``, ``float``, ...) into a frozen settings dataclass; called
    from its ``__post_init__``, e.g. ``set_checked(self, epochs=require_int("epochs", self.epochs, minimum=1))``."""
    for name, value in values.items():
        object.__setattr__(settings, name, value)


METHODS: Registry[type[TransferMethod[Any]]] = Registry("transfer method")
MethodT = TypeVar("MethodT", bound=type[TransferMethod[Any]])


def register_method(cls: MethodT) -> MethodT:
    """Class decorator adding a method to :data:`METHODS` under ``cls.name``."""
    METHODS.register(cls.name, cls)
    return cls


def make_target_env(setup: TransferSetup, budget: TargetBudget, purpose: str = "rollouts") -> gym.Env:
    """A target-dynamics env whose every step is charged to ``budget`` under ``purpose``."""
    return CountedEnv(make_env(setup.env, target=setup.target), budget, purpose)


def make_source_env(setup: TransferSetup) -> gym.Env:
    """A source-domain env (the source's randomization; free: simulation is not budgeted)."""
    return make_env(setup.env, randomization=setup.source_randomization)


def load_setup(source_dir: str | Path, target: DynamicsSpec, budget: int, seed: int, device: str = "cpu",
               expect_env: str | None = None, log: Callable[[str], None] | None = None) -> tuple[TransferSetup, RunInfo]:
    """Validates the source folder and target, returning the setup and what the source run says about itself."""
    budget = require_int("budget", budget, minimum=1, whole_float=True)
    seed = require_int("seed", seed, minimum=0, whole_float=True)
    device = require_device("device", device)
    source = read_run_info(source_dir)
    if source.complete is False:
        raise ValueError(f"source run '{source_dir}' is incomplete (complete: false in its metadata.json)")
    env = source.env
    if expect_env is not None and env.name != expect_env:
        raise ValueError(f"source run '{source_dir}' is for env '{env.name}', not '{expect_env}'")
    validate_dynamics(env, target)
    limit = episode_limit(env)
    if budget < limit:
        raise ValueError(f"budget={budget} is less than one episode of {env.name} ({limit} steps)")
    setup = TransferSetup(source_dir=source.run_dir, env=env, source_randomization=source.randomization, target=target,
                          budget=budget, seed=seed, device=device, log=log)
    return setup, source


def prepare_transfer(source_dir: str | Path, target: DynamicsSpec, method: str, settings: dict[str, Any] | None,
                     budget: int, seed: int, device: str = "cpu", expect_env: str | None = None,
                     log: Callable[[str], None] | None = None) -> tuple[TransferMethod[Any], TransferSetup, RunInfo]:
    """Validates everything a transfer needs (method, settings, source run, target, budget) before any work.

    Returns the method instance, the setup and the source run's :class:`RunInfo` for :func:`run_transfer`.

    Raises:
        ValueError: naming the bad value and the valid choices.
    """
    method_cls = METHODS.get(method)
    instance = method_cls(method_cls.settings_from_dict(settings))
    setup, source = load_setup(source_dir, target, budget, seed, device=device, expect_env=expect_env, log=log)
    instance.check(setup, source)
    return instance, setup, source


def run_transfer(method: TransferMethod[Any], setup: TransferSetup, source: RunInfo, run_dir: str | Path) -> dict[str, Any]:
    """Runs ``method`` and writes the adapted policy into ``run_dir`` in the same form as a trained run.

    Nothing is written into the source folder. Returns the run's metadata (with ``target_steps_used``, the
    budget ledger, settings and wall time).
    """
    run_dir = Path(run_dir)
    if _same_or_inside(run_dir, setup.source_dir):
        raise ValueError(f"the transfer run folder '{run_dir}' must lie outside the source run folder '{setup.source_dir}'")
    method.check(setup, source)
    run_dir.mkdir(parents=True, exist_ok=True)
    update_metadata(run_dir, kind="transfer", method=method.name, source_run=str(setup.source_dir),
                    budget=setup.budget, seed=setup.seed, complete=False)
    policy = Policy.load(setup.source_dir, device=setup.device)
    budget = TargetBudget(setup.budget)
    start = time.perf_counter()
    adapted = method.adapt(replace(setup, run_dir=run_dir), policy, budget)
    wall = time.perf_counter() - start
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        adapted.model.save(tmp)
    _save_normalizer(adapted.normalizer, run_dir / VECNORMALIZE_FILE)
    method.write_artifacts(adapted, run_dir)
    return update_metadata(
        run_dir,
        kind="transfer",
        env=source.env.to_record(),
        algo=source.algo,
        **({"algo_config": source.algo_config} if source.algo_config is not None else {}),
        randomization=source.randomization.to_dict(),
        normalize=adapted.normalizer is not None,
        seed=setup.seed,
        method=method.name,
        settings=asdict(method.settings),
        source_run=str(setup.source_dir),
        target=setup.target.to_dict(),
        budget=budget.limit,
        target_steps_used=budget.used,
        budget_ledger=dict(budget.ledger),
        physics_blowups=budget.physics_blowups,
        wall_time_s=round(wall, 2),
        metrics=adapted.metrics,
        final_files=final_files_record(run_dir, adapted.model.num_timesteps),
        complete=True,
    )


def continue_off_policy(model: OffPolicyAlgorithm, timesteps: int, warmup: int, callback: Any = None) -> None:
    """Continues a trained SAC/TD3 model for ``timesteps`` more steps on its (new) env.

    Its step count is kept: counted afresh, SB3's ``learning_starts`` would replace the trained actor by
    uniform random actions for the first steps and train on them. The first ``warmup`` steps only fill the
    fresh replay buffer with the policy's own (exploration-noised) actions; gradient updates follow.

    The learning-rate schedule runs over these ``timesteps``, as for PPO, which counts them afresh: a
    ``lin_`` schedule starts again at its full value (read against the kept count, it would sit in the
    source run's last few percent, near 0). A constant rate is unaffected.
    """
    warmup = max(0, min(warmup, timesteps - 1))
    schedule, start = model.lr_schedule, model.num_timesteps
    model.lr_schedule = _OverSteps(schedule, model, start, timesteps)
    try:
        if warmup:
            collect_without_updates(model, warmup, callback)
        model.learn(total_timesteps=timesteps - warmup, callback=callback, reset_num_timesteps=False)
    finally:
        model.lr_schedule = schedule  # the saved model carries its own schedule, not this view of it


@dataclass
class _OverSteps:
    """A schedule read at the progress of ``timesteps`` steps counted from ``start`` (SB3 passes the progress
    of the whole kept count, ignored here)."""

    schedule: Callable[[float], float]
    model: OffPolicyAlgorithm
    start: int
    timesteps: int

    def __call__(self, _progress_remaining: float) -> float:
        done = (self.model.num_timesteps - self.start) / self.timesteps
        return self.schedule(min(1.0, max(0.0, 1.0 - done)))


def _same_or_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _save_normalizer(normalizer: VecNormalize | Path | None, path: Path) -> None:
    if normalizer is None:
        return
    with atomic_path(path) as tmp:
        if isinstance(normalizer, VecNormalize):
            normalizer.save(str(tmp))
        else:
            shutil.copyfile(normalizer, tmp)
