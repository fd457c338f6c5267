"""Asymmetric data Shapley: credit that respects an order between groups of sellers.

Sellers come in ordered groups ``G_1, ..., G_T`` (originals before derivatives, first-stage
before later-stage data, earlier entrants before later ones). Only permutations consistent
with the order count (Frye et al. 2020, asymmetric Shapley values; Zheng et al. 2025 for
data): every member of ``G_t`` arrives after all of ``D_<t = G_1 ∪ ... ∪ G_{t-1}``, in a
uniformly random order within ``G_t``. Hence for ``i in G_t``

    ``phi_i = sum_{S ⊆ G_t \\ {i}} |S|! (|G_t| - |S| - 1)! / |G_t|! [v(D_<t ∪ S ∪ {i}) - v(D_<t ∪ S)]``,

the Shapley value of ``i`` in the group game ``v_t(S) = v(D_<t ∪ S)``, and each group's
values sum to ``v(D_<=t) - v(D_<t)``. A seller who copies an earlier seller's data gets
only what it adds on top of the original. With a single group this is the Shapley value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from dataprice.specs import Index
from dataprice.valuation import folds
from dataprice.valuation.game import Game, TabulatedGame, tabulate
from dataprice.valuation.methods._montecarlo import MonteCarloSpec
from dataprice.valuation.methods.base import MethodSpec, ValuationMethod, register_method
from dataprice.valuation.methods.exact import semivalues_from_table, shapley_coefficient
from dataprice.valuation.methods.permutation import PermutationShapley, Truncation
from dataprice.valuation.result import ValuationResult


def group_problems(groups: list[list[int]], n_players: int, method: str, where: str) -> Iterable[str]:
    """What is wrong with ``groups`` as ordered groups of ``n_players`` sellers."""
    if not groups:
        yield (f"{where}.groups: method {method!r} needs ordered groups of seller indices, e.g. [[0, 1], [2]]")
    elif sorted(j for g in groups for j in g) != list(range(n_players)) or any(not g for g in groups):
        yield f"{where}.groups: the groups must be non-empty and contain each seller 0..{n_players - 1} exactly once"


class ExactAsymmetricShapleySpec(MethodSpec):
    method: Literal["exact_asymmetric_shapley"]
    groups: list[list[Index]] = []  # ordered groups of seller indices

    def problems(self, n_sellers: int, where: str) -> Iterable[str]:
        return group_problems(self.groups, n_sellers, self.method, where)


class AsymmetricShapleySpec(MonteCarloSpec):
    method: Literal["asymmetric_shapley"]
    groups: list[list[Index]] = []
    truncation_rtol: Truncation = 0.0

    def problems(self, n_sellers: int, where: str) -> Iterable[str]:
        return group_problems(self.groups, n_sellers, self.method, where)


def check_groups(groups: Sequence[Sequence[int]], n_players: int) -> list[np.ndarray]:
    """Groups as arrays; they must partition ``0..n_players-1`` and be non-empty."""
    arrays = [np.asarray(list(g), dtype=np.int64) for g in groups]
    if any(a.size == 0 for a in arrays):
        raise ValueError("every group needs at least one seller")
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    if sorted(flat.tolist()) != list(range(n_players)):
        raise ValueError(f"groups must contain each of the {n_players} sellers exactly once, got {[a.tolist() for a in arrays]}")
    return arrays


@register_method
class ExactAsymmetricShapley(ValuationMethod):
    """Exact asymmetric Shapley: per group, exact Shapley of the group game on the table.

    Args:
        groups: ordered groups of seller indices (a partition of all sellers).
    """

    name = "exact_asymmetric_shapley"
    Spec: ClassVar[type[MethodSpec]] = ExactAsymmetricShapleySpec
    needs_tabulation = True

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> ExactAsymmetricShapley:
        return cls(groups=spec.groups, progress=progress)

    def __init__(self, *, groups: Sequence[Sequence[int]], progress: bool = False) -> None:
        super().__init__()
        self.groups = [list(map(int, g)) for g in groups]
        self.progress = progress

    def fit(self, game: Game) -> ExactAsymmetricShapley:
        groups = check_groups(self.groups, game.n_players)
        before = game.n_evaluations
        table = game if isinstance(game, TabulatedGame) else tabulate(game, progress=self.progress)
        spent = 0 if isinstance(game, TabulatedGame) else game.n_evaluations - before
        phi = np.zeros(game.n_players)
        base = np.int64(0)
        for members in groups:
            full = base | folds.member_masks(members)
            phi[members] = semivalues_from_table(TabulatedGame(table.values[full]), shapley_coefficient)
            base = base | np.bitwise_or.reduce(np.int64(1) << members)
        self._result = ValuationResult.exact(
            phi, table.player_names, self.name, n_evaluations=spent or 2**table.n_players,
            groups=[g.tolist() for g in groups],
        )
        return self


@register_method
class AsymmetricPermutationShapley(PermutationShapley):
    """Monte Carlo asymmetric Shapley: permutations shuffled within groups, groups in order.

    Everything else (truncation, stopping, budgets, resume) is :class:`PermutationShapley`'s.
    Truncation stays valid: once a prefix's value is close to ``v(N)``, later players'
    marginals are taken as 0 whatever their group.
    """

    name = "asymmetric_shapley"
    Spec: ClassVar[type[MethodSpec]] = AsymmetricShapleySpec

    @classmethod
    def from_spec(cls, spec: Any, *, seed: int, progress: bool = False) -> AsymmetricPermutationShapley:
        return cls(**spec.sampling_options(seed, progress), truncation_rtol=spec.truncation_rtol, groups=spec.groups)

    def __init__(self, *, groups: Sequence[Sequence[int]], **kwargs) -> None:
        if kwargs.get("paired"):
            raise ValueError("asymmetric Shapley cannot pair permutations: a reversed order breaks the groups' order")
        super().__init__(**kwargs)
        self.groups = [list(map(int, g)) for g in groups]

    def fit(self, game: Game, *, resume_from: ValuationResult | None = None, **options) -> AsymmetricPermutationShapley:
        """As :meth:`PermutationShapley.fit` (``options``: ``engine``, ``window``)."""
        self._groups = check_groups(self.groups, game.n_players)
        super().fit(game, resume_from=resume_from, **options)
        self.result.extra["groups"] = [g.tolist() for g in self._groups]
        return self

    def _draw_permutations(self, rng: np.random.Generator, k: int, n: int) -> np.ndarray:
        """``k`` permutations consistent with the groups: group ``G_t``'s members in the
        order of the argsort of their columns of ``rng.random((k, n))`` (the columns after
        those of ``G_1 ... G_{t-1}``), groups in order. Row ``i`` of the draw makes
        permutation ``i``, so the first permutations of a larger batch are a smaller batch's."""
        keys = rng.random((k, n))
        parts, start = [], 0
        for members in self._groups:
            parts.append(members[np.argsort(keys[:, start : start + members.size], axis=1)])
            start += members.size
        return np.concatenate(parts, axis=1)
