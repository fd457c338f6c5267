"""KNN-Shapley in closed form (Jia et al., 2019, "Efficient task-specific data valuation
for nearest neighbor algorithms").

For the soft-KNN utility with ``K`` neighbours and one validation point, sort training
points by distance ``alpha_1, ..., alpha_N`` (nearest first). Then

    s_{alpha_N} = 1[y_{alpha_N} = y] / N
    s_{alpha_i} = s_{alpha_{i+1}} + (1[y_{alpha_i} = y] - 1[y_{alpha_{i+1}} = y]) / K * min(K, i) / i

and the point values are averaged over validation points. This is exact for the
*point-level* game. A seller's value here is the sum of its points' values, which equals
the seller-level Shapley value when every seller owns one point and is otherwise the
standard additive approximation (cheap: ``O(N log N)`` per validation point, no game
evaluations).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dataprice.valuation.game import Game
from dataprice.valuation.methods.base import MethodSpec, ValuationMethod, register_method
from dataprice.valuation.protocols import NearestNeighbours
from dataprice.valuation.result import ValuationResult


def knn_point_values(game: NearestNeighbours) -> NDArray[np.float64]:
    """Exact Shapley value of every training point in the soft-KNN game (money units)."""
    y_train, y_val, _ = game.knn_labels()
    order = game.neighbor_order()
    n_val, n = order.shape
    k = game.k_neighbors
    ranks = np.arange(1, n + 1)
    factor = np.minimum(k, ranks[:-1]) / ranks[:-1] / k
    values = np.zeros(n)
    for q in range(n_val):
        match = (y_train[order[q]] == y_val[q]).astype(np.float64)
        sv = np.empty(n)
        sv[-1] = match[-1] / n
        # s_i = s_{i+1} + (m_i - m_{i+1}) * f_i, accumulated from the far end
        steps = (match[:-1] - match[1:]) * factor
        sv[:-1] = sv[-1] + np.cumsum(steps[::-1])[::-1]
        values[order[q]] += sv
    return game.value_per_quality * values / n_val


class KNNShapleySpec(MethodSpec):
    method: Literal["knn_shapley"]

    def requires(self) -> frozenset[str]:
        return frozenset({"knn"})


@register_method
class KNNShapley(ValuationMethod):
    """Seller values as the sum of closed-form KNN-Shapley values of their points.

    Defined for games with nearest-neighbour data (:class:`~dataprice.valuation.protocols.NearestNeighbours`,
    the classifier buyer's with any model: the closed form always uses the soft-KNN utility
    with the game's ``k_neighbors``).
    """

    name = "knn_shapley"
    Spec = KNNShapleySpec
    uses_buyer_game = True

    def fit(self, game: Game) -> KNNShapley:
        if not isinstance(game, NearestNeighbours):
            raise TypeError(
                f"knn_shapley needs a game with nearest-neighbour data (the classifier buyer's), "
                f"got {type(game).__name__}; use tmc_shapley or exact_shapley for other buyers"
            )
        point_values = knn_point_values(game)
        seller_values = np.bincount(game.knn_labels()[2], weights=point_values, minlength=game.n_players).astype(
            np.float64, copy=False
        )
        self._result = ValuationResult.exact(
            seller_values, game.player_names, self.name, n_evaluations=0,
            note="sum of point-level KNN-Shapley values (Jia et al. 2019)",
        )
        return self
