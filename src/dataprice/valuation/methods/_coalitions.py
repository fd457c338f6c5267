"""Coalitions by size for the stratified estimators: every coalition of a size, a uniform
sample of one without replacement, and evaluation here or on an engine in chunks.

A *canonical* coalition stands for a class of coalitions (the kernel estimator's pair ``{S,
N \\ S}`` of two halves is represented by the half holding player 0): ``canonical`` maps a
drawn coalition to its representative before the repeat check, so a sample is uniform over
classes when each class has the same number of members among the coalitions of the size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation.game import Game, coalition_keys
from dataprice.valuation.result import ValuationResult

Canonical = Callable[[NDArray[np.bool_]], NDArray[np.bool_]]


class Estimate:
    """What the stopping rule reads: values, their standard errors and sample counts."""

    def __init__(self, n: int) -> None:
        self.mean = np.zeros(n)
        self.stderr = np.full(n, np.inf)
        self.count = np.zeros(n, dtype=np.int64)

    def result(self, game: Game, *, method: str, n_evaluations: int, converged: bool, seed: int | None,
               n_batches: int, extra: dict) -> ValuationResult:
        """The :class:`ValuationResult` of this estimate (variances such that ``stderr^2 =
        variance / count``; infinite where the error is unknown)."""
        count = np.maximum(self.count, 1)
        return ValuationResult(
            values=self.mean.copy(),
            variances=np.where(np.isfinite(self.stderr), self.stderr**2 * count, np.inf),
            counts=count, player_names=game.player_names, method=method, n_evaluations=n_evaluations,
            converged=converged, seed=seed, n_batches=n_batches, extra=extra,
        )


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
    fresh: dict[int | bytes, int] = {}  # key -> first row, in order (representatives repeat)
    for row, key in enumerate(coalition_keys(every)):
        if key not in seen and key not in fresh:
            fresh[key] = row
    seen.update(fresh)
    return every[list(fresh.values())]


def draw_stratum(
    n: int, s: int, q: int, room: int, drawn: float, total: float, seen: set[int | bytes],
    rng: np.random.Generator, canonical: Canonical | None = None,
) -> NDArray[np.bool_]:
    """A stratum's share of a batch: ``q`` (at most ``room``) new coalitions of size ``s``
    drawn uniformly, or, once the stratum would be half drawn and the rest fits in
    ``room``, every coalition not yet drawn (the stratum becomes exact)."""
    if drawn + q >= total / 2 and int(total - drawn) <= room:
        return unseen_of_size(n, s, seen, canonical)
    return sample_of_size(n, s, min(q, room), seen, rng, canonical)


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



class Ledger:
    """The coalitions a run evaluated, saved to a checkpoint file and replayed on resume.

    The stratified and kernel estimators draw batch ``b`` from the child stream ``(seed,
    b)`` and the state the earlier batches left, so a run is a function of its seed, its
    budget and the values it was given. A run started with an existing checkpoint file
    therefore draws the same coalitions again and reads the values saved there instead of
    evaluating them: it ends with the values of one uninterrupted run, and the game
    computes only what the interrupted run had not. The file (``.npz``, no pickles) holds
    the method's name, seed and players, checked on load, and every evaluated coalition
    (packed bits) with its value; it is written atomically every ``every`` batches and at
    the end.
    """

    def __init__(self, path, *, method: str, seed: int | None, player_names: Sequence[str], every: int = 10) -> None:
        self.path = None if path is None else Path(path)
        self.method, self.seed, self.player_names, self.every = method, seed, list(player_names), max(int(every), 1)
        self.known: dict[int | bytes, float] = {}
        self.rows: list[NDArray[np.bool_]] = []
        self.values: list[NDArray[np.float64]] = []
        self.replayed = 0  # values read from the file instead of the game
        if self.path is not None and self.path.is_file():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                header = str(saved["header"])
                packed, values = saved["coalitions"], saved["values"]
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{self.path}: not a dataprice sampling checkpoint ({exc})") from None
        expected = self._header()
        if header != expected:
            raise ValueError(f"{self.path}: checkpoint of another run ({header[:120]!r}); this run is {expected[:120]!r}: "
                             "remove the file or give another checkpoint path")
        n = len(self.player_names)
        rows = np.unpackbits(packed, axis=1, count=n).astype(bool) if packed.size else np.zeros((0, n), dtype=bool)
        if rows.shape[0] != values.shape[0]:
            raise ValueError(f"{self.path}: checkpoint has {rows.shape[0]} coalitions but {values.shape[0]} values")
        self.known = dict(zip(coalition_keys(rows), values.tolist(), strict=True))

    def _header(self) -> str:
        return json.dumps({"method": self.method, "seed": self.seed, "players": self.player_names})

    def wrap(self, evaluate: Callable[[NDArray[np.bool_]], NDArray[np.float64]]):
        """``evaluate`` that reads saved values first and records every value it returns
        (``evaluate`` itself without a checkpoint file: nothing to read or save)."""
        if self.path is None:
            return evaluate

        def recorded(coalitions: NDArray[np.bool_]) -> NDArray[np.float64]:
            keys = coalition_keys(coalitions)
            fresh = np.array([key not in self.known for key in keys], dtype=bool)
            values = np.array([self.known.get(key, np.nan) for key in keys], dtype=np.float64)
            if fresh.any():
                values[fresh] = evaluate(coalitions[fresh])
            self.replayed += int((~fresh).sum())
            self.rows.append(coalitions)
            self.values.append(values)
            return values

        return recorded

    def batch_done(self, batch: int) -> None:
        if batch % self.every == 0:
            self.save()

    def save(self) -> None:
        """Write every coalition recorded so far (no-op without a file)."""
        if self.path is None:
            return
        n = len(self.player_names)
        rows = np.concatenate(self.rows) if self.rows else np.zeros((0, n), dtype=bool)
        values = np.concatenate(self.values) if self.values else np.zeros(0)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, header=np.array(self._header()), coalitions=np.packbits(rows, axis=1), values=values)
        os.replace(tmp, self.path)
