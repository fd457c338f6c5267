"""The coverage buyer: it needs ``needs`` kinds of examples, and seller ``j`` covers need
``t`` with probability ``p_jt``; ``v(S) = sum_t w_t (1 - prod_{j in S}(1 - p_jt))``. Cheap
enough for thousands of sellers (a greedy step is one matrix-vector product)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import pandas as pd
from pydantic import Field

from dataprice.buyers.base import BuildContext, BuiltTask, Buyer, register_buyer
from dataprice.rng import Stream, child_rng
from dataprice.specs import PositiveFloat


@register_buyer
class CoverageBuyer(Buyer):
    """A buyer covering its needs from the sellers' data."""

    task: Literal["coverage"]
    value_per_quality: PositiveFloat = 1.0  # money per unit of v (scales every need's weight)
    needs: Annotated[int, Field(ge=1, le=10_000)] = 50
    need_value: PositiveFloat = 10.0
    specialists: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8

    label: ClassVar[str] = "a buyer who values the expected coverage of its needs by the sellers' data"

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.coverage.game import random_coverage

        game = random_coverage(
            len(context.names), self.needs, seed=child_rng(context.seed, Stream.COVERAGE),
            need_value=self.need_value * self.value_per_quality, specialists=self.specialists,
            player_names=context.names,
        )
        contributions = pd.DataFrame({
            "seller": context.names,
            "needs_covered": (game.coverage > 0).sum(axis=1),
            "expected_items": game.coverage.sum(axis=1),
        })
        return BuiltTask(game, contributions)
