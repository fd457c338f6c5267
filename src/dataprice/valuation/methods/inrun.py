"""In-Run Data Shapley as a valuation method: seller values from the buyer's one training run.

The buyer trains once by minibatch steps; each step's change in validation utility is
split among the batch's examples by the closed-form Shapley values of its second-order
Taylor expansion (:mod:`dataprice.valuation.inrun`, Wang et al., "Data Shapley in One
Training Run"). A seller's value is the sum over its examples, times the buyer's value per
unit of quality. The utility is the buyer's differentiable validation utility (the mean
validation log-likelihood for the classifier), not the accuracy its other games measure,
so these values need not sum to ``v(N) - v(empty)`` of the coalition game: they sum to the
run's utility change minus the reported Taylor remainder. They value the data for *this*
run (its seed, order and batches are recorded), not for a retraining on a coalition.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Literal, cast

import numpy as np
from pydantic import PositiveFloat, PositiveInt

from dataprice.valuation.game import Game
from dataprice.valuation.methods.base import MethodSpec, ValuationMethod, register_method
from dataprice.valuation.protocols import InRunTrainable
from dataprice.valuation.result import ValuationResult


class InRunRunSpec(MethodSpec):
    """The in-run training's settings, shared by the methods that read one run (None: the
    buyer's own)."""

    epochs: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    learning_rate: PositiveFloat | None = None
    validation_batch: PositiveInt | None = None  # validation points drawn per step (None: all)

    def requires(self) -> frozenset[str]:
        """``inrun``, and ``inrun:settings`` when the run's own settings are given."""
        given = any(v is not None for v in (self.epochs, self.batch_size, self.learning_rate))
        return frozenset({"inrun", "inrun:settings"} if given else {"inrun"})

    def run_options(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "validation_batch": self.validation_batch}


class InRunRun(ValuationMethod):
    """What the methods reading one in-run training share: its settings, and the run.

    Args:
        epochs, batch_size, learning_rate: the run's settings (None: the buyer's own).
        validation_batch: validation points drawn afresh per step for ``U`` (None: all of
            them); unbiased per-step values at a cost independent of the validation set.
        seed: seed of the run (batch order, initialisation).
    """

    uses_buyer_game = True
    reads_coalitions = False

    def __init__(self, *, epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None, validation_batch: int | None = None, seed: int = 0,
                 progress: bool = False) -> None:
        super().__init__()
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.validation_batch, self.seed, self.progress = validation_batch, int(seed), progress
        self.trace: Any = None

    def _train(self, game: Game, *, order: int, similarity: bool = False, projection_dim: int | None = None) -> Any:
        """The buyer's one in-run training (kept as :attr:`trace`)."""
        if not isinstance(game, InRunTrainable):
            raise TypeError(
                f"{self.name} needs a buyer that trains by steps (the classifier's own model, the DPO buyer with "
                f"LoRA, or the federated buyer), got {type(game).__name__}"
            )
        self.trace = game.inrun_trace(order=order, seed=self.seed, epochs=self.epochs, batch_size=self.batch_size,
                                      learning_rate=self.learning_rate, validation_batch=self.validation_batch,
                                      similarity=similarity, projection_dim=projection_dim, progress=self.progress)
        return self.trace


class InRunShapleySpec(InRunRunSpec):
    method: Literal["inrun_shapley"]
    order: Literal[1, 2] = 2
    #: money per unit of the in-run utility (None: the buyer's value_per_quality, which is set
    #: for its declared utility, e.g. accuracy, not for the validation log-likelihood)
    value_per_unit: PositiveFloat | None = None

    def requires(self) -> frozenset[str]:
        return super().requires() | ({"inrun:second_order"} if self.order == 2 else set())


@register_method
class InRunShapley(InRunRun):
    """Per-seller In-Run Data Shapley values of one training run of the buyer's model.

    Args:
        order: 1 (first-order terms: the gradient dot products) or 2 (plus each batch's
            pairwise interactions through the validation Hessian).
        value_per_unit: money per unit of the in-run utility (None: the buyer's
            ``value_per_quality``).
        **run: the run's settings (:class:`InRunRun`).
    """

    name = "inrun_shapley"
    Spec: ClassVar[type[MethodSpec]] = InRunShapleySpec

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> InRunShapley:
        return cls(order=spec.order, value_per_unit=spec.value_per_unit, **spec.run_options(), seed=seed,
                   progress=progress)

    def __init__(self, *, order: int = 2, value_per_unit: float | None = None, **run: Any) -> None:
        super().__init__(**run)
        self.order = order
        self.value_per_unit = value_per_unit

    def fit(self, game: Game) -> InRunShapley:
        trace = self._train(game, order=self.order)
        scale = self.value_per_unit or cast(InRunTrainable, game).value_per_quality  # _train checked the protocol
        result = ValuationResult.exact(
            np.asarray(trace.seller_values(), dtype=np.float64) * scale, game.player_names, self.name, n_evaluations=0,
            note=(f"in-run Shapley, order {trace.order}, of one training run (seed {trace.seed}, {trace.steps} steps): "
                  "sums of per-example splits of each step's validation-utility change"),
            order=trace.order, steps=trace.steps, training_seed=trace.seed, model_trainings=1, value_per_unit=scale,
            utility_change=trace.utility_change * scale, taylor_remainder=trace.remainder * scale,
            validation_points=trace.validation_points, utility=trace.extra.get("utility", ""),
            # per example, in the buyer's order of its training examples (a pairs file's rows)
            example_values=(np.asarray(trace.values, dtype=np.float64) * scale).tolist(),
            example_owners=np.asarray(trace.owners, dtype=np.int64).tolist(),
        )
        self._result = replace(result, seed=self.seed)
        return self
