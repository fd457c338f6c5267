"""Games that average over an evaluation set, and what moves when that set is resampled.

Most buyers' values are averages over an evaluation set: a classifier's validation
accuracy is the mean of per-point correctness, a RAG buyer's value the mean of per-question
scores, a DPO buyer's the mean over held-out preference pairs. Such a game is *pointwise*:

    ``v(S) = g( (1/P) sum_{i=1..P} u_i(S) )``, ``g`` affine (the buyer's unit and baseline),

and a game on a resampled evaluation set is the same game with weights ``w_i`` in place of
``1/P`` (a bootstrap draw gives ``w = counts / P`` with ``counts ~ Multinomial(P, 1/P)``).
The trained models do not change, so a resampled game costs no training: :class:`PointCache`
keeps each coalition's vector ``u(S)`` and answers every reweighted game from it.

Since a semivalue is linear in the game, a value on the evaluation set is itself a mean of
per-point values ``phi_j = (1/P) sum_i phi_j(u_i)`` -- the U-/V-statistic view of Data Shapley
(Wu, Liu, Li, Jia & Chang, "Uncertainty Quantification of Data Shapley via Statistical
Inference"), here over evaluation points rather than training points. The percentile
bootstrap over the evaluation set (Efron & Tibshirani 1993) is the interval this module
gives; payments, which are not linear in the game, are resampled the same way by settling
the market again on each resampled game (:mod:`dataprice.experiment.resampling`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.valuation.game import Game, coalition_keys, masks_to_coalitions

#: Per-point scores a :class:`PointCache` keeps in memory before it stops remembering new
#: coalitions (8 bytes each: 160 MB). Past it, resampled games recompute those coalitions.
MAX_CACHED_SCORES = 20_000_000


@runtime_checkable
class PointwiseGame(Protocol):
    """A game whose value is an affine function of a mean over ``n_points`` evaluation points.

    Contract: ``value_function(c) == from_points(point_values(c))`` exactly (same floats), and
    ``from_points(p, w)`` is the value when point ``i`` has weight ``w_i`` (``sum w = 1``);
    ``w`` may also be ``float[n_points, B]``, giving ``float[m, B]``: the values under ``B``
    weightings at once.
    """

    n_points: int

    def point_values(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[m, n_points]``: each evaluation point's score for each coalition."""
        ...

    def from_points(self, points: NDArray[np.float64], weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        """Values from per-point scores: uniform weights when ``weights`` is None."""
        ...


def is_pointwise(game: Game) -> bool:
    """Whether ``game`` can say each evaluation point's score (and has more than one point)."""
    return isinstance(game, PointwiseGame) and int(getattr(game, "n_points", 0)) > 1


class PointCache(Game):
    """A pointwise game that remembers each coalition's per-point scores.

    Its values are the wrapped game's own (``from_points`` of the cached scores, the same
    floats), so a run valued through it is unchanged; :meth:`reweighted` gives the game on a
    resampled evaluation set, answered from memory for every coalition already computed.
    ``computed`` counts the coalitions the wrapped game evaluated.
    """

    def __init__(self, game: Game, *, max_scores: int = MAX_CACHED_SCORES) -> None:
        if not is_pointwise(game):
            raise TypeError(f"{type(game).__name__} does not give per-point scores")
        super().__init__(game.n_players, game.player_names)
        self.game = game
        self.n_points = int(game.n_points)  # type: ignore[attr-defined]
        self.max_entries = max(1, max_scores // max(self.n_points, 1))
        self._scores: dict[int | bytes, NDArray[np.float64]] = {}
        self.computed = 0

    def points(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[m, n_points]`` for the rows of ``coalitions`` (computed once each)."""
        coalitions = np.asarray(coalitions, dtype=bool)
        keys = coalition_keys(coalitions)
        missing: dict[int | bytes, int] = {}
        for row, key in enumerate(keys):
            if key not in self._scores and key not in missing:
                missing[key] = row
        fresh: dict[int | bytes, NDArray[np.float64]] = {}
        if missing:
            rows = np.fromiter(missing.values(), dtype=np.int64, count=len(missing))
            scores = np.asarray(self.game.point_values(coalitions[rows]), dtype=np.float64)  # type: ignore[attr-defined]
            self.computed += len(rows)
            for key, vector in zip(missing, scores, strict=True):
                fresh[key] = vector
                if len(self._scores) < self.max_entries:
                    self._scores[key] = vector
        out = np.empty((len(keys), self.n_points))
        for row, key in enumerate(keys):
            vector = self._scores.get(key)
            out[row] = fresh[key] if vector is None else vector
        return out

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return self.game.from_points(self.points(coalitions))  # type: ignore[attr-defined]

    def proxy_game(self) -> Game | None:
        """The wrapped game's proxy (remembering scores does not change what it offers)."""
        return self.game.proxy_game()

    def reweighted(self, weights: NDArray[np.float64]) -> Game:
        """The game on the evaluation set where point ``i`` has weight ``weights[i]``."""
        return _Reweighted(self, np.asarray(weights, dtype=np.float64))

    def resampled(self, weights: NDArray[np.float64]) -> list[Game]:
        """One game per row of ``weights`` (``float[B, n_points]``), sharing one memo: a
        coalition's values in all ``B`` games are computed together (one product with the
        weight matrix), so each game's evaluation is a lookup."""
        draws = _DrawValues(self, np.asarray(weights, dtype=np.float64))
        return [_Draw(draws, b) for b in range(draws.weights.shape[0])]

    def table_points(self) -> NDArray[np.float64]:
        """``float[2^n, n_points]``: every coalition's scores, row ``mask`` (tabulable games)."""
        masks = np.arange(2**self.n_players, dtype=np.int64)
        return self.points(masks_to_coalitions(masks, self.n_players))

    def tabulated(self, points: NDArray[np.float64], weights: NDArray[np.float64] | None) -> NDArray[np.float64]:
        """The value table ``v_w(mask)`` from :meth:`table_points` for the given weights."""
        return self.game.from_points(points, weights)  # type: ignore[attr-defined]


class _Reweighted(Game):
    def __init__(self, cache: PointCache, weights: NDArray[np.float64]) -> None:
        super().__init__(cache.n_players, cache.player_names)
        self.cache, self.weights = cache, weights

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return self.cache.game.from_points(self.cache.points(coalitions), self.weights)  # type: ignore[attr-defined]


class _DrawValues:
    """Each coalition's value in every resampled game, computed once per coalition."""

    def __init__(self, cache: PointCache, weights: NDArray[np.float64]) -> None:
        self.cache, self.weights = cache, weights
        self._values: dict[int | bytes, NDArray[np.float64]] = {}

    def values(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[m, B]``."""
        keys = coalition_keys(coalitions)
        missing = {key: row for row, key in enumerate(keys) if key not in self._values}
        if missing:
            rows = np.fromiter(missing.values(), dtype=np.int64, count=len(missing))
            fresh = self.cache.game.from_points(self.cache.points(coalitions[rows]), self.weights.T)  # type: ignore[attr-defined]
            self._values.update(zip(missing, np.atleast_2d(fresh), strict=True))
        return np.array([self._values[key] for key in keys]).reshape(len(keys), -1)


class _Draw(Game):
    def __init__(self, draws: _DrawValues, b: int) -> None:
        super().__init__(draws.cache.n_players, draws.cache.player_names)
        self.draws, self.b = draws, b

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return self.draws.values(coalitions)[:, self.b]


def bootstrap_weights(n_points: int, resamples: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``float[resamples, n_points]``: each row ``counts / n_points`` with ``counts`` a
    multinomial draw of ``n_points`` evaluation points with replacement."""
    if n_points < 1 or resamples < 1:
        raise ValueError(f"need points and resamples, got {n_points} points and {resamples} resamples")
    counts = rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=resamples)
    return counts / float(n_points)


def percentile_interval(draws: NDArray[np.float64], level: float = 0.95) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The percentile interval of ``draws`` (``float[B, n]``) per column: the
    ``(1 - level)/2`` and ``(1 + level)/2`` quantiles (linear interpolation), NaN-aware."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    draws = np.asarray(draws, dtype=np.float64)
    tail = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(draws, [tail, 1.0 - tail], axis=0)
    return lo, hi


__all__ = ["MAX_CACHED_SCORES", "PointCache", "PointwiseGame", "bootstrap_weights", "is_pointwise",
           "percentile_interval"]
