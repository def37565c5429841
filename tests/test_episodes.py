"""The one episode loop: a cut from max_episode_steps ends an episode without marking it truncated."""

from __future__ import annotations

import numpy as np

from sim2real.episodes import run_steps
from sim2real.randomization import make_env


def test_a_cut_ends_the_episode_and_says_so() -> None:
    env = make_env("reacher")  # never terminates before its 50-step limit
    steps = list(run_steps(env, lambda _obs: np.zeros(2), 0, episodes=2, max_episode_steps=4))
    env.close()
    assert len(steps) == 8 and [s.episode for s in steps] == [0] * 4 + [1] * 4
    last = [s for s in steps if s.done]
    assert [s.episode for s in last] == [0, 1] and all(s.cut and not s.truncated for s in last)
    assert not any(s.cut for s in steps if not s.done)
