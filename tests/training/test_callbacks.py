"""Training callbacks: keeping the best-scoring checkpoint of a training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sim2real.training import train
from sim2real.training.callbacks import KeepBest
from tests.conftest import tiny_train_config


class _Scripted:
    """Scores in a given order, recording the policy parameters and observation means it was shown."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)
        self.seen: list[tuple[dict, list]] = []

    def __call__(self, model) -> float:  # noqa: ANN001
        parameters = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}
        self.seen.append((parameters, model.get_vec_normalize_env().obs_rms.mean.copy()))
        return self.scores[len(self.seen) - 1]


def test_keep_best_puts_the_best_scoring_checkpoint_back(tmp_path: Path) -> None:
    score = _Scripted([1.0, 7.0, 3.0, 2.0])  # the second scoring (after 512 steps) is best
    keeper = KeepBest(score, every=256)
    model = train(tiny_train_config("ppo", timesteps=1024, n_steps=64), tmp_path / "run", callbacks=[keeper])
    assert sorted(keeper.scores) == [256, 512, 768] and keeper.best_step == 512  # rollouts of 4 x 64 steps
    end = {k: v.clone() for k, v in model.policy.state_dict().items()}
    assert keeper.finish() == 512 and keeper.scores[1024] == 2.0  # the end model is scored too
    best, best_mean = score.seen[1]
    restored = model.policy.state_dict()
    assert all(torch.equal(restored[k], best[k]) for k in best)
    assert any(not torch.equal(end[k], best[k]) for k in best)  # training went on after the kept point
    assert (model.get_vec_normalize_env().obs_rms.mean == best_mean).all()


def test_keep_best_scores_only_the_end_model_without_a_period(tmp_path: Path) -> None:
    score = _Scripted([4.0])
    keeper = KeepBest(score)
    train(tiny_train_config("ppo", timesteps=512, n_steps=64), tmp_path / "run", callbacks=[keeper])
    assert keeper.scores == {} and keeper.finish() == 512 and keeper.scores == {512: 4.0}
    with pytest.raises(ValueError, match="every=-1"):
        KeepBest(score, every=-1)
