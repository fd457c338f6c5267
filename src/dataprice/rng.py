"""Randomness discipline: one seed per run, child streams by ``SeedSequence`` spawn keys.

A stream is addressed by a path of integers (for example ``(seed_index, batch)``), so the
numbers a piece of work draws depend on *which* work it is, never on which worker runs it
or in which order work finishes.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """Named child streams. The numbers are part of every result's identity (the same seed
    must keep giving the same numbers): never renumber a stream; a new one takes a new
    number.

    Below the scenario's seed: ``COSTS`` (the sellers' true costs), ``DOCUMENT_VALUES``
    (single-winner documents), ``(replicate, BIDDING)`` (the sellers' random draws, common
    to every payment rule). Below a replicate's seed: ``DATA`` (a buyer's data: split,
    subsample, corpus, pairs, task), ``PARTITION``, ``LABEL_NOISE``, ``COPIES``,
    ``COVERAGE``, ``METHODS + k`` (the k-th valuation method), ``(VALUE_SHOCKS, round)``,
    ``AUDIT_SAMPLE``, ``FEDRANDOM + round`` (FedRandom's rule),
    ``RESAMPLING`` (bootstrap draws of the evaluation set), ``ESTIMATOR`` (the
``random_state`` of a scikit-learn estimator, the same for every coalition). Monte Carlo batches use
    ``(method seed, batch)`` and agents ``(bidding stream, round, seller)``.
    """

    DATA = 0
    PARTITION = 1
    LABEL_NOISE = 2
    COPIES = 3
    ESTIMATOR = 4
    METHODS = 10
    COSTS = 1000
    DOCUMENT_VALUES = 2000
    COVERAGE = 2100
    VALUE_SHOCKS = 4000
    BIDDING = 5000
    AUDIT_SAMPLE = 6000
    RESAMPLING = 7000
    FEDRANDOM = 10_000


def as_seed_sequence(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    """Return a ``SeedSequence`` for ``seed`` (``None`` draws fresh OS entropy)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(seed)


def child_sequence(seed: int | np.random.SeedSequence | None, *path: int) -> np.random.SeedSequence:
    """The child stream at ``path`` below ``seed``: same seed and path, same numbers."""
    base = as_seed_sequence(seed)
    return np.random.SeedSequence(entropy=base.entropy, spawn_key=tuple(base.spawn_key) + tuple(int(p) for p in path))


def child_rng(seed: int | np.random.SeedSequence | None, *path: int) -> np.random.Generator:
    """A ``Generator`` on the child stream at ``path`` below ``seed``."""
    return np.random.default_rng(child_sequence(seed, *path))


def child_seed(seed: int | np.random.SeedSequence | None, *path: int) -> int:
    """An integer seed drawn from the child stream at ``path`` (for code that takes an int)."""
    return int(child_sequence(seed, *path).generate_state(1)[0])
