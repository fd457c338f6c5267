"""Paying on a valuation method's values: the additive game they define.

A scenario's ``market.value_basis`` names one of its ``valuation`` entries; the subset market
then settles on ``v_phi(S) = v(empty) + sum_{j in S} phi_j`` (``phi`` that entry's values, in
money) instead of the buyer's coalition values ``v(S)``. That is how values that come without
a coalition game, such as In-Run Data Shapley's from one training run
(:mod:`dataprice.valuation.methods.inrun`), become payments under every rule.

On an additive game the rules agree. Seller ``j``'s marginal value is ``phi_j`` in every
coalition, so leave-one-out and Shapley pay ``phi_j``; the exact allocation selects ``j``
exactly when ``phi_j`` is at least its report (and the reserve), so Myerson's critical report
and VCG's payment are ``phi_j`` too (``min(phi_j, reserve)`` with a reserve). What remains
different is pay-as-bid. The additive game also has no interactions: two sellers holding the
same data are each paid for it, whatever the buyer's coalition values would say about the
second copy (the report says so).
"""

from __future__ import annotations

import numpy as np

from dataprice.errors import DataError
from dataprice.valuation.game import MAX_TABULATION_PLAYERS, Game, tabulate
from dataprice.valuation.reference_games import AdditiveGame
from dataprice.valuation.result import ValuationResult


def basis_game(result: ValuationResult, empty_value: float, *, table: bool) -> Game:
    """``v_phi(S) = empty_value + sum_{j in S} phi_j`` over the sellers of ``result``
    (tabulated when ``table`` and there are at most ``MAX_TABULATION_PLAYERS`` of them).

    Raises:
        DataError: a value is not a finite number (a method that valued only some sellers, or
            a training that diverged), or ``empty_value`` is not.
    """
    values = np.asarray(result.values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(f"market.value_basis: {result.method!r} gave seller {result.player_names[int(bad[0])]!r} "
                        f"the value {values[bad[0]]}; payments need a finite value for every seller")
    if not np.isfinite(empty_value):
        raise DataError(f"market.value_basis: the buyer's value without any seller is {empty_value}; a number must "
                        "come out (check the buyer's data and training settings)")
    game = AdditiveGame(values, constant=float(empty_value), player_names=list(result.player_names))
    if table and game.n_players <= MAX_TABULATION_PLAYERS:
        return tabulate(game)
    return game

