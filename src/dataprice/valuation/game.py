"""The batched game contract, coalition caching and exact tabulation.

A *game* is a set function ``v: 2^N -> R`` over ``n`` players (sellers, data owners,
federated clients). Every game in dataprice is evaluated on a **batch** of coalitions:

    ``game(coalitions: bool[m, n]) -> float[m]``

so a utility can vectorize over coalitions (a RAG utility merges per-seller top-k lists,
a DPO utility does arithmetic on per-owner margins) and a batch is the natural unit of
parallel work. The empty coalition is an ordinary row: ``v(empty)`` is defined by every
game and returned like any other value (for buyer utilities it is the value of buying
nothing, normally 0).

Players are numbered ``0..n-1``; a coalition can also be written as an integer bitmask
with bit ``j`` set iff player ``j`` belongs to it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix, Indices, Masks
from dataprice.progress import progress as progress_display
from dataprice.valuation.folds import member_masks

#: Largest number of players for which a game is tabulated exactly (2^22 ~ 4.2M values).
MAX_TABULATION_PLAYERS = 22


def coalitions_to_masks(coalitions: CoalitionMatrix) -> Masks:
    """Bitmask of each row: ``sum_j coalitions[k, j] * 2^j`` (requires ``n <= 62``)."""
    coalitions = np.asarray(coalitions, dtype=bool)
    n = coalitions.shape[1]
    if n > 62:
        raise ValueError(f"bitmasks need at most 62 players, got {n}")
    weights = np.left_shift(np.int64(1), np.arange(n, dtype=np.int64))
    return coalitions.astype(np.int64) @ weights


def masks_to_coalitions(masks: Masks | Sequence[int], n_players: int) -> CoalitionMatrix:
    """Inverse of :func:`coalitions_to_masks`: a boolean ``(len(masks), n_players)`` matrix."""
    masks = np.asarray(masks, dtype=np.int64).reshape(-1, 1)
    bits = np.left_shift(np.int64(1), np.arange(n_players, dtype=np.int64))
    return (masks & bits) != 0


def coalition_keys(coalitions: CoalitionMatrix) -> list[int | bytes]:
    """A hashable key per row, for memos: the bitmask for at most 62 players, else the
    packed bits."""
    coalitions = np.asarray(coalitions, dtype=bool)
    if coalitions.shape[1] <= 62:
        return coalitions_to_masks(coalitions).tolist()
    return [row.tobytes() for row in np.packbits(coalitions, axis=1)]


def popcount(masks: Masks) -> NDArray[np.int64]:
    """Number of members of each coalition given as bitmasks."""
    masks = np.asarray(masks, dtype=np.uint64)
    counts = np.zeros(masks.shape, dtype=np.int64)
    for shift in range(0, 64, 8):
        counts += _BYTE_POPCOUNT[(masks >> np.uint64(shift)) & np.uint64(0xFF)]
    return counts


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def size_weights(coalitions: CoalitionMatrix, sizes) -> NDArray[np.float64]:
    """``w_j^S = n_j / sum_{k in S} n_k`` for each coalition row (zeros for the empty one):
    how DPO composition and federated reconstruction weigh members by data size."""
    raw = np.asarray(coalitions, dtype=bool) * np.asarray(sizes, dtype=np.float64)[None, :]
    total = raw.sum(axis=1, keepdims=True)
    return np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)


def coalition(n_players: int, members: Iterable[int] = ()) -> CoalitionMatrix:
    """A ``(1, n_players)`` coalition matrix holding exactly ``members``."""
    row = np.zeros((1, n_players), dtype=bool)
    row[0, list(members)] = True
    return row


class Game(ABC):
    """A cooperative game ``v: 2^N -> R`` evaluated on batches of coalitions.

    Subclasses implement :meth:`value_function`; callers use ``game(coalitions)``, which
    checks the shape and counts evaluations in :attr:`n_evaluations` (the number of
    coalition values computed, the budget unit of every Monte Carlo method).

    Contract:
        * ``coalitions`` is ``bool[m, n_players]``; the result is ``float64[m]``.
        * ``v(empty)`` is defined and returned like any other coalition.
        * The game is deterministic: the same coalition always has the same value.
          Randomness of training lives in the game's seed, fixed at construction.
    """

    #: True if ``v`` is submodular: ``v(S + k) - v(S) >= v(T + k) - v(T)`` for ``S ⊆ T``,
    #: ``k ∉ T`` (a player adds less to a larger coalition). The greedy allocation then
    #: evaluates lazily (Minoux's accelerated greedy): a seller's net gain at an earlier step
    #: bounds its gain now, so most sellers are not re-evaluated at each step. A game that
    #: declares it also promises that :meth:`growing` returns the same float for ``v(S + k)``
    #: whichever batch of candidates ``k`` is asked in, and that its computed marginals
    #: grow by less than ``1e-9`` of the values involved (rounding) -- so the lazy run takes
    #: exactly the sellers, in exactly the order, of the run that evaluates everyone.
    submodular: bool = False

    def __init__(self, n_players: int, player_names: Sequence[str] | None = None) -> None:
        if n_players < 1:
            raise ValueError(f"a game needs at least one player, got {n_players}")
        self.n_players = int(n_players)
        if player_names is None:
            player_names = [f"player_{j}" for j in range(self.n_players)]
        if len(player_names) != self.n_players:
            raise ValueError(f"{len(player_names)} player names for {self.n_players} players")
        self.player_names: tuple[str, ...] = tuple(str(p) for p in player_names)
        self.n_evaluations = 0

    @abstractmethod
    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """Values of the rows of ``coalitions`` (already checked to be ``bool[m, n]``)."""

    def __call__(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        coalitions = np.asarray(coalitions, dtype=bool)
        if coalitions.ndim == 1:
            coalitions = coalitions[None, :]
        if coalitions.ndim != 2 or coalitions.shape[1] != self.n_players:
            raise ValueError(
                f"coalitions must have shape (m, {self.n_players}), got {coalitions.shape}"
            )
        if coalitions.shape[0] == 0:
            return np.zeros(0)
        values = np.asarray(self.value_function(coalitions), dtype=np.float64).reshape(-1)
        if values.shape[0] != coalitions.shape[0]:
            raise RuntimeError(
                f"{type(self).__name__}.value_function returned {values.shape[0]} values "
                f"for {coalitions.shape[0]} coalitions"
            )
        self.n_evaluations += coalitions.shape[0]
        return values

    def values_with(self, base: NDArray[np.bool_], candidates: NDArray[np.int64]) -> NDArray[np.float64]:
        """``v(base + k)`` for every ``k`` in ``candidates``: one greedy step's batch.

        The default builds the ``len(candidates)`` coalitions and evaluates them; games
        with an incremental form (e.g. coverage) override it so a step costs
        ``O(len(candidates))`` instead of ``O(len(candidates) * n)``. Counts as
        ``len(candidates)`` evaluations either way.
        """
        candidates = np.asarray(candidates, dtype=np.int64)
        batch = np.repeat(np.asarray(base, dtype=bool)[None, :], candidates.size, axis=0)
        batch[np.arange(candidates.size), candidates] = True
        return self(batch)

    def growing(self, members: Iterable[int] = ()) -> GrowingCoalition:
        """An evaluator of ``v(S + k)`` for a coalition ``S`` (initially ``members``) that
        grows one player at a time: what a greedy run asks at each step.

        The default asks :meth:`values_with` on a boolean row; games with an incremental
        form override it (coverage keeps ``prod_{j in S}(1 - p_jt)`` per need).
        """
        return GrowingCoalition(self, members)

    def proxy_game(self) -> Game | None:
        """A cheap game over the same players whose values move with this one's, or None.

        Sampling estimators use it as a control variate (``stratified_shapley``'s
        ``proxy``): both games are evaluated on the same coalitions, the proxy's Shapley
        values are computed once with many cheap evaluations, and only the part of ``v`` the
        proxy does not explain is left to sampling. A buyer offers one where a cheaper
        model of the same data exists: the classifier trained per coalition offers the
        soft-KNN utility on the same points, the RAG buyer with an LM reader offers
        retrieval hit@k on the same ranking.
        """
        return None

    def value_of(self, members: Iterable[int] = ()) -> float:
        """``v(S)`` for one coalition given by its members."""
        return float(self(coalition(self.n_players, members))[0])

    def grand_value(self) -> float:
        """``v(N)``."""
        return self.value_of(range(self.n_players))

    def empty_value(self) -> float:
        """``v(empty)``."""
        return self.value_of(())


class GrowingCoalition:
    """``v(S + k)`` for candidate players ``k`` of a coalition ``S`` that grows one player at
    a time (:meth:`Game.growing`).

    A greedy run asks :meth:`values` for (some of) the candidates at each step, then
    :meth:`add` s the player it took. This generic form keeps ``S`` as a boolean row and asks
    :meth:`Game.values_with`; a game with an incremental form returns its own subclass,
    whose per-run state follows ``S`` so a step costs only the candidates it evaluates.
    Subclasses may depend on the order in which players were added (rounding): a run
    rebuilt by adding the same players in the same order sees the same floats.
    """

    def __init__(self, game: Game, members: Iterable[int] = ()) -> None:
        self.game = game
        self.selected = np.zeros(game.n_players, dtype=bool)
        self.selected[np.asarray(list(members), dtype=np.int64)] = True

    def values(self, candidates: NDArray[np.int64]) -> NDArray[np.float64]:
        """``v(S + k)`` for every ``k`` in ``candidates`` (counted as evaluations)."""
        candidates = np.asarray(candidates, dtype=np.int64)
        if candidates.size == 0:
            return np.zeros(0)
        return self.game.values_with(self.selected, candidates)

    def add(self, player: int) -> None:
        """``S <- S + player``."""
        self.selected[player] = True


class _CountedGrowth(GrowingCoalition):
    """A wrapped game's own incremental evaluator, counted on the :class:`CachedGame` that
    forwards it (like :meth:`CachedGame.values_with`: computed, not memoised)."""

    def __init__(self, cached: CachedGame, inner: GrowingCoalition) -> None:
        super().__init__(cached, np.flatnonzero(inner.selected))
        self.cached, self.inner = cached, inner

    def values(self, candidates: NDArray[np.int64]) -> NDArray[np.float64]:
        values = self.inner.values(candidates)
        self.cached.n_evaluations += len(values)
        self.cached.misses += len(values)
        return values

    def add(self, player: int) -> None:
        super().add(player)
        self.inner.add(player)


#: Coalitions a :class:`CachedGame` keeps in memory by default (about 100 bytes each for
#: games of at most 62 players, whose coalitions are keyed by an integer bitmask).
DEFAULT_CACHE_ENTRIES = 1_000_000


class CachedGame(Game):
    """Memoises another game's values by coalition, so repeated coalitions cost nothing.

    ``n_evaluations`` counts the coalitions *requested*; ``hits`` and ``misses`` say how
    many of those were answered from memory and how many were not. Within a batch,
    duplicate coalitions are evaluated once.

    Memory is bounded: at most ``max_entries`` coalitions are kept (``None``: no limit).
    Eviction is by two generations, which costs O(1) per lookup: new and recently used
    values go into the current generation; when it holds ``max_entries // 2`` values it
    becomes the previous generation and the older previous one is dropped; a hit in the
    previous generation moves the value back into the current one. So ``len(cache) <=
    max_entries``, and a coalition used among the last ``max_entries // 2`` insertions or
    promotions is always still in memory (an approximation of least-recently-used).

    With a persistent ``store`` (:class:`~dataprice.valuation.store.CoalitionStore`) and the
    game's ``key``, misses are looked up on disk first and new values are written there, so
    a later run of the same game computes nothing it has seen; ``computed`` counts the
    values the wrapped game actually computed and ``stored`` those read from disk. The
    store is written through: every computed value reaches it, evicted or not, so an
    evicted coalition is read back from disk rather than recomputed.
    """

    def __init__(
        self,
        game: Game,
        store=None,
        key: str | None = None,
        *,
        max_entries: int | None = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        super().__init__(game.n_players, game.player_names)
        if store is not None and not key:
            raise ValueError("a persistent coalition store needs the game's key")
        if max_entries is not None and max_entries < 1:
            raise ValueError(
                f"max_entries must be at least 1 coalition (None: no limit), got {max_entries}"
            )
        self.game = game
        self.submodular = game.submodular  # memoising does not change v
        self.store, self.key = store, key
        self.max_entries = max_entries
        # values per generation; with max_entries == 1 the previous generation stays empty
        self._generation = None if max_entries is None else max(max_entries // 2, 1)
        self._keep_previous = max_entries is None or max_entries > 1
        self._current: dict[int | bytes, float] = {}
        self._previous: dict[int | bytes, float] = {}
        self.hits = 0
        self.misses = 0
        self.stored = 0

    @property
    def computed(self) -> int:
        """Coalition values the wrapped game computed (misses not found in the store)."""
        return self.misses - self.stored

    def values_with(self, base: NDArray[np.bool_], candidates: NDArray[np.int64]) -> NDArray[np.float64]:
        """A game with its own incremental step (e.g. coverage) answers directly: such
        steps are cheaper than a lookup of ``len(candidates)`` coalitions. Other games go
        through the memo, so greedy runs that revisit coalitions do not recompute them."""
        if type(self.game).values_with is Game.values_with:
            return super().values_with(base, candidates)
        values = self.game.values_with(base, candidates)
        self.n_evaluations += len(values)
        self.misses += len(values)
        return values

    def proxy_game(self) -> Game | None:
        """The wrapped game's proxy (memoising does not change what it offers)."""
        return self.game.proxy_game()

    def growing(self, members: Iterable[int] = ()) -> GrowingCoalition:
        """The wrapped game's own incremental evaluator when it has one (counted here, as
        :meth:`values_with` is), else the generic one through this memo."""
        if type(self.game).growing is Game.growing:
            return GrowingCoalition(self, members)
        return _CountedGrowth(self, self.game.growing(members))

    def _keys(self, coalitions: CoalitionMatrix) -> list[int | bytes]:
        return coalition_keys(coalitions)

    def _insert(self, key: int | bytes, value: float) -> None:
        """Put a value in the current generation, turning it into the previous one if full."""
        if self._generation is not None and len(self._current) >= self._generation:
            self._previous = self._current if self._keep_previous else {}
            self._current = {}
        self._current[key] = value

    def _recall(self, key: int | bytes) -> float | None:
        """The value of ``key`` if in memory (a hit in the previous generation is promoted)."""
        value = self._current.get(key)
        if value is None:
            value = self._previous.pop(key, None)
            if value is not None:
                self._insert(key, value)
        return value

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        keys = self._keys(coalitions)
        current = self._current
        found = [current.get(key) for key in keys]  # the hot path: hits in the current generation
        missing: dict[int | bytes, int] = {}
        if None in found:
            for row, value in enumerate(found):
                if value is None:
                    key = keys[row]
                    value = self._recall(key)
                    if value is not None:
                        found[row] = value
                    elif key not in missing:
                        missing[key] = row
        if missing:
            rows = np.fromiter(missing.values(), dtype=np.int64, count=len(missing))
            fresh = dict(zip(missing.keys(), self._fetch(coalitions[rows]).tolist(), strict=True))
            found = [fresh[k] if v is None else v for k, v in zip(keys, found, strict=True)]
            if self._generation is None or len(self._current) + len(fresh) <= self._generation:
                self._current.update(fresh)
            else:
                for key, value in fresh.items():
                    self._insert(key, value)
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return np.array(found, dtype=np.float64)

    def _fetch(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """Values of distinct coalitions not in memory: from the store, else computed."""
        if self.store is None:
            return self.game(coalitions)
        from dataprice.valuation.store import pack

        packed = pack(coalitions)
        known = self.store.get(self.key, packed)
        self.stored += len(known)
        values = np.array([known.get(p, np.nan) for p in packed], dtype=np.float64)
        todo = np.array([p not in known for p in packed], dtype=bool)
        if todo.any():
            values[todo] = self.game(coalitions[todo])
            self.store.put(self.key, [p for p, t in zip(packed, todo, strict=True) if t], values[todo])
        return values

    def __len__(self) -> int:
        """Coalitions held in memory (at most ``max_entries``)."""
        return len(self._current) + len(self._previous)


class TabulatedGame(Game):
    """A game stored as the full table of its ``2^n`` values, indexed by bitmask.

    ``values[mask]`` is ``v(S)`` for the coalition ``S`` whose bitmask is ``mask``. Exact
    Shapley and Banzhaf values, exact welfare maximisation and VCG all read this table.
    """

    def __init__(
        self,
        values: NDArray[np.float64],
        player_names: Sequence[str] | None = None,
        metadata: dict | None = None,
        proxy: Game | None = None,
    ) -> None:
        values = np.asarray(values, dtype=np.float64)
        n = int(np.log2(values.shape[0])) if values.size else -1
        if values.ndim != 1 or n < 1 or values.shape[0] != 2**n:
            raise ValueError(f"a table needs 2^n values for some n >= 1, got {values.shape}")
        super().__init__(n, player_names)
        self.values = values
        self.metadata = dict(metadata or {})
        self._proxy = proxy

    def proxy_game(self) -> Game | None:
        """The tabulated game's proxy (:func:`tabulate` keeps it; a subgame has none)."""
        return self._proxy

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return self.values[coalitions_to_masks(coalitions)]

    def restrict(self, players: Indices) -> TabulatedGame:
        """The subgame on ``players`` (in the given order): ``v|_T(S) = v(S)`` for ``S ⊆ T``."""
        order = np.asarray(players, dtype=np.int64)
        k = order.shape[0]
        if k == 0:
            raise ValueError("cannot restrict a game to no players")
        full_masks = member_masks(order)
        names = [self.player_names[p] for p in order]
        return TabulatedGame(self.values[full_masks], names)

    def fingerprint(self) -> str:
        """sha256 of the table and the player names (stable across processes and runs)."""
        digest = hashlib.sha256(self.values.tobytes())
        digest.update(json.dumps(self.player_names).encode())
        return digest.hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the table to ``path`` (``.npz``, compressed); returns the path written."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            values=self.values,
            player_names=np.array(self.player_names),
            metadata=np.array(json.dumps(self.metadata)),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> TabulatedGame:
        """Read a table written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            return cls(
                data["values"],
                [str(p) for p in data["player_names"]],
                json.loads(str(data["metadata"])),
            )


def tabulate(
    game: Game,
    *,
    batch_size: int = 4096,
    progress: bool = False,
    map_batches=None,
) -> TabulatedGame:
    """Evaluate ``game`` on all ``2^n`` coalitions and return the table.

    Args:
        game: the game (``n_players <= MAX_TABULATION_PLAYERS``).
        batch_size: coalitions per call to the game.
        progress: show a progress bar.
        map_batches: optional ``callable(fn, list_of_mask_arrays) -> list_of_value_arrays``
            used to evaluate batches in parallel (see :mod:`dataprice.engine`); it must
            return results in order.

    Returns:
        The :class:`TabulatedGame`; ``game.n_evaluations`` grows by ``2^n`` when
        evaluated in this process.
    """
    if isinstance(game, TabulatedGame):
        return game
    n = game.n_players
    if n > MAX_TABULATION_PLAYERS:
        raise ValueError(
            f"exact tabulation needs 2^{n} evaluations; it is supported for at most "
            f"{MAX_TABULATION_PLAYERS} players: use a Monte Carlo method instead"
        )
    total = 2**n
    if progress:  # enough batches for the bar to move, without tiny game calls
        batch_size = min(batch_size, max(16, total // 100))
    starts = range(0, total, batch_size)
    batches = [np.arange(s, min(s + batch_size, total), dtype=np.int64) for s in starts]
    values = np.empty(total, dtype=np.float64)
    if map_batches is None:
        for masks in progress_display(batches, desc="tabulating game", unit="batch", enabled=progress, leave=False):
            values[masks] = game(masks_to_coalitions(masks, n))
    else:
        results = map_batches(_BatchEvaluator(game), batches)
        for masks, vals in zip(batches, results, strict=True):
            values[masks] = vals
    return TabulatedGame(values, game.player_names, {"source": type(game).__name__}, proxy=game.proxy_game())


class SubGame(Game):
    """``v|_T``: the game on players ``T`` (in the given order) of a larger game."""

    def __init__(self, game: Game, players: Sequence[int] | NDArray[np.int64]) -> None:
        players = np.asarray(players, dtype=np.int64)
        super().__init__(players.size, [game.player_names[p] for p in players])
        self.game, self.players = game, players

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        full = np.zeros((coalitions.shape[0], self.game.n_players), dtype=bool)
        full[:, self.players] = coalitions
        return self.game(full)


def subgame(game: Game, players: Indices, *, tabulate_up_to: int = 16) -> Game:
    """``v|_T`` for the players ``T``: a table restricted when ``game`` is a table, else a
    cached view, tabulated when ``T`` has at most ``tabulate_up_to`` players."""
    order = np.asarray(players, dtype=np.int64)
    if isinstance(game, TabulatedGame):
        return game.restrict(order)
    sub = SubGame(game, order)
    if order.size <= tabulate_up_to:
        return tabulate(CachedGame(sub))
    return CachedGame(sub)


class _BatchEvaluator:
    """Picklable callable that evaluates a game on a batch of bitmasks."""

    def __init__(self, game: Game) -> None:
        self.game = game

    def __call__(self, masks: Masks) -> NDArray[np.float64]:
        return self.game(masks_to_coalitions(masks, self.game.n_players))
