"""Leave-one-out: ``LOO_j = v(N) - v(N \\ {j})`` (n + 1 game evaluations)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from dataprice.valuation.game import Game
from dataprice.valuation.methods.base import MethodSpec, ValuationMethod, register_method
from dataprice.valuation.result import ValuationResult


class LOOSpec(MethodSpec):
    method: Literal["loo"]


@register_method
class LeaveOneOut(ValuationMethod):
    """Each player's marginal contribution to the grand coalition.

    ``LOO_j = v(N) - v(N \\ {j})``. Cheap (``n + 1`` evaluations) but blind to redundancy:
    two sellers holding the same data both get 0.
    """

    name = "loo"
    estimates = "leave_one_out"
    Spec = LOOSpec

    def fit(self, game: Game) -> LeaveOneOut:
        n = game.n_players
        coalitions = np.ones((n + 1, n), dtype=bool)
        coalitions[np.arange(n), np.arange(n)] = False  # row j: N \ {j}; last row: N
        values = game(coalitions)
        self._result = ValuationResult.exact(
            values[n] - values[:n], game.player_names, self.name, n_evaluations=n + 1
        )
        return self
