"""What a valuation method may need from a buyer's game beyond ``v(S)``, as protocols.

Most methods only evaluate coalitions. Two read more of the buyer:

* :class:`NearestNeighbours` -- KNN-Shapley's closed form reads the training points'
  labels, owners and neighbour order (capability ``knn``);
* :class:`Unlearnable` -- Unlearning Shapley measures ``v(S)`` by removing data from one
  trained model (capabilities ``unlearning:newton`` and ``unlearning:gradient_ascent``);
* :class:`InRunTrainable` -- In-Run Data Shapley splits each step of one training run among
  the batch's examples (capability ``inrun``).

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
    "inrun": "one training run whose steps are split among the batch's examples (In-Run Data Shapley)",
    "inrun:similarity": "gradient-similarity scores from its in-run training (the classifier's)",
    "inrun:second_order": "second-order in-run terms (a validation Hessian-vector product per step; order: 1 needs none)",
    "inrun:settings": "an in-run training of its own with the method's epochs, batch_size and learning_rate (the "
                      "federated buyer values its stored run: leave them out)",
    "inrun:projection": "projected gradients for gradient similarity (projection_dim)",
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


@runtime_checkable
class InRunTrainable(Protocol):
    """A game whose buyer can train once by minibatch steps and record In-Run Shapley values
    (:mod:`dataprice.valuation.inrun`)."""

    n_players: int
    player_names: tuple[str, ...]
    value_per_quality: float

    def inrun_trace(self, *, order: int, seed: int, epochs: int | None = None, batch_size: int | None = None,
                    learning_rate: float | None = None, validation_batch: int | None = None,
                    similarity: bool = False, projection_dim: int | None = None, progress: bool = False) -> Any:
        """Train once (``None``: the buyer's own setting; ``validation_batch``: validation
        points drawn per step, None: all; ``similarity``: also gradient-similarity scores,
        of gradients projected to ``projection_dim`` coordinates when given) and
        return the
        :class:`~dataprice.valuation.inrun.InRunTrace` of per-example values."""


@runtime_checkable
class MultiUtility(Protocol):
    """A game whose buyer could as well have measured quality another way (preference
    accuracy or mean ``log sigma`` of the margin; hit@k or MRR): the same data and money
    scale under each utility it offers, for the report's utility robustness
    (:mod:`dataprice.valuation.robustness`)."""

    n_players: int
    player_names: tuple[str, ...]

    def utility_variants(self) -> dict[str, Any]:
        """``{utility name: game}``, the declared utility first (this game itself); empty
        when the game cannot be measured another way (e.g. nothing was trained)."""
