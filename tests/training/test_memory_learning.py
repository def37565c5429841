"""Learning with memory: under a latency randomized per episode, a history policy learns to balance on a
2-step latency (``delayed``), where the memoryless policy trained the same way fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim2real.evaluation.rollout import rollout_returns
from sim2real.policies import Policy
from sim2real.presets import load_preset, target_spec
from sim2real.training import train, train_config_from_dict


def _train(run_dir: Path, history: int) -> Policy:
    # 16 envs: each update sees 512 steps, not 128. With the preset's 4 envs, 25k-60k steps balanced on `delayed`
    # in about half the seeds (the runs collapse or stop at latency 0-1); with 16 envs, 60k steps did in 6 of 6.
    config = train_config_from_dict({
        "env": {"name": "inverted_pendulum"}, "algo": {**load_preset("algo", "ppo"), "n_envs": 16},
        "policy": {"history": history},
        "randomization": load_preset("randomization", "latency3"), "target": load_preset("target", "nominal"),
        "timesteps": 60_000, "seed": 1, "checkpoint_every": 0, "eval_episodes": 0, "progress_bar": False})
    train(config, run_dir)
    return Policy.load(run_dir)


@pytest.mark.slow
def test_history_beats_memoryless_on_a_latency_target(tmp_path: Path) -> None:
    """60k steps each (about 30 s each on one core; measured 1000 vs 4 with this seed, 1000 in seeds 0-5)."""
    delayed = target_spec("delayed")
    scores = {}
    for history in (0, 4):
        policy = _train(tmp_path / f"history_{history}", history)
        scores[history] = rollout_returns(policy, policy.info.env, 5, seed=100, target=delayed).returns.mean()
    assert scores[4] >= 500, scores        # balances most of the 1000 steps despite the delay
    assert scores[0] < 200, scores         # a random policy's level: it cannot tell the delay
