"""A buyer whose value is a power of the quality it buys: ``v(S) = k (sum_{j in S} q_j)^alpha``
(``alpha < 1``: diminishing returns; ``alpha > 1``: the sellers' data complement each other)."""

from typing import Annotated, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from dataprice.buyers import BuildContext, BuiltTask, Buyer, register_buyer
from dataprice.specs import PositiveFloat
from dataprice.valuation.game import Game


class ConcaveGame(Game):
    def __init__(self, quality, alpha, scale, names):
        super().__init__(len(quality), names)
        self.quality, self.alpha, self.scale = np.asarray(quality), alpha, scale

    def value_function(self, coalitions):
        return self.scale * (coalitions @ self.quality) ** self.alpha


@register_buyer
class QualityPowerBuyer(Buyer):
    task: Literal["quality_power"]
    value_per_quality: PositiveFloat = 10.0
    quality: list[PositiveFloat]  # one per seller
    alpha: Annotated[float, Field(gt=0.0, le=3.0)] = 0.5

    label: ClassVar[str] = "a buyer whose value is a power of the total quality it buys"

    def problems(self, scenario):
        if len(self.quality) != scenario.sellers.count:
            yield f"buyer.quality: {len(self.quality)} values for {scenario.sellers.count} sellers"

    def build(self, context: BuildContext) -> BuiltTask:
        game = ConcaveGame(self.quality, self.alpha, self.value_per_quality, context.names)
        return BuiltTask(game, pd.DataFrame({"seller": context.names, "quality": self.quality}))
