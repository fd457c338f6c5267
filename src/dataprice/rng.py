"""Randomness discipline: one seed per run, child streams by ``SeedSequence`` spawn keys.

A stream is addressed by a path of integers (for example ``(seed_index, batch)``), so the
numbers a piece of work draws depend on *which* work it is, never on which worker runs it
or in which order work finishes.
"""

from __future__ import annotations

import numpy as np


def as_seed_sequence(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    """Return a ``SeedSequence`` for ``seed`` (``None`` draws fresh OS entropy)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(seed)


def child_sequence(seed: int | np.random.SeedSequence | None, *path: int) -> np.random.SeedSequence:
    """The child stream at ``path`` below ``seed``: same seed and path, same numbers."""
    base = as_seed_sequence(seed)
    return np.random.SeedSequence(entropy=base.entropy, spawn_key=tuple(base.spawn_key) + tuple(path))


def child_rng(seed: int | np.random.SeedSequence | None, *path: int) -> np.random.Generator:
    """A ``Generator`` on the child stream at ``path`` below ``seed``."""
    return np.random.default_rng(child_sequence(seed, *path))
