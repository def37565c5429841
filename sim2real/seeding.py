"""Seeding helpers: global seeding for scripts, child seeds for components."""

from __future__ import annotations

import random
import zlib

import numpy as np


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy's legacy global RNG and torch. Call from scripts only."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def child_seeds(seed: int, n: int) -> list[int]:
    """Returns ``n`` independent 32-bit seeds derived from ``seed`` (``SeedSequence.spawn``)."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(child.generate_state(1)[0]) for child in children]


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one named use of ``seed``: the same (seed, name) draws the same numbers, and two names
    never share a stream (``SeedSequence`` keyed by the name's CRC-32). Two components handed the same seed
    (the measurement's excitation noise and the identification's hold-out split, say) then stay independent,
    which ``SeedSequence(seed).spawn(k)`` in each does not guarantee: its first child is the same for every k."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def segment_seed(seed: int, steps: int) -> int:
    """The seed of a run's segment that resumes after ``steps`` environment steps: its own stream (a resumed
    segment must not draw the first segment's dynamics and noise again), the same for the same resume point."""
    if steps == 0:
        return seed
    return int(np.random.SeedSequence([seed, steps]).generate_state(1)[0] % (2**31 - 1))


def set_torch_threads(threads: int | None) -> None:
    """Sets torch's intra-op threads (scripts only). Small MLPs train fastest on one thread on a CPU,
    and two threads on a busy 2-core machine can be an order of magnitude slower."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
