"""Domain-randomized training with stable-baselines3: vectorized envs, checkpoints, resume, metadata."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from sim2real.envs.registry import EnvSpec, episode_limit
from sim2real.policies.networks import AsymmetricActorCriticPolicy, policy_kwargs
from sim2real.policies.policy import ALGORITHM_CLASSES, log_in_memory
from sim2real.policies.run_info import RunInfo, read_run_info
from sim2real.processes import sigterm_interrupts
from sim2real.randomization.adr import AdrState, whole_boundary_episodes
from sim2real.randomization.factory import make_env, validate_dynamics
from sim2real.randomization.privileged import privileged_names
from sim2real.randomization.spec import DynamicsSpec
from sim2real.randomization.wrapper import EpisodeCut
from sim2real.runs import (
    FINAL_FILES_KEY,
    METADATA_FILE,
    MODEL_FILE,
    PENDING_FINAL_FILES_KEY,
    VECNORMALIZE_FILE,
    atomic_path,
    final_files_problem,
    final_files_record,
    load_metadata,
    read_json,
    update_metadata,
    verified_final_steps,
)
from sim2real.seeding import segment_seed
from sim2real.training.callbacks import (
    ADR_FILE,
    SELECTION_FILE,
    AdrUpdater,
    CheckpointEvery,
    DynamicsLogger,
    KeepBest,
    SimulationScore,
    checkpoint_steps,
    latest_checkpoint,
    progress_line,
    recent_train_episodes,
    save_checkpoint,
)
from sim2real.training.checks import check_train_config, linear_start
from sim2real.training.config import AlgoConfig, TrainConfig


def env_factory(env: EnvSpec, randomization: DynamicsSpec | None, target: DynamicsSpec | None,
                privileged: bool = False, privileged_noise: float = 0.0,
                episode_steps: int | None = None) -> Callable[[], gym.Env]:
    """A picklable constructor of one monitored env (for ``SubprocVecEnv`` workers too); with
    ``episode_steps``, episodes are truncated after that many steps (time-limit truncation: SB3
    bootstraps the value there, so the return still estimates the robot's whole episode), except ADR
    boundary evaluations when the randomization asks for them whole (``adr.boundary_episodes: whole``)."""
    whole_boundaries = randomization is not None and whole_boundary_episodes(randomization.adr)

    def _make() -> gym.Env:
        built = make_env(env, randomization=randomization, target=target, privileged=privileged,
                         privileged_noise=privileged_noise)
        if episode_steps is not None:
            built = EpisodeCut(built, episode_steps, spare_boundaries=whole_boundaries)
        return Monitor(built)

    return _make


def make_vec_env(
    env: EnvSpec,
    n_envs: int,
    seed: int,
    randomization: DynamicsSpec | None = None,
    target: DynamicsSpec | None = None,
    vec_env: str = "dummy",
    privileged: bool = False,
    privileged_noise: float = 0.0,
    episode_steps: int | None = None,
) -> VecEnv:
    """``n_envs`` monitored envs, each seeded ``seed + i`` (each samples dynamics from its own stream);
    with ``privileged``, observations end with the episode's randomized parameters (plus a per-episode
    offset of std ``privileged_noise``); with ``episode_steps``, training episodes end after that many steps."""
    factories = [env_factory(env, randomization, target, privileged, privileged_noise, episode_steps)
                 for _ in range(n_envs)]
    venv: VecEnv = SubprocVecEnv(factories) if vec_env == "subproc" else DummyVecEnv(factories)
    venv.seed(seed)
    return venv


def build_model(algo: AlgoConfig, venv: VecEnv, seed: int, tensorboard_dir: Path | None, device: str,
                critic_only_dim: int = 0) -> BaseAlgorithm:
    """Constructs the SB3 model for ``algo`` on ``venv``.

    ``critic_only_dim`` > 0 builds an asymmetric actor-critic (PPO): the last ``critic_only_dim`` entries
    of the observation (the privileged part) reach the critic only.
    """
    kwargs: dict[str, Any] = {}
    for name, value in algo.hyperparams.items():
        start = linear_start(f"algo.hyperparams.{name}", value)
        kwargs[name] = value if start is None else LinearSchedule(start)
    network_kwargs = policy_kwargs(algo.network, algo.name)
    policy: Any = "MlpLstmPolicy" if algo.name == "recurrent_ppo" else "MlpPolicy"
    if critic_only_dim > 0:
        policy = AsymmetricActorCriticPolicy
        network_kwargs["actor_obs_dim"] = int(venv.observation_space.shape[0]) - critic_only_dim
    if algo.name == "td3" and algo.action_noise_sigma > 0:
        n_actions = venv.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n_actions), algo.action_noise_sigma * np.ones(n_actions))
    try:
        model = ALGORITHM_CLASSES[algo.name](
            policy,
            venv,
            seed=seed,
            device=device,
            verbose=0,
            tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
            policy_kwargs=network_kwargs,
            **kwargs,
        )
    except TypeError as err:
        raise ValueError(f"algo '{algo.name}': bad hyperparameter ({err})") from None
    return log_in_memory(model)


@dataclass(frozen=True)
class LinearSchedule:
    """``start`` decaying linearly to 0 over the run (SB3 calls it with the progress remaining, 1 -> 0): RL
    Zoo's ``"lin_<value>"`` for ``learning_rate`` and ``clip_range``."""

    start: float

    def __call__(self, progress_remaining: float) -> float:
        # PPO finishes the rollout that crosses the run's end: progress goes below 0 there (a negative rate)
        return self.start * max(progress_remaining, 0.0)


