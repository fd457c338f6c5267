"""Unlearning Shapley: permutation Shapley where every coalition is measured by unlearning.

One model is trained on all sellers' data; the value of a coalition ``S`` is measured by
removing the data of the sellers outside ``S`` from it (see
:mod:`dataprice.valuation.utilities.unlearning`), never by retraining. Values are estimated
by permutation sampling (truncation, stopping, budgets as :class:`PermutationShapley`).
With ``targets``, only those sellers are valued: the others are always kept and their data
is not touched after the one training run (partial valuation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dataprice.valuation.game import CachedGame, Game
from dataprice.valuation.methods.permutation import PermutationShapley
from dataprice.valuation.result import ValuationResult
from dataprice.valuation.utilities.classifier import ClassifierGame
from dataprice.valuation.utilities.unlearning import UnlearningGame


class UnlearningShapley(PermutationShapley):
    """Monte Carlo Shapley over an :class:`UnlearningGame` built from the classifier buyer.

    Args:
        unlearning: ``newton`` (certified-removal Newton step) or ``gradient_ascent``.
        targets: sellers to value (default: all); the rest stay in every coalition.
        **kwargs: :class:`PermutationShapley` settings (budget, stopping, seed, ...).
    """

    name = "unlearning_shapley"

    def __init__(self, *, unlearning: str = "newton", targets: Sequence[int] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.unlearning = unlearning
        self.targets = None if targets is None else [int(t) for t in targets]

    def fit(self, game: Game, *, resume_from: ValuationResult | None = None) -> UnlearningShapley:
        if not isinstance(game, ClassifierGame):
            raise TypeError(
                f"unlearning_shapley needs the classifier buyer's game, got {type(game).__name__}"
            )
        targets = np.arange(game.n_players) if self.targets is None else np.asarray(self.targets)
        unlearning_game = UnlearningGame(
            game.shards, targets=targets, method=self.unlearning, l2=1.0 / game.regularization,
            value_per_quality=game.value_per_quality,
            player_names=[game.player_names[t] for t in targets],
        )
        super().fit(CachedGame(unlearning_game), resume_from=resume_from)
        partial = self._result
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
                "unlearning": self.unlearning, "targets": targets.tolist(),
            },
        )
        return self
