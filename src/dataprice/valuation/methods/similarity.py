"""Gradient-similarity screening (DVGS-style): how each seller's gradients point over training.

Evans et al., "Data Valuation with Gradient Similarity" (DVGS), score a training example by
the cosine between its loss gradient and the validation gradient, averaged over training;
LESS (Xia et al.) does the same with LoRA gradients. Here the score of an example is its
mean over the steps of one SGD run (the in-run training of :mod:`dataprice.valuation.inrun`,
same seed and batches) of ``cos(-g_i, grad U)``: +1 when a step on the example alone moves
the parameters straight up the validation utility, -1 when straight down. A seller's score
is the mean over its examples, so it does not grow with the seller's size.

**Not a semivalue.** The scores do not add up to any utility change (no efficiency), and a
seller's score ignores how much data it has. They screen data (flipped labels, off-task
sources), and are not a basis for payment: reports do not quote them as a seller's value.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from dataprice.valuation.game import Game
from dataprice.valuation.methods.base import MethodSpec, register_method
from dataprice.valuation.methods.inrun import InRunRun, InRunRunSpec
from dataprice.valuation.result import ValuationResult


class GradientSimilaritySpec(InRunRunSpec):
    method: Literal["gradient_similarity"]
    #: compare count-sketch projections of the gradients (LESS-style) with this many
    #: coordinates instead of the gradients themselves (None: exact cosines)
    projection_dim: Annotated[int, Field(ge=1, le=1_000_000)] | None = None

    def requires(self) -> frozenset[str]:
        return super().requires() | {"inrun:similarity"} | ({"inrun:projection"} if self.projection_dim else set())


@register_method
class GradientSimilarity(InRunRun):
    """Per-seller mean gradient-similarity score of one training run (screening, not payment)."""

    name = "gradient_similarity"
    Spec: ClassVar[type[MethodSpec]] = GradientSimilaritySpec
    is_semivalue = False

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> GradientSimilarity:
        return cls(projection_dim=spec.projection_dim, **spec.run_options(), seed=seed, progress=progress)

    def __init__(self, *, projection_dim: int | None = None, **run: Any) -> None:
        super().__init__(**run)
        self.projection_dim = projection_dim

    def fit(self, game: Game) -> GradientSimilarity:
        trace = self._train(game, order=1, similarity=True, projection_dim=self.projection_dim)
        if trace.similarity is None:
            raise TypeError(f"the {type(game).__name__} in-run training does not compute gradient similarity")
        sums = np.bincount(trace.owners, weights=trace.similarity, minlength=game.n_players)
        counts = np.bincount(trace.owners, minlength=game.n_players)
        scores = np.divide(sums, counts, out=np.full(game.n_players, np.nan), where=counts > 0)
        result = ValuationResult.exact(
            scores, game.player_names, self.name, n_evaluations=0,
            note=("mean cosine of each example's descent direction with the validation-utility gradient over one "
                  f"training run (seed {trace.seed}, {trace.steps} steps): a screening score in [-1, 1], not a "
                  "semivalue and not a payment basis"),
            semivalue=False, steps=trace.steps, training_seed=trace.seed, model_trainings=1,
            projection_dim=self.projection_dim,
        )
        self._result = replace(result, seed=self.seed)
        return self