def wrap_normalize(venv: VecEnv, algo: AlgoConfig, stats_path: Path | None = None) -> VecEnv:
    """Adds ``VecNormalize`` when the algorithm wants it, loading statistics from ``stats_path`` if given."""
    if not algo.normalize:
        return venv
    if stats_path is not None and stats_path.is_file():
        vecnorm = VecNormalize.load(str(stats_path), venv)
        vecnorm.training = True
        return vecnorm
    return VecNormalize(venv, norm_obs=True, norm_reward=algo.normalize_reward, gamma=algo.hyperparams.get("gamma", 0.99))


def run_metadata(config: TrainConfig) -> dict[str, Any]:
    """The fields a training run records in ``metadata.json``."""
    return {
        "kind": "train",
        "env": config.env.to_record(),
        "algo": config.algo.name,
        "algo_config": {**asdict(config.algo), "network": asdict(config.algo.network)},
        "policy": asdict(config.policy),
        "seed": config.seed,
        "timesteps": config.timesteps,
        "train_episode_steps": config.train_episode_steps,
        "normalize": config.algo.normalize,
        "randomization": config.randomization.to_dict(),
        "target": config.target.to_dict(),
        "init": None if config.init is None else str(config.init),
        "select_every": config.select_every,
    }


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False,
          callbacks: list[Any] | None = None) -> BaseAlgorithm:
    """Trains (or resumes) a policy into ``run_dir``; returns the trained model.

    On completion the folder holds ``model.zip``, ``vecnormalize.pkl`` (if normalizing) and
    ``metadata.json`` with ``complete: true``. A run interrupted mid-way continues from its latest
    checkpoint with ``resume=True``, keeping the timestep count.
    """
    run_dir = Path(run_dir)
    check_train_config(config)
    validate_dynamics(config.env, config.randomization, config.target, *config.eval_targets)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    checkpoint = latest_checkpoint(run_dir) if resume else None
    resumed_at = 0 if checkpoint is None else checkpoint_steps(checkpoint)
    record = load_metadata(run_dir) if resume and (run_dir / METADATA_FILE).is_file() else {}
    done = verified_final_steps(run_dir, record) if record else None
    if record and done is None and (problem := final_files_problem(run_dir, record)):
        print(f"not continuing from the final files: {problem}")
    if done is not None:
        if record.get("complete") and done >= config.timesteps:
            return ALGORITHM_CLASSES[config.algo.name].load(run_dir / MODEL_FILE, device=config.device)
        if resumed_at < done:
            # The final files of a completed run (or of one whose extension was killed) hold more steps than any
            # checkpoint (checkpoint_every=0): continue from its final model and statistics (an off-policy
            # replay buffer was not kept: it is refilled first).
            checkpoint, resumed_at = run_dir, done

    init = check_init(config) if checkpoint is None else None  # a checkpoint holds the run's own state
    warmup = 0  # steps a continued off-policy actor collects into its fresh replay buffer before updates
    run_dir.mkdir(parents=True, exist_ok=True)
    privileged = config.policy.privileged != "none"
    seed = segment_seed(config.seed, resumed_at)
    venv = make_vec_env(config.env, config.algo.n_envs, seed, config.randomization, config.target,
                        config.algo.vec_env, privileged=privileged, privileged_noise=config.policy.privileged_noise,
                        episode_steps=config.train_episode_steps)
    venv = wrap_normalize(venv, config.algo, checkpoint / VECNORMALIZE_FILE if checkpoint else
                          (init.normalizer_file if init else None))
    names = privileged_names_of(config) if privileged else []
    if checkpoint is not None:
        model = ALGORITHM_CLASSES[config.algo.name].load(
            checkpoint / "model.zip", env=venv, device=config.device, tensorboard_log=str(run_dir / "tb"))
        if isinstance(model, OffPolicyAlgorithm) and (checkpoint / "replay_buffer.pkl").is_file():
            model.load_replay_buffer(checkpoint / "replay_buffer.pkl")
        elif isinstance(model, OffPolicyAlgorithm):
            # No replay buffer was kept: refill it for learning_starts steps before updating again, as at the
            # start (without this, updates would sample batches from a handful of transitions).
            model.learning_starts = int(model.num_timesteps) + int(config.algo.hyperparams.get("learning_starts", 100))
        model.set_random_seed(seed)  # loading reseeds with the run's seed: this segment draws its own stream
    elif init is not None:
        model, warmup = continued_model(init, config, venv, run_dir / "tb")
    else:
        critic_only = len(names) if config.policy.privileged == "critic" else 0
        model = build_model(config.algo, venv, config.seed, run_dir / "tb", config.device, critic_only_dim=critic_only)
    adr = adr_state(config, checkpoint)
    metadata = run_metadata(config)
    metadata["policy"]["privileged_names"] = names
    # wall time and blow-ups of earlier segments (recorded at their checkpoints): a resumed run sums them
    if done is not None and record.get(FINAL_FILES_KEY) is None and record.get(PENDING_FINAL_FILES_KEY) is None:
        # a run completed before final files were recorded: record them before it is marked incomplete, or an
        # extension killed before its first checkpoint could no longer verify them and would start over
        metadata[FINAL_FILES_KEY] = final_files_record(run_dir, done)
    previous = update_metadata(run_dir, **metadata, complete=False, timesteps_done=int(model.num_timesteps))
    earlier_wall, earlier_blowups = float(previous.get("wall_time_s", 0.0)), int(previous.get("physics_blowups", 0))

    logger = DynamicsLogger(tuple(_randomized_names(venv)))
    start = time.perf_counter()

    def progress() -> dict[str, Any]:
        """What metadata.json records of the run so far (every segment of a resumed run summed), with the
        latest training episodes' mean return and length."""
        return {"timesteps_done": int(model.num_timesteps), "physics_blowups": earlier_blowups + logger.blowups,
                "wall_time_s": round(earlier_wall + time.perf_counter() - start, 2),
                **({"recent_train_episodes": recent} if (recent := recent_train_episodes(model)) else {}),
                **({"adr": adr.to_dict()} if adr else {})}

    def record_progress() -> None:
        record = progress()
        update_metadata(run_dir, **record)
        if not config.progress_bar:  # a run in the background (a log file): one line per checkpoint instead
            print(progress_line(record, config.timesteps, logger.steps_per_second), flush=True)

    cbs: list[Any] = [logger, *(callbacks or [])]
    keeper = selection_keeper(config, checkpoint)
    extras: list[Callable[[], dict[str, Any]]] = []
    if adr is not None:
        cbs.append(AdrUpdater(adr, venv))
        extras.append(lambda: {ADR_FILE: adr.to_dict()})
    if keeper is not None:
        keeper.init_callback(model)  # its model even when no training is left (a run killed at its last checkpoint)
        cbs.append(keeper)
        extras.append(lambda: {SELECTION_FILE: keeper.save})

    def extra() -> dict[str, Any]:
        return {name: data for files in extras for name, data in files().items()}
    if config.checkpoint_every > 0:
        cbs.append(CheckpointEvery(run_dir, config.checkpoint_every, on_save=record_progress, extra=extra))
    remaining = config.timesteps - model.num_timesteps
    warmup = min(warmup, remaining - 1)
    if remaining > 0:
        try:
            with sigterm_interrupts():
                if warmup > 0:
                    collect_without_updates(model, warmup, CallbackList([logger, *(callbacks or [])]),
                                            reset_num_timesteps=True)
                model.learn(total_timesteps=config.timesteps - model.num_timesteps, callback=CallbackList(cbs),
                            reset_num_timesteps=checkpoint is None and warmup <= 0, tb_log_name="train",
                            progress_bar=config.progress_bar)
        except KeyboardInterrupt:
            saved = save_checkpoint(model, run_dir, extra())
            record_progress()
            print(f"stopped at {model.num_timesteps:,} of {config.timesteps:,} steps; checkpoint saved: {saved}", flush=True)
            raise
    final, fps = progress(), logger.steps_per_second
    if not config.progress_bar and remaining > 0:
        print(progress_line(final, config.timesteps, fps), flush=True)
    if keeper is not None:
        keeper.consider()  # the end model is a candidate too
    if config.checkpoint_every > 0 or keeper is not None:  # the end state too, so that extending the run continues
        # it exactly (with a selection, the final files hold the kept policy, not the end state)
        save_checkpoint(model, run_dir, extra())
    if keeper is not None:
        kept = keeper.finish()  # the final files hold the best-scoring policy; the end checkpoint the last one
        final["selection"] = keeper.record()
        if not config.progress_bar:
            print(f"kept the policy of step {kept} (return {keeper.scores[kept]:.1f} under the run's randomization; "
                  f"the last scored {keeper.scores[max(keeper.scores)]:.1f})", flush=True)
    update_metadata(run_dir, complete=True, **final, final_files=save_final(model, run_dir),
                    **{PENDING_FINAL_FILES_KEY: None},
                    **({"train_fps": round(fps, 1)} if fps is not None else {}))
    if adr is not None:
        from sim2real.evaluation.plots import adr_ranges_plot

        adr_ranges_plot(adr, run_dir / "adr_ranges.png")
    venv.close()
    return model


