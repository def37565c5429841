"""SB3 callbacks: resumable checkpoints, logging of sampled dynamics and physics blow-ups, and the
automatic domain randomization updates."""

from __future__ import annotations

import copy
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sim2real.envs.registry import EnvSpec
from sim2real.randomization.adr import BOUNDARY_INFO_KEY, SIDES, AdrState
from sim2real.randomization.spec import DynamicsSpec
from sim2real.runs import read_json, write_json_atomic

CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.json"
ADR_FILE = "adr.json"
SELECTION_FILE = "selection.pt"
LOG_ENT_COEF = "log_ent_coef"  # the key of SAC's entropy weight among KeepBest's kept parameters


def save_checkpoint(model, run_dir: Path, extra: Mapping[str, Any] | None = None) -> Path:  # type: ignore[no-untyped-def]
    """Saves model, VecNormalize statistics, (off-policy) replay buffer and ``extra`` (``{file name: JSON
    data}``, e.g. the ADR state, or ``{file name: writer}``, a function that writes the file at the path it is
    given) as ``checkpoints/step_N``.

    The folder is written under a temporary name and renamed, then ``latest.json`` is pointed at it
    atomically, then older checkpoints are removed: an interruption at any moment leaves a valid one.
    """
    root = run_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{model.num_timesteps}"
    final = root / name
    if final.exists():
        if latest_checkpoint(run_dir) == final:
            return final  # this state is already the latest checkpoint
        shutil.rmtree(final)  # left by an earlier segment (a crash before latest.json moved): not this state
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / "model.zip")
    venv = model.get_env()
    if isinstance(venv, VecNormalize):
        venv.save(str(tmp / "vecnormalize.pkl"))
    if isinstance(model, OffPolicyAlgorithm):
        model.save_replay_buffer(tmp / "replay_buffer.pkl")
    for file_name, data in (extra or {}).items():
        if callable(data):
            data(tmp / file_name)
        else:
            write_json_atomic(tmp / file_name, data)
    tmp.rename(final)
    write_json_atomic(root / LATEST_FILE, {"checkpoint": name, "timesteps": int(model.num_timesteps)})
    for old in root.glob("step_*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_steps(checkpoint: Path) -> int:
    """The environment steps a checkpoint folder holds (``latest.json`` records them; else its name, ``step_N``)."""
    pointer = checkpoint.parent / LATEST_FILE
    record = read_json(pointer) if pointer.is_file() else {}
    if record.get("checkpoint") == checkpoint.name and isinstance(record.get("timesteps"), int):
        return int(record["timesteps"])
    digits = checkpoint.name.removeprefix("step_")
    if not digits.isdigit():
        raise ValueError(f"checkpoint '{checkpoint}': cannot tell how many steps it holds (no step_N name, "
                         f"no record in {LATEST_FILE})")
    return int(digits)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    pointer = run_dir / CHECKPOINT_DIR / LATEST_FILE
    if not pointer.is_file():
        return None
    path = run_dir / CHECKPOINT_DIR / read_json(pointer)["checkpoint"]
    return path if (path / "model.zip").is_file() else None


RECENT_EPISODES = 10
"""Training episodes whose mean return and length a run's progress reports."""


def recent_train_episodes(model) -> dict[str, float] | None:  # type: ignore[no-untyped-def]
    """The mean return and length of the last ``RECENT_EPISODES`` finished training episodes (SB3's episode
    buffer, filled by the envs' ``Monitor``), with how many there were; None before the first one ends.
    With ``train_episode_steps`` these are the cut episodes, not whole ones (but for ADR boundary evaluations
    played whole)."""
    episodes = list(getattr(model, "ep_info_buffer", None) or [])[-RECENT_EPISODES:]
    if not episodes:
        return None
    return {"episodes": len(episodes), "return_mean": round(float(np.mean([e["r"] for e in episodes])), 2),
            "length_mean": round(float(np.mean([e["l"] for e in episodes])), 1)}


def progress_line(record: Mapping[str, Any], timesteps: int, fps: float | None) -> str:
    """One line of a run's progress (its ``metadata.json`` fields): steps, speed, the recent training episodes."""
    line = f"{record['timesteps_done']}/{timesteps} steps, {record['wall_time_s'] / 60:.1f} min"
    if fps:
        line += f", {fps:.0f} steps/s"
    recent = record.get("recent_train_episodes")
    if recent:
        line += (f"; last {recent['episodes']} training episodes: return {recent['return_mean']:.1f}, "
                 f"length {recent['length_mean']:.0f}")
    return line


class StepsSinceStart(BaseCallback):
    """A callback that counts the steps of one training from where it started (a continued model keeps its
    step count) and may follow several ``learn`` calls of it (a warm-up, then the updates): it counts from the
    first."""

    def __init__(self) -> None:
        super().__init__()
        self._start: tuple[float, int] | None = None  # wall clock and model steps at the first start

    def _on_training_start(self) -> None:
        if self._start is None:
            self._start = (time.perf_counter(), int(self.model.num_timesteps))

    def _on_step(self) -> bool:
        return True

    @property
    def done(self) -> int:
        """Steps taken since this training started."""
        return 0 if self._start is None else int(self.model.num_timesteps) - self._start[1]

    @property
    def elapsed(self) -> float:
        """Seconds since this training started."""
        return 0.0 if self._start is None else time.perf_counter() - self._start[0]


class ProgressPrinter(StepsSinceStart):
    """Hands ``log`` one :func:`progress_line` every ``every`` steps of a training of ``timesteps`` steps that
    writes no checkpoints to report at (a transfer method's), counted from where it started, and one at its end.
    """

    def __init__(self, log: Callable[[str], None], label: str, timesteps: int, every: int) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every={every}: progress is printed every >= 1 steps")
        self.log = log
        self.label = label
        self.timesteps = timesteps
        self.every = every
        self._next = every

    def _on_rollout_start(self) -> None:
        if self.done >= self._next:
            self.print_line()
            self._next = (self.done // self.every + 1) * self.every

    def _on_training_end(self) -> None:
        if self.done >= self.timesteps:
            self.print_line()
            self._next = self.done + self.every  # a later learn() of the same training prints nothing twice

    def print_line(self) -> None:
        """Logs where the training stands."""
        elapsed = self.elapsed
        record = {"timesteps_done": self.done, "wall_time_s": elapsed,
                  **({"recent_train_episodes": recent} if (recent := recent_train_episodes(self.model)) else {})}
        self.log(f"{self.label}: {progress_line(record, self.timesteps, self.done / elapsed if elapsed > 0 else None)}")


class KeepBest(StepsSinceStart):
    """Scores the model with ``score`` every ``every`` steps of its training (counted from where it started; 0:
    only the end model, scored by :meth:`finish`) and keeps a copy of the best-scoring policy: its network
    parameters (with SAC's entropy weight) and observation statistics. :meth:`finish` scores the end model and
    puts the best copy back (optimizer states stay the end model's).

    A deep-RL learning curve swings between nearby checkpoints (TD3 on a slippery Hopper by more than a third
    of its return 20k steps apart), so the last model is a draw from that swing; a score that costs nothing on
    the robot (returns in a calibrated simulation) picks among the checkpoints instead. Scoring runs when a
    rollout starts, after the previous rollout's update, as :class:`CheckpointEvery` saves.
    """

    def __init__(self, score: Callable[[BaseAlgorithm], float], every: int = 0, count_from: int | None = None) -> None:
        """``count_from``: the model step count that is step 0 of the scored points (a run's own count, which
        a resumed segment continues); None: where this training started."""
        super().__init__()
        if every < 0:
            raise ValueError(f"every={every}: give the steps between scorings (> 0), or 0 to score the end model only")
        self.score = score
        self.every = every
        self.count_from = count_from
        self.scores: dict[int, float] = {}
        """Each scored point's score, by its steps (see ``count_from``)."""
        self._best: tuple[int, dict[str, Any], dict[str, Any]] | None = None  # steps, parameters, statistics
        self._next = every

    def _on_training_start(self) -> None:
        super()._on_training_start()
        if self.every:
            if self.done and self.done % self.every == 0 and self.done not in self.scores:
                self.consider()  # a resumed run whose segment stopped while scoring this point
            self._next = (self.done // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self.every and self.done >= self._next:
            self.consider()
            self._next = (self.done // self.every + 1) * self.every

    @property
    def done(self) -> int:
        """Steps of the scored points' count (see ``count_from``)."""
        if self.count_from is None:
            return super().done
        return int(self.model.num_timesteps) - self.count_from

    def save(self, path: Path) -> None:
        """Writes the scores and the best point's policy (parameters, observation statistics) to ``path``, for
        a resumed training to continue the selection (:meth:`load`)."""
        torch.save({"scores": self.scores, "best": self._best}, path)

    def load(self, path: Path) -> None:
        """Continues the selection saved by :meth:`save` (the toolkit's own file: it holds pickled statistics)."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.scores, self._best = dict(state["scores"]), state["best"]

    def record(self) -> dict[str, Any]:
        """The selection as JSON data: the kept point's steps and every scored point's score."""
        return {"every": self.every, "kept_step": self.best_step,
                "returns": {str(k): round(v, 2) for k, v in sorted(self.scores.items())}}

    @property
    def best_step(self) -> int | None:
        """Steps of the best-scoring point so far, counted as :attr:`done` is (None before any scoring)."""
        return None if self._best is None else self._best[0]

    def consider(self) -> None:
        """Scores the model as it is now, keeping a copy if it beats every point scored so far."""
        if self.done in self.scores:
            return
        self.scores[self.done] = score = float(self.score(self.model))
        if self._best is None or score > self.scores[self._best[0]]:
            parameters = {k: v.detach().clone() for k, v in self.model.policy.state_dict().items()}
            if isinstance(getattr(self.model, "log_ent_coef", None), torch.Tensor):  # SAC's learned entropy weight
                parameters[LOG_ENT_COEF] = self.model.log_ent_coef.detach().clone()
            vecnorm = self.model.get_vec_normalize_env()
            statistics = {} if vecnorm is None else {"obs_rms": copy.deepcopy(vecnorm.obs_rms),
                                                     "ret_rms": copy.deepcopy(vecnorm.ret_rms)}
            self._best = (self.done, parameters, statistics)

    def finish(self) -> int:
        """Scores the end model (unless already scored), puts the best-scoring point's policy and observation
        statistics back into the model (the optimizer state stays the end model's), and returns its steps."""
        self.consider()
        assert self._best is not None
        steps, parameters, statistics = self._best
        parameters = dict(parameters)
        if LOG_ENT_COEF in parameters:
            with torch.no_grad():
                self.model.log_ent_coef.copy_(parameters.pop(LOG_ENT_COEF))
        self.model.policy.load_state_dict(parameters)
        vecnorm = self.model.get_vec_normalize_env()
        for name, value in statistics.items():
            setattr(vecnorm, name, copy.deepcopy(value))
        return steps


def deterministic_act(model: BaseAlgorithm) -> Callable[[np.ndarray], np.ndarray]:
    """Maps one raw observation to the model's deterministic action (through its VecNormalize statistics, frozen
    as they are at each call)."""
    vecnorm = model.get_vec_normalize_env()

    def act(obs: np.ndarray) -> np.ndarray:
        normalized = vecnorm.normalize_obs(obs) if vecnorm is not None else obs
        return model.predict(normalized, deterministic=True)[0]

    return act


class SimulationScore:
    """A model's mean deterministic return on the same ``episodes`` episodes (reset seeds ``seed``, ``seed + 1``,
    ...) of ``env`` under ``randomization`` (a calibrated simulation: free) over ``target`` (None: nominal),
    counting the simulation steps that all scorings took. For memoryless and history policies (a recurrent or
    privileged policy needs more than the observation)."""

    def __init__(self, env: EnvSpec, randomization: DynamicsSpec, episodes: int, seed: int,
                 target: DynamicsSpec | None = None) -> None:
        self.env, self.randomization, self.episodes, self.seed = env, randomization, episodes, seed
        self.target = target
        self.steps = 0

    def __call__(self, model: BaseAlgorithm) -> float:
        from sim2real.evaluation.rollout import rollout_returns  # the evaluation package is heavy to import

        result = rollout_returns(deterministic_act(model), self.env, self.episodes, seed=self.seed,
                                 target=self.target, randomization=self.randomization)
        self.steps += result.steps
        return float(np.mean(result.returns))


class CheckpointEvery(BaseCallback):
    """Saves a resumable checkpoint every ``every`` environment steps (with ``extra()``'s files, if given),
    then calls ``on_save`` (if given), e.g. to record progress that a killed run must not lose (wall time,
    blow-ups).

    It saves when a rollout starts, once ``every`` more steps are done: SB3 updates the model after a rollout
    and stores an off-policy step's transition after the step's callbacks, so a save from a step callback
    held the model before its last update (a PPO checkpoint lost the whole last rollout's update) and a
    replay buffer one transition short.
    """

    def __init__(self, run_dir: Path, every: int, on_save: Callable[[], None] | None = None,
                 extra: Callable[[], Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.every = every
        self.on_save = on_save
        self.extra = extra
        self._next = every

    def _init_callback(self) -> None:
        self._next = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps >= self._next:
            save_checkpoint(self.model, self.run_dir, self.extra() if self.extra else None)
            if self.on_save is not None:
                self.on_save()
            self._next = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        return True


class DynamicsLogger(BaseCallback):
    """Logs, per rollout, the mean sampled value of each randomized parameter (``dynamics/<name>``),
    episodes cut by physics blow-ups (``physics/blowups``) and steps per second (``time/sps``)."""

    def __init__(self, randomized: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.randomized = set(randomized)
        self.blowups = 0
        self._sums: dict[str, float] = defaultdict(float)
        self._episodes = 0
        self._start = time.perf_counter()
        self._start_steps = 0

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._start_steps = self.model.num_timesteps

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if info.get("physics_unstable"):
                self.blowups += 1
            dynamics = info.get("dynamics")
            if dynamics is not None and "episode" in info:
                self._episodes += 1
                for name in self.randomized:
                    self._sums[name] += dynamics[name]
        return True

    def _on_rollout_end(self) -> None:
        if self._episodes:
            for name, total in self._sums.items():
                self.logger.record(f"dynamics/{name}", total / self._episodes)
        self.logger.record("physics/blowups", self.blowups)
        elapsed = time.perf_counter() - self._start
        if elapsed > 0:
            self.logger.record("time/sps", (self.model.num_timesteps - self._start_steps) / elapsed)
        self._sums.clear()
        self._episodes = 0

    @property
    def steps_per_second(self) -> float | None:
        """Environment steps per second since training started; None when no training ran (a resumed run
        that had already reached its steps)."""
        if getattr(self, "model", None) is None:
            return None
        elapsed = time.perf_counter() - self._start
        return float(np.float64(self.model.num_timesteps - self._start_steps) / max(elapsed, 1e-9))


class AdrUpdater(BaseCallback):
    """Automatic domain randomization's outer loop: feeds each boundary episode's return (Monitor's
    ``info["episode"]["r"]``, the unnormalized return) to the :class:`AdrState`, and after every range change
    sends the new ranges to every env (``env_method``, so in-process and subprocess envs alike). Logs the
    ranges to TensorBoard (``adr/<dimension>_low`` and ``_high``) at the end of every rollout, with the mean
    return of the last full buffer at each bound (``adr/<dimension>_low_return``, ``_high_return``).

    The ranges reach ``venv`` (the envs the model trains on) already at construction: ``model.learn`` resets
    the envs before it starts callbacks, and a resumed run's first episodes must sample its saved ranges.
    """

    def __init__(self, state: AdrState, venv: VecEnv) -> None:
        super().__init__()
        self.state = state
        self.venv = venv
        self.broadcast()

    def broadcast(self) -> None:
        """Sends the current ranges to the training envs."""
        self.venv.env_method("set_adr_ranges", self.state.low.tolist(), self.state.high.tolist())

    def _on_step(self) -> bool:
        changed = False
        for info in self.locals.get("infos", ()):
            boundary = info.get(BOUNDARY_INFO_KEY)
            if boundary is not None and "episode" in info:
                dimension, side, value = boundary
                changed |= self.state.record(dimension, side, info["episode"]["r"], self.model.num_timesteps, value)
        if changed:
            self.broadcast()
        return True

    def _on_rollout_end(self) -> None:
        for name, low, high, performance in zip(self.state.names, self.state.low, self.state.high, self.state.performance):
            for side, value, mean in zip(SIDES, (low, high), performance):
                self.logger.record(f"adr/{name}_{side}", float(value))
                if mean is not None:
                    self.logger.record(f"adr/{name}_{side}_return", mean)
