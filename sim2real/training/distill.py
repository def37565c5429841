"""Teacher -> student distillation in simulation: DAgger from a privileged teacher to a history student.

A teacher trained with privileged observations (``policy.privileged=actor``: it sees the episode's
randomized parameters) acts well on every robot the randomization draws, but needs what only a simulator
knows. The student sees what a robot sees, its last ``history`` observations and actions, and learns to
act as the teacher would, inferring the robot from how it responded:

1. roll out in the teacher's randomized simulation; at every step the executed action is the teacher's
   with probability ``beta_i`` (``beta * beta_decay ** i`` in round ``i``), else the student's;
2. label every visited state with the teacher's action (the teacher reads the privileged observation,
   the student its history of the same moment);
3. retrain the student on everything gathered so far (the supervised core of ``bc``/``dagger``), with
   observation statistics re-estimated on the aggregate;
4. optionally (``select_episodes``), score the round's student deterministically on the same fixed episodes
   of the randomization and, at the end, keep the round that scored best instead of the last one: the
   student's quality swings from round to round, and choosing in simulation costs no target step.

Two students (``method``):

- ``dagger``: the teacher's architecture, freshly initialized, on the history observation, regressed onto
  the teacher's actions;
- ``rma`` (Kumar et al. 2021, "RMA: Rapid Motor Adaptation for Legged Robots"): the teacher's own trained
  layers behind an adaptation module (:class:`~sim2real.policies.networks.AdaptationExtractor`) that
  estimates the privileged observation from the history; only the module is trained, by regression onto
  the privileged observation of every visited state (the teacher's latent: here the normalized
  parameters themselves). The student then acts exactly as the teacher would on the robot it inferred.

Everything happens in simulation: zero target steps. The student is written as an ordinary run folder
(``kind: distill``), so the evaluator, the transfer methods and the exporter take it like any policy.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sim2real.envs.registry import EnvSpec
from sim2real.episodes import run_steps
from sim2real.evaluation.rollout import privileged_rollout_returns, rollout_returns
from sim2real.policies.networks import AdaptationExtractor
from sim2real.policies.policy import ObsNormalizer, Policy
from sim2real.policies.run_info import RunInfo
from sim2real.randomization.factory import make_env
from sim2real.randomization.history import HistoryLayout, history_layout
from sim2real.randomization.privileged import privileged_bounds, split_privileged
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import MODEL_FILE, VECNORMALIZE_FILE, atomic_path, final_files_record, update_metadata
from sim2real.seeding import child_seeds
from sim2real.training.config import algo_config_from_dict
from sim2real.training.trainer import build_model
from sim2real.transfer.demonstrations import (
    LR_SCHEDULES,
    DemonstrationSettings,
    action_error,
    fit_actor,
    fit_regression,
)
from sim2real.validation import require_choice, require_float, require_int, require_known_keys

DISTILL_METHODS = ("dagger", "rma")
ADAPTATION_LOSSES = ("privileged", "action")


@dataclass(frozen=True)
class DistillSettings:
    """How a student is distilled (``configs/distill.yaml``).

    Attributes:
        method: ``dagger`` (a fresh network regressed onto the teacher's actions) or ``rma`` (the teacher's
            layers behind an adaptation module regressed onto the privileged observation).
        history: Observations and actions of history the student sees (>= 1).
        iterations: DAgger rounds (collect, label, retrain).
        steps_per_iteration: Simulation steps collected per round.
        train_episode_steps: Cut collection episodes after this many steps (None: the robot's own length):
            more episodes per round, hence more draws of the randomization.
        beta: Probability of executing the teacher's action in round 0 (1: the first round follows the
            teacher, so the student first learns where a good policy goes).
        beta_decay: Factor applied to ``beta`` after every round.
        epochs: Passes over the aggregated data per round.
        batch_size: Steps per gradient step.
        learning_rate: Adam learning rate of the student's actor.
        lr_schedule: ``constant`` or ``cosine`` (annealed to 0 over each round's fit).
        eval_episodes: Episodes of the final check on the training randomization (student and teacher; 0 skips).
        select_episodes: Episodes (the same reset seeds every round, other than the final check's) on which each
            round's student is scored deterministically; the best-scoring round is kept (0: the last round).
        seed: Seed of the student's initialization, the rollouts and the mini-batches.
        adaptation_hidden: Hidden layer sizes of ``rma``'s adaptation module.
        adaptation_loss: What ``rma``'s module is fitted to: ``privileged`` (RMA's regression onto the
            privileged observation) or ``action`` (the teacher's action, through the teacher's frozen layers:
            where history cannot separate parameters, e.g. masses against gains, it need not choose a point
            on the confounded line, only an estimate the teacher acts on correctly).
    """

    method: str = "dagger"
    history: int = 4
    iterations: int = 8
    steps_per_iteration: int = 10_000
    train_episode_steps: int | None = None
    beta: float = 1.0
    beta_decay: float = 0.5
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    eval_episodes: int = 10
    select_episodes: int = 0
    seed: int = 0
    adaptation_hidden: tuple[int, ...] = (256, 128)
    adaptation_loss: str = "privileged"

    def __post_init__(self) -> None:
        require_choice("distill method", self.method, DISTILL_METHODS)
        require_choice("adaptation_loss", self.adaptation_loss, ADAPTATION_LOSSES)
        require_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        hidden = self.adaptation_hidden
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__") or not list(hidden):
            raise ValueError(f"adaptation_hidden={hidden!r} must be a non-empty list of layer sizes, e.g. [256, 128]")
        object.__setattr__(self, "adaptation_hidden", tuple(
            require_int("adaptation_hidden entry", size, minimum=1, whole_float=True) for size in hidden))
        for name, minimum in (("history", 1), ("iterations", 1), ("steps_per_iteration", 1), ("epochs", 1),
                              ("batch_size", 1), ("eval_episodes", 0), ("select_episodes", 0), ("seed", 0)):
            object.__setattr__(self, name, require_int(name, getattr(self, name), minimum=minimum, whole_float=True))
        object.__setattr__(self, "train_episode_steps", require_int(
            "train_episode_steps", self.train_episode_steps, minimum=1, whole_float=True, optional=True))
        for name in ("beta", "beta_decay"):
            object.__setattr__(self, name, require_float(name, getattr(self, name), low=0.0, high=1.0))
        object.__setattr__(self, "learning_rate", require_float("learning_rate", self.learning_rate, low=0.0, low_open=True))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillSettings:
        """Builds settings from a plain dict, rejecting unknown keys (naming the valid ones)."""
        require_known_keys("distill", data, cls.__dataclass_fields__)
        return cls(**data)

    def fit_settings(self) -> DemonstrationSettings:
        """The supervised core's settings (the student's data is aggregated, so no held-out split)."""
        return DemonstrationSettings(init="scratch", epochs=self.epochs, batch_size=self.batch_size,
                                     learning_rate=self.learning_rate, lr_schedule=self.lr_schedule,
                                     validation_split=0.0, keep_best=False)


@dataclass
class Views:
    """The two views of one simulated moment: the student's stacked history and the teacher's observation.

    Args:
        layout: The student env's history layout.
        teacher_history: Steps of history the teacher's own observation carries (<= the student's).
        privileged_dim: Length of the privileged part at the end of the env's observation.
    """

    layout: HistoryLayout
    teacher_history: int
    privileged_dim: int

    def student(self, obs: np.ndarray) -> np.ndarray:
        """What the student sees: the stacked history, without the privileged part."""
        return split_privileged(obs, self.privileged_dim)[0]

    def teacher_index(self) -> list[int]:
        """Entries of the student's observation that make up the teacher's own observation."""
        positions = np.arange(self.layout.stacked_dim)
        return [int(i) for i in self.layout.shorter(positions, self.teacher_history)]

    def teacher(self, obs: np.ndarray) -> np.ndarray:
        """What the teacher sees: its own (shorter) history and the privileged observation."""
        stacked, privileged = split_privileged(obs, self.privileged_dim)
        return np.concatenate([self.layout.shorter(stacked, self.teacher_history), privileged], axis=-1)


@dataclass
class Collector:
    """Acts in the privileged env (teacher with probability ``beta``, else student) and records every
    visited state's student view with the teacher's action and the privileged part of the teacher's
    normalized input (what an ``rma`` module regresses onto)."""

    teacher: Policy
    student: Policy
    views: Views
    beta: float
    rng: np.random.Generator

    def __post_init__(self) -> None:
        self.observations: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.privileged: list[np.ndarray] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        student_obs = self.views.student(obs)
        teacher_obs = self.views.teacher(obs)
        label = np.asarray(self.teacher.act(teacher_obs), np.float32)
        self.observations.append(student_obs.copy())
        self.labels.append(label)
        self.privileged.append(self.teacher.normalize(teacher_obs)[-self.views.privileged_dim:])
        return label if self.rng.random() < self.beta else self.student.act(student_obs)

    def reset(self) -> None:
        """A new episode for both policies."""
        self.teacher.reset()
        self.student.reset()


def load_teacher(teacher_run: str | Path) -> Policy:
    """Loads a privileged teacher; ``ValueError`` if the run is not one."""
    teacher = Policy.load(teacher_run)
    if teacher.info.privileged != "actor":
        raise ValueError(f"'{teacher_run}' is not a privileged teacher (policy.privileged={teacher.info.privileged}); "
                         "train one with policy=teacher (policy.privileged=actor)")
    if teacher.recurrent:
        raise ValueError(f"'{teacher_run}': a recurrent teacher is not supported; train a feed-forward one")
    return teacher


def student_env_spec(teacher: Policy, history: int) -> EnvSpec:
    """The student's env: the teacher's robot with ``history`` steps of history (at least the teacher's)."""
    if history < teacher.history:
        raise ValueError(f"student history={history} must be at least the teacher's ({teacher.history})")
    return replace(teacher.info.env, history=history)


def check_randomization(teacher: Policy, randomization: DynamicsSpec | None) -> None:
    """Refuses a distillation randomization on which the teacher would be told its robot on another scale
    than the one it learned (each privileged value is normalized over the randomization's ranges: under
    other ranges the same robot reads differently, and every label would come from a misinformed teacher)."""
    if randomization is None:
        return
    spec, target = teacher.info.env, teacher.info.target
    envs = [make_env(spec, randomization=dynamics, target=target, privileged=True)
            for dynamics in (teacher.info.randomization, randomization)]
    try:
        own, other = (privileged_bounds(env) for env in envs)
    finally:
        for env in envs:
            env.close()
    differ = {name: (own.get(name), other.get(name)) for name in {*own, *other}
              if name not in own or name not in other or not np.allclose(own[name], other[name], rtol=1e-9, atol=0.0)}
    if differ:
        shown = "; ".join(f"{name}: teacher {pair[0]}, here {pair[1]}" for name, pair in sorted(differ.items())[:4])
        raise ValueError(f"randomization '{randomization.name}' gives the privileged observation other entries or ranges "
                         f"than the teacher's '{teacher.info.randomization.name}' ({shown}{'; ...' if len(differ) > 4 else ''}): "
                         "the teacher would be told its robot on a scale it never learned. Distill under the same "
                         "parameters and ranges (another distribution over them is fine), or leave randomization unset")


def new_student(teacher: Policy, spec: EnvSpec, run_dir: Path, seed: int, settings: DistillSettings | None = None,
                views: Views | None = None) -> Policy:
    """A new student on the student's observation: the teacher's algorithm and network, freshly initialized
    (``dagger``), or the teacher's trained layers behind a fresh adaptation module (``rma``, needs ``views``)."""
    settings = settings or DistillSettings()
    algo = algo_config_from_dict(teacher.info.algo_config or {"name": teacher.info.algo}, spec.name)
    if settings.method == "rma":
        if views is None:
            raise ValueError("an rma student needs the views (history layout, teacher's history, privileged size)")
        extractor = {"teacher_index": views.teacher_index(), "privileged_dim": views.privileged_dim,
                     "hidden": list(settings.adaptation_hidden), "activation": algo.network.activation}
        extra = {**algo.network.extra, "features_extractor_class": AdaptationExtractor,
                 "features_extractor_kwargs": extractor}
        algo = replace(algo, network=replace(algo.network, extra=extra))
    venv = DummyVecEnv([lambda: make_env(spec)] * algo.n_envs)  # only gives the spaces: never stepped
    model = build_model(algo, venv, seed=seed, tensorboard_dir=None, device="cpu")
    venv.close()
    if settings.method == "rma":
        _adopt_teacher_layers(model.policy, teacher)
    info = RunInfo(run_dir=run_dir, kind="distill", env=spec, algo=teacher.info.algo, algo_config=teacher.info.algo_config,
                   normalize=True, randomization=teacher.info.randomization, target=teacher.info.target, seed=seed)
    return Policy(model, None, info)


def _adopt_teacher_layers(policy: Any, teacher: Policy) -> None:
    """Copies every teacher weight into an rma student's policy: all but the adaptation module match."""
    result = policy.load_state_dict(teacher.model.policy.state_dict(), strict=False)
    foreign = [key for key in result.missing_keys if "features_extractor." not in key]
    if result.unexpected_keys or foreign:
        raise ValueError(f"the teacher's layers do not fit the rma student (unexpected {result.unexpected_keys}, "
                         f"missing {foreign}); distill with method=dagger")


def adaptation_module(student: Policy) -> AdaptationExtractor:
    """An rma student's adaptation module (the actor's features extractor)."""
    policy = student.model.policy
    extractor = policy.pi_features_extractor if hasattr(policy, "pi_features_extractor") else policy.actor.features_extractor
    if not isinstance(extractor, AdaptationExtractor):
        raise ValueError(f"'{student.run_dir}' has no adaptation module (features extractor {type(extractor).__name__})")
    return extractor


def fit_adaptation(student: Policy, teacher: Policy, observations: np.ndarray, privileged: np.ndarray,
                   labels: np.ndarray, settings: DistillSettings, seed: int) -> dict[str, Any]:
    """Sets the student's normalization (and the module's map into the teacher's), then fits the adaptation
    module alone: its estimate onto ``privileged`` (the privileged part of the teacher's normalized inputs,
    ``adaptation_loss=privileged``), or the student's action onto the teacher's ``labels`` (``action``)."""
    student.normalizer = fitted_normalizer(observations)
    module = adaptation_module(student)
    index = module.teacher_index.cpu().numpy()
    to_teacher = teacher.normalizer
    student_std = np.sqrt(student.normalizer.var[index] + student.normalizer.epsilon)
    if to_teacher is None:
        module.set_normalization(student_std, student.normalizer.mean[index], None)
    else:
        n = len(index)
        teacher_std = np.sqrt(to_teacher.var[:n] + to_teacher.epsilon)
        module.set_normalization(student_std / teacher_std, (student.normalizer.mean[index] - to_teacher.mean[:n]) / teacher_std,
                                 to_teacher.clip)
    if settings.adaptation_loss == "privileged":
        predict, targets = module.adaptation, torch.as_tensor(privileged, dtype=torch.float32)
    else:
        predict = student.network_action
        targets = torch.as_tensor(student.to_network_space(labels).reshape(len(labels), -1), dtype=torch.float32)
    for parameter in student.model.policy.parameters():
        parameter.requires_grad_(False)
    for parameter in module.adaptation.parameters():
        parameter.requires_grad_(True)
    try:
        return fit_regression(predict, list(module.adaptation.parameters()), student.model.policy,
                              student.obs_tensor(observations), targets, settings.fit_settings(), seed)
    finally:
        for parameter in student.model.policy.parameters():
            parameter.requires_grad_(True)


def fitted_normalizer(observations: np.ndarray, clip: float = 10.0, epsilon: float = 1e-8) -> ObsNormalizer:
    """Observation statistics of the aggregated data (as VecNormalize would hold them)."""
    return ObsNormalizer(mean=observations.mean(axis=0), var=observations.var(axis=0), clip=clip, epsilon=epsilon)


def distill(teacher_run: str | Path, run_dir: str | Path, settings: DistillSettings | None = None,
            randomization: DynamicsSpec | None = None) -> dict[str, Any]:
    """Distills a history student from a privileged teacher by DAgger in simulation; writes a run folder.

    Args:
        teacher_run: The teacher's run folder (trained with ``policy.privileged=actor``).
        run_dir: The student's run folder to write.
        settings: Rounds, steps and the supervised fit.
        randomization: Where to distill (default: the teacher's own randomization).

    Returns:
        The student's metadata (``target_steps_used: 0``, the per-round figures under ``metrics``).
    """
    settings = settings or DistillSettings()
    teacher = load_teacher(teacher_run)
    check_randomization(teacher, randomization)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    randomization = randomization or teacher.info.randomization
    spec = student_env_spec(teacher, settings.history)
    env = make_env(spec, randomization=randomization, target=teacher.info.target, privileged=True)
    views = Views(history_layout(env), teacher.history, len(teacher.info.privileged_names))
    student = new_student(teacher, spec, run_dir, settings.seed, settings, views)
    update_metadata(run_dir, **_metadata(teacher, student, settings, randomization), complete=False)
    rng = np.random.default_rng(settings.seed)
    observations, labels, rounds = np.zeros((0, views.layout.stacked_dim)), np.zeros((0, student.model.action_space.shape[0])), []
    privileged = np.zeros((0, views.privileged_dim), np.float32)
    selection = RoundSelection(randomization, teacher.info.target, settings) if settings.select_episodes else None
    start = time.perf_counter()
    try:
        for i, episode_seed in enumerate(child_seeds(settings.seed, settings.iterations)):
            beta = settings.beta * settings.beta_decay ** i
            collector = Collector(teacher, student, views, beta, rng)
            returns = _collect(env, collector, episode_seed, settings.steps_per_iteration, settings.train_episode_steps)
            observations = np.concatenate([observations, np.stack(collector.observations)])
            labels = np.concatenate([labels, np.stack(collector.labels)])
            privileged = np.concatenate([privileged, np.stack(collector.privileged)])
            if settings.method == "rma":
                fit = fit_adaptation(student, teacher, observations, privileged, labels, settings, seed=episode_seed)
            else:
                student.normalizer = fitted_normalizer(observations)
                fit = fit_actor(student, observations, labels, settings.fit_settings(), seed=episode_seed)
            error = action_error(student, observations, labels)
            rounds.append({"round": i, "beta": beta, "steps": len(collector.observations), "episode_return_mean":
                           float(np.mean(returns)) if returns else None, "train_error_before": fit["train_error_before"],
                           "train_error_after": fit["train_error_after"], "action_error": error})
            selected = selection.score(student, i) if selection else None
            rounds[-1]["selection_return"] = selected
            print(f"round {i}: beta {beta:.3f}, {len(observations)} labelled steps, rollout return "
                  f"{rounds[-1]['episode_return_mean']}, fit error {fit['train_error_after']:.4g}, "
                  f"action error {error:.4g}" + ("" if selected is None else f", selection return {selected:.1f}"))
    finally:
        env.close()
    kept = selection.restore_best(student) if selection else {}
    wall = time.perf_counter() - start
    _save_student(student, run_dir)
    check = _final_check(teacher, student, randomization, settings)
    return update_metadata(run_dir, complete=True, timesteps_done=int(len(observations)), target_steps_used=0,
                           final_files=final_files_record(run_dir, len(observations)),
                           wall_time_s=round(wall, 2), metrics={"rounds": rounds, **kept, **check})


class RoundSelection:
    """Scores each round's student on the same fixed episodes of the randomization (deterministic actions, reset
    seeds ``20_000 + seed + i``, apart from the final check's) and keeps a copy of the best one.

    Args:
        randomization: The distillation randomization.
        target: The teacher's robot, under the randomization.
        settings: ``select_episodes`` and ``seed``.
    """

    def __init__(self, randomization: DynamicsSpec, target: DynamicsSpec, settings: DistillSettings) -> None:
        self.randomization, self.target = randomization, target
        self.episodes, self.seed = settings.select_episodes, 20_000 + settings.seed
        self.best: tuple[float, int, dict[str, Any], ObsNormalizer | None] | None = None
        self.steps = 0

    def score(self, student: Policy, round_index: int) -> float:
        """The student's mean return on the selection episodes; remembers the student if it is the best so far."""
        result = rollout_returns(student, student.info.env, self.episodes, self.seed,
                                 randomization=self.randomization, target=self.target)
        self.steps += int(np.sum(result.lengths))
        score = float(np.mean(result.returns))
        if self.best is None or score > self.best[0]:
            self.best = (score, round_index, copy.deepcopy(student.model.policy.state_dict()),
                         copy.deepcopy(student.normalizer))
        return score

    def restore_best(self, student: Policy) -> dict[str, Any]:
        """Puts the best round's weights and statistics back into ``student``; returns what was kept."""
        assert self.best is not None, "no round was scored"
        score, round_index, state, normalizer = self.best
        student.model.policy.load_state_dict(state)
        student.normalizer = normalizer
        student.sync_target_actor()
        print(f"kept round {round_index} (selection return {score:.1f} over {self.episodes} episodes)")
        return {"kept_round": round_index, "selection_return": score, "selection_steps": self.steps}


def _collect(env: Any, collector: Collector, seed: int, steps: int, episode_steps: int | None = None) -> list[float]:
    """Runs ``steps`` steps through the one episode loop (episodes cut after ``episode_steps``); returns the
    returns of the episodes that ended."""
    returns: dict[int, float] = {}
    finished: list[float] = []
    for step in run_steps(env, collector, seed, steps=steps, max_episode_steps=episode_steps, reset=collector.reset):
        returns[step.episode] = returns.get(step.episode, 0.0) + step.reward
        if step.done:
            finished.append(returns[step.episode])
    return finished


def _save_student(student: Policy, run_dir: Path) -> None:
    """``model.zip`` and a ``vecnormalize.pkl`` holding the student's frozen statistics, atomically."""
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        student.model.save(tmp)
    norm = student.normalizer
    assert norm is not None
    venv = VecNormalize(DummyVecEnv([lambda: make_env(student.info.env)]), norm_obs=True, norm_reward=False,
                        clip_obs=norm.clip, epsilon=norm.epsilon, training=False)
    venv.obs_rms.mean, venv.obs_rms.var = norm.mean.copy(), norm.var.copy()
    with atomic_path(run_dir / VECNORMALIZE_FILE) as tmp:
        venv.save(str(tmp))
    venv.close()


def _final_check(teacher: Policy, student: Policy, randomization: DynamicsSpec,
                 settings: DistillSettings) -> dict[str, Any]:
    """Deterministic returns of student and teacher on the distillation randomization around the teacher's
    robot (its target, nominal for most teachers), the same seeds for both."""
    if settings.eval_episodes == 0:
        return {}
    seed = 10_000 + settings.seed
    student_returns = rollout_returns(student, student.info.env, settings.eval_episodes, seed,
                                      randomization=randomization, target=teacher.info.target)
    teacher_returns = privileged_rollout_returns(teacher, settings.eval_episodes, seed, randomization=randomization).returns
    result = {"student_return_mean": float(np.mean(student_returns.returns)),
              "teacher_return_mean": float(np.mean(teacher_returns))}
    print(f"on '{randomization.name}' ({settings.eval_episodes} episodes): student {result['student_return_mean']:.1f}, "
          f"teacher {result['teacher_return_mean']:.1f}")
    return result


def _metadata(teacher: Policy, student: Policy, settings: DistillSettings, randomization: DynamicsSpec) -> dict[str, Any]:
    info = student.info
    return {"kind": "distill", "env": info.env.to_record(), "algo": info.algo, "algo_config": info.algo_config,
            "normalize": True, "seed": settings.seed, "randomization": randomization.to_dict(),
            "target": info.target.to_dict(), "teacher_run": str(teacher.run_dir), "settings": asdict(settings),
            "policy": {"privileged": "none", "privileged_names": []}}