def check_init(config: TrainConfig) -> RunInfo | None:
    """The run folder ``config.init`` (None without one), checked to be one this run can continue: finished, of
    the same robot (observation history included), algorithm and normalization, with no privileged observation
    (its size follows the randomization, which this run changes).

    Raises:
        ValueError: naming the folder and what differs.
    """
    if config.init is None:
        return None
    info = read_run_info(config.init)
    where = f"init={config.init}"
    if info.complete is not True or info.algo_config is None:
        raise ValueError(f"{where}: not a finished trained run (complete: {info.complete}, algorithm config: "
                         f"{'none' if info.algo_config is None else 'recorded'}); give a finished training or transfer run")
    if info.env != config.env:
        raise ValueError(f"{where} is a policy for {info.env.to_record()}, not for this run's {config.env.to_record()}")
    if info.algo != config.algo.name:
        raise ValueError(f"{where} was trained with {info.algo}; this run's algo={config.algo.name} cannot continue it")
    if (info.normalizer_file is not None) != config.algo.normalize:
        raise ValueError(f"{where} {'has' if info.normalizer_file else 'has no'} observation statistics, and this run's "
                         f"algo.normalize={config.algo.normalize}")
    if info.privileged != "none" or config.policy.privileged != "none":
        raise ValueError(f"{where}: privileged={info.privileged} (this run: {config.policy.privileged}); a privileged "
                         f"observation holds the randomized parameters, so a run under another randomization cannot "
                         f"continue it: continue memoryless, history or recurrent policies")
    return info


