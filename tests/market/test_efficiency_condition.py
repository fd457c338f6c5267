"""The buyer-and-sellers condition (dataprice.market.conditions) on random instances, by brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataprice.market import SubsetMarket, settle
from dataprice.market.conditions import buyer_condition, submodularity_gap
from dataprice.market.metrics import market_span, subset_settler, truthfulness_audit
from dataprice.valuation.game import TabulatedGame

seeds = st.integers(0, 2**32 - 1)


def _bits(n: int) -> np.ndarray:
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool)


def submodular_table(n: int, rng: np.random.Generator) -> TabulatedGame:
    """Weighted coverage of random needs plus a concave function of a random additive score,
    plus a constant v(empty): a random submodular (not necessarily monotone-additive) game."""
    bits = _bits(n)
    needs = rng.random((n, 6)) < 0.4
    weights = rng.uniform(0, 4, 6)
    covered = (bits.astype(int) @ needs.astype(int)) > 0
    score = bits @ rng.uniform(0, 3, n)
    return TabulatedGame(covered @ weights + 4 * np.sqrt(score) + rng.uniform(0, 2))


def complementary_table(n: int, rng: np.random.Generator) -> TabulatedGame:
    """A game with complements: the square of an additive score (supermodular)."""
    return TabulatedGame((_bits(n) @ rng.uniform(0, 2, n)) ** 2)


def _best_welfare(table: TabulatedGame, costs: np.ndarray) -> float:
    return max(table.values[m] - _bits(table.n_players)[m] @ costs for m in range(2**table.n_players))


def test_gap_is_zero_on_additive_positive_on_complements_negative_on_coverage():
    assert submodularity_gap(_bits(4) @ np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.0)
    assert submodularity_gap(np.array([0.0, 0.0, 0.0, 10.0])) == pytest.approx(10.0)
    assert submodularity_gap(np.array([0.0, 5.0, 5.0, 5.0])) == pytest.approx(-5.0)  # substitutes


def test_the_bought_sets_table_renumbers_the_members():
    """The condition reads the table of the bought set (TabulatedGame.restrict)."""
    table = TabulatedGame(np.arange(8, dtype=float))  # v(mask) = mask
    # members {0, 2}: sub-masks 0, {0}, {2}, {0, 2} -> full masks 0, 1, 4, 5
    assert table.restrict(np.flatnonzero(np.array([True, False, True]))).values.tolist() == [0, 1, 4, 5]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), seeds, st.floats(0.2, 6.0))
def test_under_diminishing_returns_buyer_and_sellers_are_satisfied_and_the_market_is_efficient(n, seed, cost_scale):
    rng = np.random.default_rng(seed)
    table = submodular_table(n, rng)
    costs = rng.uniform(0, cost_scale, n)
    assert submodularity_gap(table.values) <= 1e-9
    market = SubsetMarket(table)
    empty = table.values[0]
    for rule in ("myerson", "vcg"):
        outcome = settle(market, costs, rule, costs)
        chosen = outcome.selected
        condition = buyer_condition(table, chosen)
        assert condition is not None and condition.holds
        # sellers: individually rational; buyer: keeps at least v(empty)
        assert np.all(outcome.utilities >= -1e-9)
        assert outcome.buyer_surplus >= empty - 1e-9
        # each winner is paid at most its leave-one-out value on the bought set
        full = int(np.sum(1 << np.flatnonzero(chosen)))
        for i in np.flatnonzero(chosen):
            assert outcome.payments[i] <= table.values[full] - table.values[full & ~(1 << int(i))] + 1e-9
        # efficient: truthful reports are dominant and the allocation at them maximises welfare
        assert outcome.welfare == pytest.approx(_best_welfare(table, costs), abs=1e-9)
        audit = truthfulness_audit(subset_settler(market), rule, costs, span=market_span(market))
        assert np.all(audit.gain <= 1e-7)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5), seeds, st.floats(0.5, 6.0))
def test_with_a_reserve_the_buyer_is_still_satisfied(n, seed, reserve):
    """A reserve only lowers Myerson's payments (and may cost efficiency, not tested here)."""
    rng = np.random.default_rng(seed)
    table = submodular_table(n, rng)
    costs = rng.uniform(0, 4, n)
    outcome = settle(SubsetMarket(table, reserve=reserve), costs, "myerson", costs)
    assert outcome.buyer_surplus >= table.values[0] - 1e-9
    assert np.all(outcome.utilities >= -1e-9)


def test_complements_make_the_buyer_pay_more_than_the_data_is_worth():
    """Two sellers worth nothing alone and 10 together, each costing 1: both are bought,
    each is paid its critical bid 1 + (8 - 0) = 9, and the buyer pays 18 for 10."""
    table = TabulatedGame(np.array([0.0, 0.0, 0.0, 10.0]))
    costs = np.array([1.0, 1.0])
    for rule in ("myerson", "vcg"):
        outcome = settle(SubsetMarket(table), costs, rule, costs)
        np.testing.assert_allclose(outcome.payments, [9.0, 9.0])
        assert outcome.buyer_surplus == pytest.approx(-8.0)
    condition = buyer_condition(table, np.array([True, True]))
    assert condition is not None and not condition.holds and condition.gap == pytest.approx(10.0)
    assert "not submodular" in condition.sentence()


def test_the_condition_is_not_vacuous_on_random_complements():
    """On random supermodular games the buyer's surplus under Myerson is negative on some
    instances, and on every such instance the check says the condition fails."""
    negative = 0
    for seed, n in itertools.product(range(40), (3, 4)):
        rng = np.random.default_rng(seed)
        table = complementary_table(n, rng)
        costs = rng.uniform(0, 3, n)
        outcome = settle(SubsetMarket(table), costs, "myerson", costs)
        if outcome.buyer_surplus < -1e-9:
            negative += 1
            condition = buyer_condition(table, outcome.selected)
            assert condition is not None and not condition.holds
    assert negative >= 10


def test_a_run_names_the_complementarity_when_a_truthful_rule_overpays():
    """The replicate's finding (printed under 'Read with care' in the report): present on the
    complementary pair, absent on a submodular market."""
    from dataprice.experiment.replicate import buyer_condition_findings

    costs = np.array([1.0, 1.0])
    complements = SubsetMarket(TabulatedGame(np.array([0.0, 0.0, 0.0, 10.0])))
    outcomes = {rule: [settle(complements, costs, rule, costs)] for rule in ("loo", "myerson", "vcg")}
    (finding,) = buyer_condition_findings(complements, outcomes)
    assert finding.startswith("Under myerson the buyer paid 18 for data worth 10 to it")
    assert "not submodular on the 2 sellers bought" in finding
    substitutes = SubsetMarket(TabulatedGame(np.array([0.0, 6.0, 6.0, 8.0])))
    outcomes = {rule: [settle(substitutes, costs, rule, costs)] for rule in ("myerson", "vcg")}
    assert buyer_condition_findings(substitutes, outcomes) == []
