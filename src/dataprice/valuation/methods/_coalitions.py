"""Coalitions by size for the stratified estimators: every coalition of a size, a uniform
sample of one without replacement, and evaluation here or on an engine in chunks.

A *canonical* coalition stands for a class of coalitions (the kernel estimator's pair ``{S,
N \\ S}`` of two halves is represented by the half holding player 0): ``canonical`` maps a
drawn coalition to its representative before the repeat check, so a sample is uniform over
classes when each class has the same number of members among the coalitions of the size.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from math import comb

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation.game import Game, coalition_keys

Canonical = Callable[[NDArray[np.bool_]], NDArray[np.bool_]]


def all_of_size(n: int, s: int) -> NDArray[np.bool_]:
    """Every coalition of size ``s`` (sizes 2..n-2 in lexicographic order of members)."""
    if s == 0:
        return np.zeros((1, n), dtype=bool)
    if s == n:
        return np.ones((1, n), dtype=bool)
    if s == 1:
        return np.eye(n, dtype=bool)
    if s == n - 1:
        return ~np.eye(n, dtype=bool)  # row i lacks player i
    rows = np.zeros((comb(n, s), n), dtype=bool)
    for r, members in enumerate(combinations(range(n), s)):
        rows[r, list(members)] = True
    return rows


def unseen_of_size(
    n: int, s: int, seen: set[int | bytes], canonical: Canonical | None = None
) -> NDArray[np.bool_]:
    """Every (canonical) coalition of size ``s`` not in ``seen``, added to it."""
    every = all_of_size(n, s)
    if canonical is not None:
        every = canonical(every)
        every = every[np.unique(coalition_keys_array(every), return_index=True)[1]]
    keys = coalition_keys(every)
    fresh = every[[key not in seen for key in keys]]
    seen.update(coalition_keys(fresh))
    return fresh


def sample_of_size(
    n: int, s: int, q: int, seen: set[int | bytes], rng: np.random.Generator, canonical: Canonical | None = None
) -> NDArray[np.bool_]:
    """``q`` distinct (canonical) coalitions of size ``s`` not in ``seen``, drawn uniformly
    (and added to it).

    Rows are the ``s`` smallest keys of ``rng.random(n)``; repeats are drawn again (callers
    keep a size below half its coalitions before enumerating it, so a draw is new with
    probability at least one half)."""
    out = np.zeros((0, n), dtype=bool)
    while out.shape[0] < q:
        need = q - out.shape[0]
        keys = rng.random((2 * need, n))
        rows = np.zeros(keys.shape, dtype=bool)
        np.put_along_axis(rows, np.argpartition(keys, s - 1, axis=1)[:, :s], True, axis=1)
        if canonical is not None:
            rows = canonical(rows)
        fresh = []
        for row, key in zip(rows, coalition_keys(rows), strict=True):
            if key not in seen:
                seen.add(key)
                fresh.append(row)
                if len(fresh) == need:
                    break
        if fresh:
            out = np.concatenate([out, np.array(fresh)])
    return out


def neyman_quota(
    weight: NDArray[np.float64], drawn: NDArray[np.float64], cap: NDArray[np.float64], k: int
) -> NDArray[np.int64]:
    """``k`` more draws over strata whose target shares are ``∝ weight`` (Neyman's optimal
    allocation when ``weight`` is a stratum's size times its standard deviation over the
    square root of its cost), each capped at ``cap - drawn``.

    Water-filling: a stratum whose share reaches its cap is held there and gives back the
    excess; the batch then fills the largest shortfalls from the targets (largest
    remainder, ties to the earlier stratum)."""
    total = drawn.sum() + k
    target = np.zeros(weight.size)
    free = np.ones(weight.size, dtype=bool)
    for _ in range(weight.size):
        share = (total - target[~free].sum()) * weight * free / max(weight[free].sum(), 1e-300)
        over = free & (share >= cap)
        target = np.where(free, share, target)
        if not over.any():
            break
        target[over] = cap[over]
        free &= ~over
    want = np.maximum(target - drawn, 0.0)
    if want.sum() <= 0:
        want = np.maximum(cap - drawn, 0.0)
    want = want * k / want.sum()
    quota = np.floor(want).astype(np.int64)
    order = np.lexsort((np.arange(weight.size), -(want - quota)))
    quota[order[: k - int(quota.sum())]] += 1
    # room left per stratum, clipped before the cast: C(n, n/2) passes 2^63 from n = 67 on
    return np.minimum(quota, np.minimum(cap - drawn, k).astype(np.int64))


def coalition_keys_array(coalitions: NDArray[np.bool_]) -> NDArray[np.void]:
    """One opaque, comparable key per row (for ``np.unique``)."""
    packed = np.ascontiguousarray(np.packbits(coalitions, axis=1))
    return packed.view(np.dtype((np.void, packed.shape[1]))).ravel()


def evaluator(game: Game, engine, chunk: int) -> Callable[[NDArray[np.bool_]], NDArray[np.float64]]:
    """``evaluate(coalitions) -> values``: here, or on ``engine`` in chunks of ``chunk`` rows
    (same values; the game's ``n_evaluations`` counts the rows either way)."""
    if engine is None:
        return game
    shipped = engine.put(game)

    def evaluate(coalitions: NDArray[np.bool_]) -> NDArray[np.float64]:
        futures = [engine.submit(_values, shipped, coalitions[i : i + chunk]) for i in range(0, coalitions.shape[0], chunk)]
        values = np.concatenate([f.result() for f in futures]) if futures else np.zeros(0)
        game.n_evaluations += coalitions.shape[0]
        return values

    return evaluate


def _values(game: Game, coalitions: NDArray[np.bool_]) -> NDArray[np.float64]:
    return game(coalitions)

