"""Exact semivalues (Shapley, Banzhaf) from the full table of a game.

A semivalue is ``phi_i = sum_{S ⊆ N \\ {i}} w(|S|) [v(S ∪ {i}) - v(S)]`` with a coefficient
``w`` depending only on the coalition size:

* Shapley (1953): ``w(s) = s! (n - s - 1)! / n! = 1 / (n * C(n-1, s))``;
* Banzhaf (1965): ``w(s) = 1 / 2^(n-1)``.

The sum runs over the table vectorised over bitmasks: ``O(n 2^n)`` array operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation.game import Game, TabulatedGame, popcount, tabulate
from dataprice.valuation.methods.base import MethodSpec, ValuationMethod, register_method
from dataprice.valuation.result import ValuationResult


def shapley_coefficient(n: int) -> NDArray[np.float64]:
    """``w(s) = 1 / (n C(n-1, s))`` for ``s = 0..n-1``."""
    from scipy.special import comb

    s = np.arange(n)
    return 1.0 / (n * comb(n - 1, s, exact=False))


def banzhaf_coefficient(n: int) -> NDArray[np.float64]:
    """``w(s) = 2^-(n-1)`` for ``s = 0..n-1``."""
    return np.full(n, 0.5 ** (n - 1))


def semivalues_from_table(
    table: TabulatedGame, coefficient: Callable[[int], NDArray[np.float64]]
) -> NDArray[np.float64]:
    """``phi_i = sum_{S ∌ i} w(|S|) (v(S + i) - v(S))`` for every player, from the table."""
    n = table.n_players
    masks = np.arange(2**n, dtype=np.int64)
    sizes = popcount(masks)
    weights = coefficient(n)
    values = table.values
    phi = np.empty(n)
    for i in range(n):
        bit = np.int64(1) << i
        without = masks[(masks & bit) == 0]
        marginal = values[without | bit] - values[without]
        phi[i] = np.dot(weights[sizes[without]], marginal)
    return phi


#: Largest game whose exact Shapley result keeps the breakdown by coalition size (a seller
#: statement's bar chart): it costs one more pass per player over the table, which at 20
#: players doubles the time of exact Shapley (0.16 s to 0.32 s here).
BY_SIZE_MAX_PLAYERS = 18


def marginals_by_size(table: TabulatedGame) -> NDArray[np.float64]:
    """``float[n, n]``: ``D[i, s]``, player ``i``'s mean marginal contribution
    ``v(S + i) - v(S)`` over the coalitions ``S ∌ i`` of size ``s``.

    The Shapley value is their plain mean over sizes, ``phi_i = (1/n) sum_s D[i, s]``: each
    position in a random order is equally likely and, given the position, the predecessors
    are a uniformly drawn coalition of that size. A statement shows this breakdown.
    """
    from scipy.special import comb

    n = table.n_players
    masks = np.arange(2**n, dtype=np.int64)
    sizes = popcount(masks)
    counts = comb(n - 1, np.arange(n), exact=False)
    out = np.empty((n, n))
    for i in range(n):
        bit = np.int64(1) << i
        without = masks[(masks & bit) == 0]
        marginal = table.values[without | bit] - table.values[without]
        out[i] = np.bincount(sizes[without], weights=marginal, minlength=n)[:n] / counts
    return out


class ExactShapleySpec(MethodSpec):
    method: Literal["exact_shapley"]


class ExactBanzhafSpec(MethodSpec):
    method: Literal["exact_banzhaf"]


class _ExactSemivalue(ValuationMethod):
    needs_tabulation = True
    coefficient: Callable[[int], NDArray[np.float64]]

    def __init__(self, *, progress: bool = False) -> None:
        super().__init__()
        self.progress = progress

    @classmethod
    def from_spec(cls, spec: MethodSpec, *, seed: int, progress: bool = False) -> _ExactSemivalue:
        return cls(progress=progress)

    def fit(self, game: Game) -> _ExactSemivalue:
        before = game.n_evaluations
        table = game if isinstance(game, TabulatedGame) else tabulate(game, progress=self.progress)
        spent = 0 if isinstance(game, TabulatedGame) else game.n_evaluations - before
        phi = semivalues_from_table(table, type(self).coefficient)
        breakdown = self.name == "exact_shapley" and table.n_players <= BY_SIZE_MAX_PLAYERS
        extra = {"by_size": marginals_by_size(table).tolist()} if breakdown else {}
        self._result = ValuationResult.exact(
            phi, table.player_names, self.name, n_evaluations=spent or 2**table.n_players, **extra
        )
        return self


@register_method
class ExactShapley(_ExactSemivalue):
    """Exact Shapley values: ``phi_i = sum_{S ∌ i} |S|!(n-|S|-1)!/n! [v(S+i) - v(S)]``.

    Satisfies efficiency ``sum phi = v(N) - v(empty)``, symmetry, null player, additivity.
    """

    name = "exact_shapley"
    Spec = ExactShapleySpec
    coefficient = staticmethod(shapley_coefficient)


@register_method
class ExactBanzhaf(_ExactSemivalue):
    """Exact Banzhaf values: ``beta_i = 2^-(n-1) sum_{S ∌ i} [v(S+i) - v(S)]``."""

    name = "exact_banzhaf"
    estimates = "banzhaf"
    Spec = ExactBanzhafSpec
    coefficient = staticmethod(banzhaf_coefficient)
