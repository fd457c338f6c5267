"""Unlearning Shapley: permutation Shapley where every coalition is measured by unlearning.

Works on any game that offers ``unlearning_game(targets, method)``: the classifier buyer
(Newton-step removal or gradient ascent) and the DPO buyer (gradient ascent on the DPO loss
of the removed pairs).

One model is trained on all sellers' data; the value of a coalition ``S`` is measured by
removing the data of the sellers outside ``S`` from it (see
:mod:`dataprice.buyers.classifier.unlearning`), never by retraining. Values are estimated
by permutation sampling (truncation, stopping, budgets as :class:`PermutationShapley`).
With ``targets``, only those sellers are valued: the others are always kept and their data
is not touched after the one training run (partial valuation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from dataprice.specs import Index
from dataprice.valuation.game import CachedGame, Game
from dataprice.valuation.methods._montecarlo import MonteCarloSpec
from dataprice.valuation.methods.base import MethodSpec, register_method
from dataprice.valuation.methods.permutation import PermutationShapley, Truncation
from dataprice.valuation.protocols import Unlearnable
from dataprice.valuation.result import ValuationResult


class UnlearningShapleySpec(MonteCarloSpec):
    method: Literal["unlearning_shapley"]
    truncation_rtol: Truncation = 0.0
    unlearning: Literal["newton", "gradient_ascent"] = "newton"
    targets: list[Index] | None = None  # sellers to value (default: all)

    def requires(self) -> frozenset[str]:
        return frozenset({f"unlearning:{self.unlearning}"})

    def problems(self, n_sellers: int, where: str) -> Iterable[str]:
        bad = [j for j in (self.targets or []) if j >= n_sellers]
        if bad:
            yield f"{where}.targets: seller index {bad[0]} out of range; allowed 0..{n_sellers - 1}"


@register_method
class UnlearningShapley(PermutationShapley):
    """Monte Carlo Shapley over an :class:`UnlearningGame` built from the classifier buyer.

    Args:
        unlearning: ``newton`` (certified-removal Newton step) or ``gradient_ascent``.
        targets: sellers to value (default: all); the rest stay in every coalition.
        **kwargs: :class:`PermutationShapley` settings (budget, stopping, seed, ...).
    """

    name = "unlearning_shapley"
    Spec: ClassVar[type[MethodSpec]] = UnlearningShapleySpec
    uses_buyer_game = True

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> UnlearningShapley:
        return cls(**spec.sampling_options(seed, progress), truncation_rtol=spec.truncation_rtol,
                   unlearning=spec.unlearning, targets=spec.targets)

    def __init__(self, *, unlearning: str = "newton", targets: Sequence[int] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.unlearning = unlearning
        self.targets = None if targets is None else [int(t) for t in targets]

    def fit(self, game: Game, *, resume_from: ValuationResult | None = None, **options) -> UnlearningShapley:
        """As :meth:`PermutationShapley.fit` (``options``: ``engine``, ``window``) on the
        game's unlearning counterpart."""
        if not isinstance(game, Unlearnable):
            raise TypeError(
                f"unlearning_shapley needs a buyer that can unlearn (the classifier or DPO buyer), "
                f"got {type(game).__name__}"
            )
        targets = np.arange(game.n_players) if self.targets is None else np.asarray(self.targets)
        unlearning_game = game.unlearning_game(targets=targets.tolist(), method=self.unlearning)
        super().fit(CachedGame(unlearning_game), resume_from=resume_from, **options)
        partial = self.result
        values = np.full(game.n_players, np.nan)
        variances = np.zeros(game.n_players)
        counts = np.zeros(game.n_players, dtype=np.int64)
        values[targets], variances[targets], counts[targets] = partial.values, partial.variances, partial.counts
        self._result = ValuationResult(
            values=values, variances=variances, counts=counts, player_names=game.player_names,
            method=self.name, n_evaluations=partial.n_evaluations, converged=partial.converged,
            seed=self.seed, n_batches=partial.n_batches,
            extra={
                **partial.extra, "model_trainings": 1, "unlearning_runs": unlearning_game.n_unlearning_runs,
                "unlearning_steps": getattr(unlearning_game, "n_unlearning_steps", None),
                "unlearning": self.unlearning, "targets": targets.tolist(),
            },
        )
        return self
