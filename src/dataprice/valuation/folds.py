"""Folds over the table of a game at memory speed: per-player sums and maxima in two passes.

Exact semivalues and exact welfare maximisation read, for every player ``i``, a sum or a
maximum over the coalitions that contain ``i`` and over those that do not. Done player by
player with index arrays this is ``n`` gathers over half the table (``O(n 2^n)`` random
reads and an ``n x 2^n`` working set). Here each is one *fold*: with the table indexed by
bitmask, the coalitions containing the top player ``n-1`` are the upper half of the table,
so its sum is one contiguous read; adding the two halves marginalises that player out,
and the next player is the top of a table half the size. The reads total
``2^n + 2^(n-1) + ... < 2 * 2^n``, every one sequential.

    sums_with(f)[i] = sum_{T ∋ i} f(T)          maxima(w) = (max_{T ∋ i} w(T), max_{T ∌ i} w(T))

Semivalues from them (Shapley 1953; Banzhaf 1965; the weights ``w(s)`` of a coalition of
``s`` others): ``phi_i = sum_{S ∌ i} w(|S|) [v(S + i) - v(S)] = sum_{T ∋ i} w(|T| - 1) v(T)
- sum_{S ∌ i} w(|S|) v(S)``, and with ``b(T) = w(|T|) v(T)``, ``sum_{S ∌ i} b(S) = sum_T b(T)
- sum_{T ∋ i} b(T)``, so

    ``phi_i = sum_{T ∋ i} [w(|T| - 1) + w(|T|)] v(T) - sum_T w(|T|) v(T)``  (``w(-1) = w(n) = 0``),

one weighting pass and one fold.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray


def subset_sums(weights: NDArray) -> NDArray:
    """``out[mask] = sum_{j in mask} weights[j]`` for all ``2^n`` masks, in ``O(2^n)``, in the
    dtype of ``weights``: the masks with bit ``j`` are the ones below ``2^j`` plus ``j``, so
    the table doubles once per player. Coalition sizes, subgame masks and a bid vector's
    cost of every coalition are all built this way."""
    weights = np.asarray(weights)
    out = np.zeros(1 << weights.shape[0], dtype=weights.dtype)
    for j in range(weights.shape[0]):
        half = 1 << j
        np.add(out[:half], weights[j], out=out[half : 2 * half])
    return out


@lru_cache(maxsize=4)
def subset_sizes(n: int) -> NDArray[np.uint8]:
    """``sizes[mask] = |mask|`` for all ``2^n`` masks (read-only, cached)."""
    sizes = subset_sums(np.ones(n, dtype=np.uint8))
    sizes.setflags(write=False)
    return sizes


def member_masks(members: NDArray[np.int64]) -> NDArray[np.int64]:
    """``out[m]``: the bitmask, among all players, of the coalition whose bitmask over
    ``members`` (player ``members[j]`` as bit ``j``) is ``m``: the sum of the members'
    distinct bits. Indexing a table with it gives the subgame on ``members``."""
    return subset_sums(np.int64(1) << np.asarray(members, dtype=np.int64))


def _players(table: NDArray) -> int:
    n = int(table.shape[0]).bit_length() - 1
    if n < 1 or table.shape[0] != 1 << n:
        raise ValueError(f"a table needs 2^n entries for some n >= 1, got {table.shape}")
    return n


def sums_with(table: NDArray[np.float64]) -> NDArray[np.float64]:
    """``out[i] = sum_{T ∋ i} table[T]`` for every player, in under two passes (see module)."""
    n = _players(table)
    out = np.empty(n)
    half = 1 << (n - 1)
    out[n - 1] = table[half:].sum()
    work = table[:half] + table[half:]  # the one temporary: half the table
    for i in range(n - 2, -1, -1):
        half = 1 << i
        out[i] = work[half : 2 * half].sum()
        np.add(work[:half], work[half : 2 * half], out=work[:half])
    return out


def maxima(table: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(max_{T ∋ i} table[T], max_{T ∌ i} table[T])`` for every player ``i``.

    Folding with ``max`` instead of ``+``: after the players above ``i`` are folded out,
    entry ``r`` of the working table is the best coalition whose members below ``i + 1``
    are ``r``, so its upper half's maximum is the best with ``i`` and its lower half's the
    best without. ``-inf`` entries (infeasible coalitions) stay ``-inf``.
    """
    n = _players(table)
    with_i, without_i = np.empty(n), np.empty(n)
    half = 1 << (n - 1)
    with_i[n - 1], without_i[n - 1] = table[half:].max(), table[:half].max()
    work = np.maximum(table[:half], table[half:])
    for i in range(n - 2, -1, -1):
        half = 1 << i
        with_i[i], without_i[i] = work[half : 2 * half].max(), work[:half].max()
        np.maximum(work[:half], work[half : 2 * half], out=work[:half])
    return with_i, without_i


