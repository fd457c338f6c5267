"""The single-winner buyer: one query, candidate documents, the best value minus price wins.

Document values are given (``values``) or drawn once per scenario (``value_distribution``);
the game is ``v(S) = max_{j in S} value_j`` (the buyer keeps the best document it can buy).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from dataprice.buyers.base import BuildContext, BuiltTask, Buyer, register_buyer
from dataprice.rng import Stream, child_rng
from dataprice.specs import CostDistribution, NonNegativeFloat, PositiveFloat


@register_buyer
class SingleWinnerBuyer(Buyer):
    """A buyer who takes the one document with the best value minus price."""

    task: Literal["single_winner"]
    value_per_quality: PositiveFloat = 1.0
    values: list[NonNegativeFloat] | None = None
    value_distribution: CostDistribution = Field(
        default_factory=lambda: CostDistribution(distribution="uniform", low=0.0, high=1.0)
    )

    label: ClassVar[str] = "a buyer who takes the single document with the best value minus price"

    def problems(self, scenario: Any) -> Iterable[str]:
        n = scenario.sellers.count
        if self.values is not None and len(self.values) != n:
            yield f"buyer.values: {len(self.values)} values for {n} sellers; give one value per seller"

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.single_winner.game import SingleWinnerGame

        n = context.scenario.sellers.count
        if self.values is not None:
            doc_values = np.asarray(self.values, dtype=np.float64)
        else:  # drawn once per scenario: the same documents in every replicate
            doc_values = self.value_distribution.draw(n, child_rng(context.scenario.seed, Stream.DOCUMENT_VALUES))
        doc_values = doc_values * self.value_per_quality
        contributions = pd.DataFrame({"seller": context.names, "document_value": doc_values})
        return BuiltTask(SingleWinnerGame(doc_values, context.names), contributions)
