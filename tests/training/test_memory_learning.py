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
    config = train_config_from_dict({
        "env": {"name": "inverted_pendulum"}, "algo": load_preset("algo", "ppo"), "policy": {"history": history},
        "randomization": load_preset("randomization", "latency3"), "target": load_preset("target", "nominal"),
        "timesteps": 25_000, "seed": 1, "checkpoint_every": 0, "eval_episodes": 0, "progress_bar": False})
    train(config, run_dir)
    return Policy.load(run_dir)


@pytest.mark.slow
def test_history_beats_memoryless_on_a_latency_target(tmp_path: Path) -> None:
    """~25k steps each (about 10 s on a quiet 2-core machine; measured 1000 vs 12 with this seed)."""
    delayed = target_spec("delayed")
    scores = {}
    for history in (0, 4):
        policy = _train(tmp_path / f"history_{history}", history)
        scores[history] = rollout_returns(policy, policy.info.env, 5, seed=100, target=delayed).returns.mean()
    assert scores[4] >= 500, scores        # balances most of the 1000 steps despite the delay
    assert scores[0] < 200, scores         # a random policy's level: it cannot tell the delay
