"""Unlearning Shapley: permutation Shapley where every coalition is measured by unlearning.

Works on any game that offers ``unlearning_game(targets, method)``: the classifier buyer
(Newton-step removal or gradient ascent) and the DPO buyer (gradient ascent on the DPO loss
of the removed pairs).

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

    def fit(self, game: Game, *, resume_from: ValuationResult | None = None, **options) -> UnlearningShapley:
        """As :meth:`PermutationShapley.fit` (``options``: ``engine``, ``window``) on the
        game's unlearning counterpart."""
        if not hasattr(game, "unlearning_game"):
            raise TypeError(
                f"unlearning_shapley needs a buyer that can unlearn (the classifier or DPO buyer), "
                f"got {type(game).__name__}"
            )
        targets = np.arange(game.n_players) if self.targets is None else np.asarray(self.targets)
        unlearning_game = game.unlearning_game(targets=targets.tolist(), method=self.unlearning)
        super().fit(CachedGame(unlearning_game), resume_from=resume_from, **options)
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
                "unlearning_steps": getattr(unlearning_game, "n_unlearning_steps", None),
                "unlearning": self.unlearning, "targets": targets.tolist(),
            },
        )
        return self
