"""What a valuation method may need from a buyer's game beyond ``v(S)``, as protocols.

Most methods only evaluate coalitions. Two read more of the buyer:

* :class:`NearestNeighbours` -- KNN-Shapley's closed form reads the training points'
  labels, owners and neighbour order (capability ``knn``);
* :class:`Unlearnable` -- Unlearning Shapley measures ``v(S)`` by removing data from one
  trained model (capabilities ``unlearning:newton`` and ``unlearning:gradient_ascent``).

A buyer declares what its game provides in ``Buyer.capabilities()``; a method's spec
declares what it needs in ``MethodSpec.requires()``; the scenario check compares the two,
and the method checks the game against the protocol when it is fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

#: What each capability means (for error messages).
CAPABILITIES = {
    "knn": "the buyer's training points and labels (KNN-Shapley's closed form)",
    "unlearning:newton": "removing sellers' data from one trained model by a Newton step",
    "unlearning:gradient_ascent": "removing sellers' data from one trained model by gradient ascent",
}


@runtime_checkable
class NearestNeighbours(Protocol):
    """A game whose quality is a K-nearest-neighbour classifier's (soft-KNN utility)."""

    n_players: int
    player_names: tuple[str, ...]
    k_neighbors: int
    value_per_quality: float

    def neighbor_order(self) -> NDArray[np.int64]:
        """Per validation point, training point indices from the nearest: ``(n_val, n_train)``."""

    def knn_labels(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """``(y_train, y_val, owners)``: labels, and the seller owning each training point."""


@runtime_checkable
class Unlearnable(Protocol):
    """A game that can measure ``v(S)`` by unlearning the data of the sellers outside ``S``."""

    n_players: int
    player_names: tuple[str, ...]

    def unlearning_game(self, targets: Sequence[int], method: str) -> Any:
        """The game of coalitions of ``targets`` measured by unlearning (the others kept)."""
