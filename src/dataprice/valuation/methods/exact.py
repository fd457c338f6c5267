"""Exact semivalues (Shapley, Banzhaf) from the full table of a game.

A semivalue is ``phi_i = sum_{S ⊆ N \\ {i}} w(|S|) [v(S ∪ {i}) - v(S)]`` with a coefficient
``w`` depending only on the coalition size:

* Shapley (1953): ``w(s) = s! (n - s - 1)! / n! = 1 / (n * C(n-1, s))``;
* Banzhaf (1965): ``w(s) = 1 / 2^(n-1)``.

The sum is one weighting pass and one fold over the table (:mod:`dataprice.valuation.folds`):
under three sequential passes over the ``2^n`` values, with no ``n x 2^n`` temporaries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation import folds
from dataprice.valuation.game import Game, TabulatedGame, tabulate
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
    """``phi_i = sum_{S ∌ i} w(|S|) (v(S + i) - v(S))`` for every player, from the table, in
    one weighting pass and one fold over it (:func:`dataprice.valuation.folds.semivalues`)."""
    return folds.semivalues(table.values, coefficient(table.n_players))


#: Largest game whose exact Shapley result keeps the breakdown by coalition size (a seller
#: statement's bar chart): one fold of an ``(2^n, n + 1)`` table, 8 (n + 1) 2^n bytes.
BY_SIZE_MAX_PLAYERS = 18


def marginals_by_size(table: TabulatedGame) -> NDArray[np.float64]:
    """``float[n, n]``: ``D[i, s]``, player ``i``'s mean marginal contribution
    ``v(S + i) - v(S)`` over the coalitions ``S ∌ i`` of size ``s``.

    The Shapley value is their plain mean over sizes, ``phi_i = (1/n) sum_s D[i, s]``: each
    position in a random order is equally likely and, given the position, the predecessors
    are a uniformly drawn coalition of that size. A statement shows this breakdown. From one
    fold by size (:func:`~dataprice.valuation.folds.sums_by_size`): ``D[i, s] = [sum_{T ∋ i,
    |T| = s + 1} v(T) - (sum_{|S| = s} v(S) - sum_{S ∋ i, |S| = s} v(S))] / C(n - 1, s)``.
    """
    from scipy.special import comb

    n = table.n_players
    with_i, total = folds.sums_by_size(table.values)
    counts = comb(n - 1, np.arange(n), exact=False)
    return (with_i[:, 1:] - (total[None, :n] - with_i[:, :n])) / counts[None, :]


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
