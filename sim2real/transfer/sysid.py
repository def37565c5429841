"""System identification: spend target steps on measuring the dynamics, calibrate the simulator, train there.

1. **Measure.** ``measure_steps`` target steps (capped by the budget) of the source policy with Gaussian
   exploration noise, or of a ``random`` or ``chirp`` excitation, through :func:`make_target_env` (ledger
   purpose ``measurement``). Only what a robot's encoders give is kept: joint positions and velocities
   before and after each step, and the actions sent (see :mod:`sim2real.sysid.data`).
2. **Identify.** The scales of the configured parameter handles (default: all masses and all motor gains)
   and the action latency, as a distribution, by replaying the recorded transitions in the simulator
   (:func:`sim2real.sysid.identify.identify`): CMA-ES on the k-step replay error, a bootstrap over
   trajectories for the spread, the eigen-structure of the error's curvature for what the data cannot
   separate. The target's true dynamics are used only to report identification errors.
3. **Train in simulation.** Under the calibrated randomization (the source's randomization with the
   identified terms replacing its terms on the same parameters), with the source's algorithm config, from
   scratch, from the source policy, or both (keeping the one that scores best in the calibrated
   simulation, which costs no target steps); with ``select_every``, each training's checkpoints are scored
   there too and its best one is kept instead of its last. Simulation steps are reported in the metrics,
   never charged.
4. Optionally **fine-tune** on the target with what is left of the budget.

The full calibration is ``metrics["calibration"]``; :meth:`Sysid.write_artifacts` writes it as
``calibration.json`` with its plot. The measured trajectories go into the run folder as ``trajectories.npz``
(the dataset format of :mod:`sim2real.sysid.data`) as soon as they are recorded, so a run that fails or is
stopped later keeps them: ``scripts/calibrate.py dataset=<run folder>`` identifies from them again,
and ``scripts/train.py calibration=... [init=<source>]`` trains resumably in what it finds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sim2real.policies import Policy, RunInfo, read_run_info
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import VECNORMALIZE_FILE, update_metadata
from sim2real.sysid.data import (
    EXCITATIONS,
    TRAJECTORIES_FILE,
    MeasurementSettings,
    Trajectories,
    env_record,
    measure,
    save_trajectories,
)
from sim2real.sysid.identify import (
    DEFAULT_PARAMETERS,
    IdentifySettings,
    check_horizon,
    check_priors,
    identify,
    parse_priors,
)
from sim2real.sysid.report import summary, write_calibration
from sim2real.training.callbacks import KeepBest, SimulationScore
from sim2real.training.config import AlgoConfig, TrainConfig, algo_config_from_dict
from sim2real.training.trainer import build_model, make_vec_env, run_metadata, save_final, wrap_normalize
from sim2real.transfer.base import (
    METHODS,
    AdaptedPolicy,
    TransferMethod,
    TransferSetup,
    continue_off_policy,
    make_target_env,
    register_method,
    set_checked,
)
from sim2real.transfer.budget import TargetBudget
from sim2real.validation import require_bool, require_choice, require_float, require_int

INITS = ("scratch", "source", "both")


@dataclass(frozen=True)
class SysidSettings:
    """Settings of system identification and training in the calibrated simulator.

    Attributes:
        parameters: ``{handle: [low, high]}``: parameter handles or groups to identify (any name the env
            has: ``masses``, ``gains``, ``frictions``, ``torso_mass``, ``gravity``, ...) with the prior range
            of each one's scale factor.
        latency_max: Action latencies ``0..latency_max`` control steps are tried (0: not identified).
        excitation: ``policy`` (the source policy plus Gaussian noise), ``random`` or ``chirp`` actions.
        amplitude: Noise std (``policy``) or amplitude (``random``, ``chirp``), relative to half the action range.
        measure_steps: Target steps spent on measurement (capped by the budget).
        trajectory_length: Longest recorded trajectory (the env may end one sooner); the budget must hold one.
        horizon: Steps ``k`` of each replayed window in the fit.
        report_horizon: A longer horizon at which the held-out prediction error is also reported.
        holdout_fraction: Share of the recorded trajectories held out of the fit, to report prediction error on.
        evaluations: CMA-ES budget of replay evaluations per latency.
        search_windows: CMA-ES scores candidates on at most this many replay windows (polish and spread use all).
        bootstrap: Bootstrap resamples of the trajectories for the spread.
        identifiable_change: A parameter counts as identified when a change of this relative size is visible
            in the data and its bootstrap spread is smaller.
        spread_k: The calibrated range spans this many spreads on each side of the fit ...
        min_width: ... and at least ``x(1 + min_width)`` on each side.
        keep_source_randomization: Keep the source's randomization terms and effects for what is not identified.
        init: Train in the calibrated simulator from ``scratch``, from the ``source`` policy, or ``both``
            (keep the one scoring best in the calibrated simulation).
        sim_timesteps: Simulation steps of each training run (free: never charged).
        select_every: Score each training run in the calibrated simulation every this many of its steps and
            keep its best-scoring checkpoint instead of its last (0: keep the last).
        selection_episodes: Calibrated-simulation episodes scoring each candidate (the same reset seeds for
            all), with ``init=both`` or ``select_every``.
        finetune_remaining: Fine-tune the result on the target with the rest of the budget (method ``finetune``
            with its default settings).
    """

    parameters: Mapping[str, Any] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_PARAMETERS.items()})
    latency_max: int = 2
    excitation: str = "policy"
    amplitude: float = 0.3
    measure_steps: int = 2000
    trajectory_length: int = 200
    horizon: int = 1
    report_horizon: int = 5
    holdout_fraction: float = 0.2
    evaluations: int = 150
    search_windows: int = 300
    bootstrap: int = 200
    identifiable_change: float = 0.1
    spread_k: float = 2.0
    min_width: float = 0.05
    keep_source_randomization: bool = True
    init: str = "scratch"
    sim_timesteps: int = 150_000
    select_every: int = 0
    selection_episodes: int = 10
    finetune_remaining: bool = False

    def __post_init__(self) -> None:
        priors = parse_priors(self.parameters)
        set_checked(self, parameters={p.handle: [p.low, p.high] for p in priors},
                    excitation=require_choice("excitation", self.excitation, EXCITATIONS),
                    amplitude=require_float("amplitude", self.amplitude, low=0.0, low_open=True),
                    trajectory_length=require_int("trajectory_length", self.trajectory_length, minimum=1),
                    measure_steps=require_int("measure_steps", self.measure_steps, minimum=1),
                    keep_source_randomization=require_bool("keep_source_randomization", self.keep_source_randomization),
                    init=require_choice("init", self.init, INITS),
                    sim_timesteps=require_int("sim_timesteps", self.sim_timesteps, minimum=1),
                    select_every=require_int("select_every", self.select_every, minimum=0),
                    selection_episodes=require_int("selection_episodes", self.selection_episodes, minimum=1),
                    finetune_remaining=require_bool("finetune_remaining", self.finetune_remaining))
        self.identify_settings()  # checks the identification settings
        if self.select_every > self.sim_timesteps:
            raise ValueError(f"select_every={self.select_every} is more than sim_timesteps={self.sim_timesteps}: no "
                             f"checkpoint would be scored; give at most {self.sim_timesteps}, or 0 to keep the last model")
        if self.measure_steps < self.trajectory_length:
            raise ValueError(f"measure_steps={self.measure_steps} is less than one trajectory "
                             f"(trajectory_length={self.trajectory_length})")

    def identify_settings(self, seed: int = 0) -> IdentifySettings:
        """The identification part of these settings."""
        return IdentifySettings(
            parameters={h: tuple(r) for h, r in self.parameters.items()}, latency_max=self.latency_max,
            horizon=self.horizon, report_horizon=self.report_horizon, holdout_fraction=self.holdout_fraction,
            evaluations=self.evaluations, search_windows=self.search_windows, bootstrap=self.bootstrap,
            identifiable_change=self.identifiable_change, spread_k=self.spread_k, min_width=self.min_width, seed=seed)


@register_method
class Sysid(TransferMethod[SysidSettings]):
    """Measure the target, identify its dynamics, train in the calibrated simulator."""

    name = "sysid"
    Settings = SysidSettings

    def validate(self, setup: TransferSetup, source: RunInfo) -> None:
        """Checks the parameters against the env and the budget against one trajectory, before any work."""
        s = self.settings
        check_priors(setup.env, parse_priors(s.parameters))
        steps = min(s.measure_steps, setup.budget)
        if steps < s.trajectory_length:
            raise ValueError(f"sysid: budget={setup.budget} is too small for one trajectory of "
                             f"trajectory_length={s.trajectory_length} steps")
        check_horizon(s.horizon, s.trajectory_length, "trajectory_length")
        if s.finetune_remaining and setup.budget <= steps:
            raise ValueError(f"sysid: finetune_remaining needs budget > measure_steps; budget={setup.budget} "
                             f"leaves nothing after measure_steps={s.measure_steps}")
        if source.algo_config is None:
            raise ValueError(f"sysid trains with the source run's algorithm config, and '{setup.source_dir}' records "
                             f"none (a scripted policy?)")

    def adapt(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> AdaptedPolicy:
        """Measures, identifies, trains in the calibrated simulator (and optionally fine-tunes)."""
        s = self.settings
        data = self.measure(setup, source, budget)
        if setup.run_dir is not None:  # target steps are the scarce ones: their data outlives whatever fails next
            save_trajectories(data, setup.run_dir / TRAJECTORIES_FILE)
        calibration = identify(setup.env, data, s.identify_settings(setup.seed), truth=setup.target)
        randomization = calibration.randomization(setup.source_randomization if s.keep_source_randomization else None)
        algo = algo_config_from_dict(read_run_info(setup.source_dir).algo_config or {}, setup.env.name)
        inits = ("scratch", "source") if s.init == "both" else (s.init,)
        score = SimulationScore(setup.env, randomization, s.selection_episodes, seed=setup.seed + 10_000)
        models, selection, scores, training_steps = {}, {}, {}, 0
        for init in inits:  # each training keeps its best-scoring checkpoint (or its last, with nothing to choose)
            keeper = KeepBest(score, s.select_every) if s.select_every or len(inits) > 1 else None
            models[init], steps = train_in_simulation(setup, source, algo, randomization, init, s.sim_timesteps,
                                                      [keeper] if keeper else [])
            training_steps += steps
            if keeper is not None:
                kept = keeper.finish()
                scores[init] = keeper.scores[kept]
                selection[init] = keeper.record()
        chosen = max(scores, key=scores.__getitem__) if len(scores) > 1 else inits[0]
        model = models[chosen]
        metrics: dict[str, Any] = {
            "identified": summary(calibration.to_dict()),
            "calibration": calibration.to_dict(),
            "measurement": {"steps": len(data), "trajectories": data.n_episodes, "excitation": s.excitation,
                            "file": TRAJECTORIES_FILE if setup.run_dir is not None else None},
            "init": chosen,
            "selection_returns": scores,
            "selection": selection,
            "sim_steps": {"training": training_steps, "selection": score.steps},
            "calibrated_randomization": randomization.to_dict(),
        }
        normalizer = model.get_vec_normalize_env()
        if s.finetune_remaining:
            model, normalizer, metrics["finetune"] = finetune_remaining(setup, model, algo, randomization, budget)
        return AdaptedPolicy(model=model, normalizer=normalizer, metrics=metrics)

    def measure(self, setup: TransferSetup, source: Policy, budget: TargetBudget) -> Trajectories:
        """Records the measurement trajectories on the target, every step charged to ``budget``."""
        s = self.settings
        settings = MeasurementSettings(s.excitation, s.amplitude, min(s.measure_steps, budget.remaining),
                                       s.trajectory_length)
        info = {"env": env_record(setup.env), "target": setup.target.to_dict(),
                "policy": str(setup.source_dir) if s.excitation == "policy" else None}
        env = make_target_env(setup, budget, "measurement")
        try:
            return measure(env, settings, seed=setup.seed, policy=source.act, info=info)
        finally:
            env.close()

    def write_artifacts(self, adapted: AdaptedPolicy, run_dir: str | Path) -> list[Path]:
        """Writes ``calibration.json`` and ``calibration.png`` into the run folder."""
        return write_calibration(adapted.metrics["calibration"], run_dir)


def train_in_simulation(setup: TransferSetup, source: Policy, algo: AlgoConfig, randomization: DynamicsSpec,
                        init: str, timesteps: int, callbacks: list[Any] | None = None) -> tuple[BaseAlgorithm, int]:
    """Trains ``timesteps`` simulation steps under ``randomization``, from scratch or from the source model
    (then continuing the source's observation statistics; a SAC/TD3 source collects its first
    ``learning_starts`` steps with its own noisy actions, not uniform ones: :func:`continue_off_policy`).
    Returns the model and the simulation steps it took here (whole rollouts: PPO may pass ``timesteps``)."""
    venv = make_vec_env(setup.env, algo.n_envs, setup.seed, randomization=randomization, vec_env=algo.vec_env)
    progress = setup.progress(f"sysid: training in the calibrated simulation (init={init})", timesteps) + (callbacks or [])
    if init == "scratch":
        venv = wrap_normalize(venv, algo)
        model = build_model(algo, venv, setup.seed, None, setup.device)
    else:
        stats = setup.source_dir / VECNORMALIZE_FILE
        venv = wrap_normalize(venv, algo, stats if stats.is_file() else None)
        model = source.trainable_copy(env=venv, device=setup.device, tensorboard_log=None).model
        model.set_random_seed(setup.seed)
        if isinstance(model, OffPolicyAlgorithm):
            start = model.num_timesteps
            continue_off_policy(model, timesteps, warmup=int(model.learning_starts), callback=progress)
            return model, int(model.num_timesteps - start)
    model.learn(total_timesteps=timesteps, callback=progress, reset_num_timesteps=True)
    return model, int(model.num_timesteps)


def finetune_remaining(setup: TransferSetup, model: BaseAlgorithm, algo: AlgoConfig, randomization: DynamicsSpec,
                       budget: TargetBudget) -> tuple[BaseAlgorithm, Any, dict[str, Any]]:
    """Fine-tunes ``model`` on the target with the rest of ``budget`` (method ``finetune``, default settings).

    The calibrated policy is written to a temporary run folder, fine-tuned against a budget of exactly the
    remaining steps, and those steps are then charged to ``budget`` under ``finetune``.
    """
    finetune_cls = METHODS.get("finetune")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        written = save_final(model, folder)
        config = TrainConfig(env=setup.env, algo=algo, randomization=randomization, timesteps=int(model.num_timesteps),
                             seed=setup.seed, checkpoint_every=0, eval_episodes=0, progress_bar=False, device=setup.device)
        update_metadata(folder, **run_metadata(config), complete=True, timesteps_done=int(model.num_timesteps),
                        final_files=written)
        calibrated = Policy.load(folder, device=setup.device)
        remaining = TargetBudget(budget.remaining)
        finetune = finetune_cls(finetune_cls.settings_from_dict({}))
        adapted = finetune.adapt(replace(setup, source_dir=folder, source_randomization=randomization,
                                         budget=remaining.limit), calibrated, remaining)
    budget.charge(remaining.used, "finetune")
    budget.physics_blowups += remaining.physics_blowups
    return adapted.model, adapted.normalizer, {**adapted.metrics, "target_steps": remaining.used}