def continued_model(init: RunInfo, config: TrainConfig, venv: VecEnv,
                    tensorboard_dir: Path) -> tuple[BaseAlgorithm, int]:
    """The policy of the finished run ``init`` (weights, optimizer state, hyperparameters) on ``venv``, its step
    count restarted at 0 (this run's schedules run over its own steps), and the steps it should collect before
    its first update: an off-policy model's ``learning_starts``, which its own actor now collects
    (:func:`collect_without_updates`; SB3 acts uniformly at random before ``learning_starts``), 0 on-policy."""
    model = ALGORITHM_CLASSES[config.algo.name].load(init.model_file, env=venv, device=config.device,
                                                     tensorboard_log=str(tensorboard_dir))
    model.num_timesteps = 0
    warmup = 0
    if isinstance(model, OffPolicyAlgorithm):
        warmup, model.learning_starts = int(model.learning_starts), 0
    model.set_random_seed(config.seed)
    return model, warmup


def collect_without_updates(model: OffPolicyAlgorithm, steps: int, callback: Any = None,
                            reset_num_timesteps: bool = False) -> None:
    """Fills the replay buffer with ``steps`` steps of the model's own (exploration-noised) actions, taking no
    gradient step: a trained actor's warm-up on a fresh buffer (SB3's ``learning_starts`` would act uniformly at
    random instead). The model's ``learning_starts`` must not exceed its step count, or SB3 acts at random."""
    gradient_steps = model.gradient_steps
    model.gradient_steps = 0
    try:
        model.learn(total_timesteps=steps, callback=callback, reset_num_timesteps=reset_num_timesteps)
    finally:
        model.gradient_steps = gradient_steps