#: Low bits of a row when a table is weighted by coalition size row by row (2^14 values).
ROW_BITS = 14


def semivalues(values: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """``phi_i = sum_{S ∌ i} w(|S|) [v(S + i) - v(S)]`` for every player, from the table
    ``values`` (indexed by bitmask) and ``weights[s] = w(s)``, ``s = 0..n-1``, in one
    weighting pass and one fold (formula in the module docstring).

    The weighting needs ``w(|T|)`` per coalition without a gather of ``2^n`` weights: the
    table is read as rows of ``2^14`` coalitions sharing their high bits ``h``, whose sizes
    are ``|h| + |l|`` over the low bits ``l``, so row ``h`` is weighted by one of ``n - 13``
    precomputed weight rows. The fold needs no weighted table either: a low player's sum
    ``sum_{T ∋ i} c(T)`` is a fold of the column sums ``sum_h c(h, l)`` (``2^14`` values), a
    high player's a fold of the row sums ``sum_l c(h, l)``; and ``sum_T w(|T|) v(T)`` is a
    dot product per row. So the table is read once, row by row, from memory.
    """
    n = _players(values)
    w = np.zeros(n + 2)  # w[s + 1] = w(s), zero at s = -1 and s = n
    w[1 : n + 1] = weights
    low = min(n, ROW_BITS)
    sizes = subset_sizes(n)
    low_sizes = sizes[: 1 << low].astype(np.intp)
    high = np.arange(n - low + 1)[:, None] + low_sizes[None, :]  # |T| by (|h|, l)
    own_rows = w[1:][high]  # w(|T|)
    both_rows = own_rows + w[:-1][high]  # w(|T| - 1) + w(|T|)
    rows = values.reshape(-1, 1 << low)
    by_row = np.empty(rows.shape[0])  # sum_l c(h, l): the high players' fold reads these
    by_column = np.zeros(rows.shape[1])  # sum_h c(h, l): the low players' fold reads these
    scratch = np.empty(rows.shape[1])
    total = 0.0
    for h, size in enumerate(sizes[: rows.shape[0]]):
        row = rows[h]  # read once from memory; the four operations below run in cache
        by_row[h] = row @ both_rows[size]
        total += float(row @ own_rows[size])
        np.multiply(row, both_rows[size], out=scratch)
        by_column += scratch
    phi = np.empty(n)
    phi[:low] = sums_with(by_column)
    if n > low:
        phi[low:] = sums_with(by_row)
    return phi - total


def sums_by_size(values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(with_i[i, k], total[k])``: ``sum_{T ∋ i, |T| = k} v(T)`` and ``sum_{|T| = k} v(T)``,
    ``k = 0..n``. One fold of an ``(2^n, n + 1)`` table holding ``v(T)`` in column ``|T|``
    (memory ``8 (n + 1) 2^n`` bytes: meant for ``n <= 18``)."""
    n = _players(values)
    sizes = subset_sizes(n)
    spread = np.zeros((values.shape[0], n + 1))
    spread[np.arange(values.shape[0]), sizes] = values
    total = spread.sum(axis=0)
    with_i = np.empty((n, n + 1))
    work = spread
    for i in range(n - 1, -1, -1):
        half = 1 << i
        with_i[i] = work[half : 2 * half].sum(axis=0)
        if i == n - 1:
            work = work[:half] + work[half:]
        else:
            np.add(work[:half], work[half : 2 * half], out=work[:half])
    return with_i, total
