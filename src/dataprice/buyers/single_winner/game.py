"""Single-winner selection: the buyer takes the one document with the best value minus price.

As a game over sellers (one document each), ``v(S) = max_{j in S} value_j`` with
``v(empty) = 0``: with prices ``b``, welfare maximisation ``argmax_S v(S) - b(S)`` takes at
most one document, the one with the largest ``value_j - b_j`` if that is positive. The
winner's critical bid (Myerson = VCG) is ``value_w - max(0, max_{k != w} value_k - b_k)``:
its value minus the runner-up's net value. It is the airport game (Littlechild & Owen),
whose Shapley values are known in closed form.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.valuation.game import Game


class SingleWinnerGame(Game):
    """``v(S) = max_{j in S} value_j`` (0 for the empty coalition)."""

    def __init__(self, values: Sequence[float] | NDArray[np.float64], player_names: Sequence[str] | None = None) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        if np.any(self.values < 0):
            raise ValueError("document values must be non-negative")
        super().__init__(self.values.shape[0], player_names)

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return np.max(np.where(coalitions, self.values, 0.0), axis=1)


def critical_prices(values: NDArray[np.float64], prices: NDArray[np.float64]) -> tuple[int | None, float]:
    """The winner and its critical price ``value_w - max(0, runner-up's value - price)``."""
    net = np.asarray(values) - np.asarray(prices)
    if net.max() <= 0:
        return None, 0.0
    winner = int(np.argmax(net))
    others = np.delete(net, winner)
    runner_up = max(0.0, float(others.max())) if others.size else 0.0
    return winner, float(values[winner] - runner_up)