def adr_state(config: TrainConfig, checkpoint: Path | None) -> AdrState | None:
    """The ADR state of a run with an ``adr`` randomization: the checkpoint's when resuming, else the initial one.
    The thresholds are returns of the robot's registered episode: they scale with the share of it that a training
    episode lasts (``train_episode_steps``, else an overridden ``env.max_episode_steps``; boundary episodes played
    whole last the latter)."""
    if config.randomization.adr is None:
        return None
    cut = None if whole_boundary_episodes(config.randomization.adr) else config.train_episode_steps
    played = cut or episode_limit(config.env)
    fraction = played / episode_limit(replace(config.env, max_episode_steps=None))
    state = AdrState(config.randomization.adr, config.env.name, episode_fraction=fraction)
    if checkpoint is not None and (checkpoint / ADR_FILE).is_file():
        state.load_dict(read_json(checkpoint / ADR_FILE))
    elif checkpoint is not None and (checkpoint / METADATA_FILE).is_file() and load_metadata(checkpoint).get("adr"):
        state.load_dict(load_metadata(checkpoint)["adr"])  # a finished run's folder: its metadata holds the end state
    return state


SELECTION_SEED = 20_000
"""Reset seed of the first episode scoring a run's policy for ``select_every`` (plus the run's seed)."""


def selection_keeper(config: TrainConfig, checkpoint: Path | None) -> KeepBest | None:
    """The :class:`KeepBest` of a run with ``select_every`` (None without): it scores on the run's own
    randomization and continues the checkpoint's selection when resuming."""
    if not config.select_every:
        return None
    # reset seeds apart from the final evaluation's (10_000 + seed): the kept policy is not scored on the episodes
    # it was picked on
    score = SimulationScore(config.env, config.randomization, config.select_episodes, seed=SELECTION_SEED + config.seed,
                            target=config.target)
    keeper = KeepBest(score, config.select_every, count_from=0)
    if checkpoint is not None and (checkpoint / SELECTION_FILE).is_file():
        keeper.load(checkpoint / SELECTION_FILE)
    return keeper


def privileged_names_of(config: TrainConfig) -> list[str]:
    """Names of the privileged observation's entries for a run's env and randomization."""
    probe = make_env(config.env, randomization=config.randomization, target=config.target, privileged=True)
    try:
        return privileged_names(probe)
    finally:
        probe.close()


def save_final(model: BaseAlgorithm, run_dir: Path) -> dict[str, Any]:
    """Writes ``model.zip`` and ``vecnormalize.pkl`` into ``run_dir`` atomically; returns their final-files record.

    Both are written under temporary names and recorded in ``metadata.json`` as the pending pair before either
    is renamed into place, so a kill before the completion is recorded leaves a pair that resuming can verify
    and continue from (not an unverifiable one, which without a checkpoint meant training from the start).
    """
    venv = model.get_env()
    with contextlib.ExitStack() as renames:  # each temporary is renamed onto its file when the block succeeds
        files = {MODEL_FILE: renames.enter_context(atomic_path(run_dir / MODEL_FILE))}
        model.save(files[MODEL_FILE])
        if isinstance(venv, VecNormalize):
            files[VECNORMALIZE_FILE] = renames.enter_context(atomic_path(run_dir / VECNORMALIZE_FILE))
            venv.save(str(files[VECNORMALIZE_FILE]))
        record = final_files_record(run_dir, model.num_timesteps, files)
        update_metadata(run_dir, **{PENDING_FINAL_FILES_KEY: record})
    return record


def _randomized_names(venv: VecEnv) -> list[str]:
    from sim2real.randomization.wrapper import DomainRandomization

    base = venv.venv if isinstance(venv, VecNormalize) else venv
    if not isinstance(base, DummyVecEnv):
        return []
    env = base.envs[0]
    while isinstance(env, gym.Wrapper):
        if isinstance(env, DomainRandomization):
            return env.dynamics.randomized_names
        env = env.env
    return []
