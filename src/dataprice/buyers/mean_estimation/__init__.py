"""Mean-estimation buyers in the continuous market (the published model): buyers combine the
sellers' noisy signals with weights ``W = B (C + V + A/kappa)^{-1}``, ``A`` the reported costs;
a seller's quantity is ``f_j(W) = sum_i w_ij^2`` and its cost ``c_j f_j(W)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from dataprice.buyers.base import BuildContext, BuiltTask, Buyer, register_buyer
from dataprice.specs import PositiveFloat, within

#: Largest continuous market for which Shapley payments (2^n allocations) are allowed.
MAX_CONTINUOUS_SHAPLEY = 16


@register_buyer
class MeanEstimationBuyer(Buyer):
    """Buyers estimating means from sellers' noisy signals (continuous market)."""

    task: Literal["mean_estimation"]
    value_per_quality: PositiveFloat = 10.0
    n_buyers: Annotated[int, within(1, 1000)] = 5
    dim: Annotated[int, within(1, 10_000)] | None = None
    noise: PositiveFloat | list[PositiveFloat] = 0.5
    correlation: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5

    label: ClassVar[str] = "mean-estimation buyers combining the sellers' noisy signals (continuous market)"
    market_kind: ClassVar[str] = "continuous"

    def problems(self, scenario: Any) -> Iterable[str]:
        n = scenario.sellers.count
        if isinstance(self.noise, list) and len(self.noise) != n:
            yield f"buyer.noise: {len(self.noise)} noise levels for {n} sellers; give one per seller or a number"
        if "shapley" in scenario.market.payment_rules and n > MAX_CONTINUOUS_SHAPLEY:
            yield (f"market.payment_rules: 'shapley' in the continuous market needs at most "
                   f"{MAX_CONTINUOUS_SHAPLEY} sellers (got {n})")

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.mean_estimation.task import (
            MeanEstimationGame,
            make_mean_estimation_task,
        )
        from dataprice.market.kinds import ContinuousMarket

        task = make_mean_estimation_task(
            len(context.names), self.n_buyers, dim=self.dim, noise=self.noise, correlation=self.correlation,
            value_per_quality=self.value_per_quality, seed=context.seed,
        )
        contributions = pd.DataFrame({"seller": context.names, "noise_variance": task.noise})
        market = ContinuousMarket(task, reserve=context.scenario.market.reserve)
        return BuiltTask(MeanEstimationGame(task, context.costs, context.names), contributions, market)
