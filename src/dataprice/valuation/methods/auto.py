"""``shapley``: Shapley values by the method that suits the game's size and shape.

In this order:

* **Exact** when the budget covers the whole table (``2^n`` evaluations at most the budget,
  or at most ``200 n^2`` when only a standard error or a time bounds the run, and ``n`` at
  most 22): every coalition is evaluated once and the values are exact
  (:class:`~dataprice.valuation.methods.exact.ExactShapley`).
* **Paired permutations** (``tmc_shapley`` with ``paired: true``) when the game declares
  itself submodular (``Game.submodular``: coverage), or has more than
  :data:`COALITION_SAMPLING_MAX_PLAYERS` players (the two coalition samplers below keep
  ``n x n`` sums and refit them, memory and time a permutation does not need). With diminishing returns a player's
  marginal contribution falls with its position, so its contributions in a permutation and
  in the reverse one are negatively correlated and their average varies little (antithetic
  sampling).
* Otherwise a coalition-sampling estimator, chosen from the ``2n + 2`` coalitions both
  candidates evaluate first (empty, grand, every singleton and every complement of one),
  which this method evaluates once and hands on (no evaluation is paid twice). Their
  **additivity gap**

      ``g = |sum_i [v({i}) - v(empty)] - sum_i [v(N) - v(N \\ {i})]| / |v(N) - v(empty)|``

  is 0 for an additive game (a singleton's worth equals its leave-one-out worth) and grows
  with interactions: substitutes (saturating accuracy) make singletons sum to many times
  the grand coalition's worth, complements make leave-one-out sum to more. A nearly
  additive game (``g <= ADDITIVITY_GAP``) goes to the kernel regression (:mod:`.kernel`),
  whose additive fit explains most of it; a game with strong interactions to stratified
  sampling (:mod:`.stratified`), whose error does not depend on how well an additive model
  fits, with the buyer's proxy game as control variate where the buyer offers one
  (``Game.proxy_game``: the soft-KNN utility for a trained classifier).

The rules are calibrated on the four games of ``benchmarks/estimators.py`` (gaps: RAG
retrieval 0.30, where the kernel estimator needs the fewest evaluations; classifier 9.9 and
KNN 16.6, where stratified sampling needs 3-10x fewer than the kernel estimator; coverage,
submodular, where paired permutations need 3x fewer than either), so they are measured
rules of thumb, not theorems: every candidate converges on every game, the choice only
decides how fast. The result records the estimator chosen and the gap
(``extra["estimator"]``, ``extra["additivity_gap"]``).
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, Literal

import numpy as np

from dataprice.valuation.game import CachedGame, Game
from dataprice.valuation.methods._coalitions import all_of_size
from dataprice.valuation.methods._montecarlo import (
    MonteCarloMethod,
    MonteCarloSpec,
    default_stopping,
)
from dataprice.valuation.methods.base import MethodSpec, register_method
from dataprice.valuation.methods.exact import ExactShapley
from dataprice.valuation.methods.kernel import KernelShapley
from dataprice.valuation.methods.permutation import PermutationShapley
from dataprice.valuation.methods.stratified import StratifiedShapley
from dataprice.valuation.stopping import EstimationState

#: Games whose additivity gap is at most this go to the kernel regression (module docstring).
ADDITIVITY_GAP = 4.0
#: Largest game valued exactly when the budget covers its table (2^n values in memory).
EXACT_MAX_PLAYERS = 22
#: Largest game given to the coalition samplers (kernel, stratified): they hold ``n x n``
#: sums (8 MB at 1,000 players for the kernel's normal matrix, six times that in strata)
#: and re-read every coalition at each refit, ``O(m n^2)``: 2.1 s and 4.6 s of their own at
#: 300 players and 20,000 evaluations, ten times that at 1,000.
COALITION_SAMPLING_MAX_PLAYERS = 300


class AutoShapleySpec(MonteCarloSpec):
    method: Literal["shapley"]


def additivity_gap(game: Game) -> float:
    """``g`` of the module docstring, from the ``2n + 2`` border coalitions of ``game``."""
    n = game.n_players
    rows = np.concatenate([all_of_size(n, 0), all_of_size(n, n), all_of_size(n, 1), all_of_size(n, n - 1)])
    values = game(rows)
    empty, grand = float(values[0]), float(values[1])
    singles, complements = values[2 : 2 + n] - empty, grand - values[2 + n :]
    total = abs(grand - empty)
    gap = abs(float(singles.sum() - complements.sum()))
    return gap / total if total > 0 else (0.0 if gap == 0 else math.inf)


@register_method
class AutoShapley(MonteCarloMethod):
    """Shapley values, exact or estimated by the estimator that suits the game.

    See the module docstring for the choice. Settings are those of every sampling method
    (``max_evaluations``, ``stderr``, ``max_seconds``, ``batch_size``, ``seed``); the budget
    counts the evaluations of the chosen method, the first ``2n + 2`` included. A
    ``checkpoint`` file is the chosen estimator's (a resumed run evaluates the first ``2n +
    2`` coalitions again to choose, and reads the rest from the file).
    """

    name = "shapley"
    Spec: ClassVar[type[MethodSpec]] = AutoShapleySpec
    default_batch_size = 64

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> AutoShapley:
        return cls(**spec.sampling_options(seed, progress))

    def budget(self, n: int) -> float:
        """The evaluations the stopping rule allows before any is made (``inf``: it stops on
        a standard error or a time only)."""
        criterion = default_stopping(self.stopping, self.max_evaluations, n)
        start = EstimationState(stderr=np.full(n, np.inf), counts=np.zeros(n, dtype=np.int64), n_evaluations=0,
                                started_at=time.monotonic(), values=np.zeros(n))
        return float(criterion.remaining_evaluations(start))

    def exact_fits(self, n: int) -> bool:
        """Exact when ``2^n`` is within the budget; with a budget that only a standard error or
        a time bounds, within the default budget of ``200 n^2`` evaluations."""
        budget = self.budget(n)
        return n <= EXACT_MAX_PLAYERS and 2**n <= (budget if math.isfinite(budget) else 200 * n * n)

    def fit(self, game: Game, *, engine=None, chunk: int = 256) -> AutoShapley:
        n = game.n_players
        common: dict[str, Any] = {"stopping": self.stopping, "max_evaluations": self.max_evaluations, "seed": self.seed,
                  "progress": self.progress, "checkpoint": self.checkpoint, "checkpoint_every": self.checkpoint_every}
        if self.exact_fits(n):
            result = ExactShapley(progress=self.progress).fit(game).result
            result.extra = {**result.extra, "estimator": ExactShapley.name}
        elif game.submodular or n > COALITION_SAMPLING_MAX_PLAYERS:
            result = PermutationShapley(paired=True, **common).fit(game, engine=engine).result
            result.extra = {**result.extra, "estimator": "tmc_shapley (paired)"}
        else:
            primed = CachedGame(game)  # the border evaluated here is not paid again
            gap = additivity_gap(primed) if self.budget(n) >= 2 * n + 2 else math.inf
            inner: KernelShapley | StratifiedShapley
            if gap <= ADDITIVITY_GAP:
                inner = KernelShapley(batch_size=self.batch_size, **common)
            else:
                inner = StratifiedShapley(batch_size=self.batch_size, proxy=True, **common)
            chosen = type(inner)
            result = inner.fit(primed, engine=engine, chunk=chunk).result
            result.extra = {**result.extra, "estimator": chosen.name, "additivity_gap": gap}
        result.method = self.name
        self._result = result
        return self
