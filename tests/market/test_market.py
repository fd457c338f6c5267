"""Mechanisms by brute force on small random instances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataprice.buyers.single_winner.game import SingleWinnerGame, critical_prices
from dataprice.market import GreedyAllocation, SubsetMarket, settle
from dataprice.market.allocation import ExactAllocation, subset_sums
from dataprice.market.metrics import market_span, subset_settler, truthfulness_audit
from dataprice.market.rules.myerson import critical_bid
from dataprice.valuation.game import TabulatedGame, tabulate
from dataprice.valuation.reference_games import AdditiveGame

from ..conftest import random_monotone_table

instances = st.tuples(st.integers(2, 5), st.integers(0, 2**32 - 1))


def _instance(n: int, seed: int):
    rng = np.random.default_rng(seed)
    table = random_monotone_table(n, rng)
    costs = rng.uniform(0, 8, size=n)
    return table, costs


def _brute_force_best(table: TabulatedGame, bids: np.ndarray) -> float:
    n = table.n_players
    best = -np.inf
    for members in itertools.product([0, 1], repeat=n):
        mask = sum(b << j for j, b in enumerate(members))
        best = max(best, table.values[mask] - np.dot(members, bids))
    return best


def test_subset_sums():
    w = np.array([1.0, 10.0, 100.0])
    assert subset_sums(w).tolist() == [0, 1, 10, 11, 100, 101, 110, 111]


@given(instances)
def test_exact_allocation_maximises_welfare(inst):
    table, costs = _instance(*inst)
    alloc = ExactAllocation()(table, costs)
    assert alloc.welfare_at_bids == pytest.approx(_brute_force_best(table, costs), abs=1e-9)


@given(instances)
def test_myerson_and_vcg_are_truthful_and_individually_rational(inst):
    table, costs = _instance(*inst)
    market = SubsetMarket(table)
    for rule in ("myerson", "vcg"):
        outcome = settle(market, costs, rule, costs)
        assert np.all(outcome.utilities >= -1e-9), rule
        audit = truthfulness_audit(subset_settler(market), rule, costs, span=market_span(market))
        assert np.all(audit.gain <= 1e-7), (rule, audit.gain)


@given(instances, st.integers(0, 2**32 - 1))
def test_truthful_also_against_arbitrary_reports_of_others(inst, seed):
    table, costs = _instance(*inst)
    others = np.random.default_rng(seed).uniform(0, 8, size=costs.shape)
    market = SubsetMarket(table)
    for rule in ("myerson", "vcg"):
        audit = truthfulness_audit(subset_settler(market), rule, costs, others, span=market_span(market))
        assert np.all(audit.gain <= 1e-7)


@given(instances)
def test_vcg_equals_myerson_without_reserve(inst):
    table, costs = _instance(*inst)
    market = SubsetMarket(table)
    np.testing.assert_allclose(
        settle(market, costs, "vcg").payments, settle(market, costs, "myerson").payments, atol=1e-9
    )


@given(instances, st.floats(0.5, 6.0))
def test_vcg_at_least_myerson_with_a_reserve(inst, reserve):
    table, costs = _instance(*inst)
    market = SubsetMarket(table, reserve=reserve)
    vcg = settle(market, costs, "vcg").payments
    myerson = settle(market, costs, "myerson").payments
    assert np.all(vcg >= myerson - 1e-9)
    assert np.all(myerson <= reserve + 1e-9)


def test_reserve_makes_vcg_pay_strictly_more_and_keeps_myerson_truthful():
    # one valuable seller; the reserve binds below its VCG payment
    table = tabulate(AdditiveGame([10.0, 1.0]))
    costs = np.array([2.0, 0.5])
    market = SubsetMarket(table, reserve=4.0)
    assert settle(market, costs, "vcg").payments[0] == pytest.approx(10.0)
    assert settle(market, costs, "myerson").payments[0] == pytest.approx(4.0)
    audit = truthfulness_audit(subset_settler(market), "myerson", costs, span=market_span(market))
    assert np.all(audit.gain <= 1e-7)


def test_loo_and_shapley_are_not_truthful_on_a_constructed_instance():
    """Two interchangeable sellers (v = 10 with either, 10 with both).

    Truthful reports (1, 2): the buyer takes seller 0 alone; LOO and Shapley on the
    selected set pay it 10, seller 1 gets nothing. Seller 1 gains by underbidding seller 0
    (report 0.5 wins and is paid 10 - cost 2 = 8 > 0). Myerson pays seller 0 its critical
    bid 2 and seller 1 cannot gain.
    """
    table = TabulatedGame(np.array([0.0, 10.0, 10.0, 10.0]))
    costs = np.array([1.0, 2.0])
    market = SubsetMarket(table)
    span = market_span(market)
    for rule in ("loo", "shapley"):
        audit = truthfulness_audit(subset_settler(market), rule, costs, span=span)
        assert audit.gain[1] == pytest.approx(8.0, abs=1e-6)
        assert audit.best_report[1] < costs[0]
    assert settle(market, costs, "myerson").payments.tolist() == pytest.approx([2.0, 0.0])


def test_shapley_is_not_individually_rational_on_complements():
    """Complements: each seller alone is worthless, together they are worth 10. With costs
    (1, 8) the buyer takes both (welfare 1 > 0); Shapley splits 10 equally, so seller 1 is
    paid 5 < 8."""
    table = TabulatedGame(np.array([0.0, 0.0, 0.0, 10.0]))
    costs = np.array([1.0, 8.0])
    outcome = settle(SubsetMarket(table), costs, "shapley", costs)
    assert outcome.selected.all()
    assert outcome.utilities[1] == pytest.approx(-3.0)


@given(instances)
def test_loo_is_individually_rational_under_exact_allocation(inst):
    """Welfare maximisation implies v(S*) - v(S* minus j) >= b_j for every selected j, so LOO
    pays at least the reported cost (LOO fails truthfulness, not IR, here)."""
    table, costs = _instance(*inst)
    outcome = settle(SubsetMarket(table), costs, "loo", costs)
    assert np.all(outcome.utilities >= -1e-9)


def test_shapley_scope_all_versus_selected():
    table = TabulatedGame(np.array([0.0, 10.0, 10.0, 10.0]))
    costs = np.array([1.0, 2.0])
    selected = settle(SubsetMarket(table, shapley_scope="selected"), costs, "shapley").payments
    everyone = settle(SubsetMarket(table, shapley_scope="all"), costs, "shapley").payments
    assert selected.tolist() == [10.0, 0.0]
    assert everyone.tolist() == [5.0, 0.0]


@given(instances)
def test_critical_bid_by_bisection_matches_closed_form(inst):
    table, costs = _instance(*inst)
    market = SubsetMarket(table)
    closed = settle(market, costs, "myerson").payments
    for j in np.flatnonzero(closed > 0):
        assert critical_bid(market, costs, j) == pytest.approx(closed[j], abs=1e-6)


def test_greedy_is_exact_and_truthful_on_additive_games():
    rng = np.random.default_rng(2)
    game = AdditiveGame(rng.uniform(0, 5, 6))
    costs = rng.uniform(0, 5, 6)
    greedy = SubsetMarket(game, allocation=GreedyAllocation())
    exact = SubsetMarket(tabulate(game))
    for rule in ("myerson", "vcg"):
        np.testing.assert_allclose(settle(greedy, costs, rule).payments, settle(exact, costs, rule).payments, atol=1e-6)
    audit = truthfulness_audit(subset_settler(greedy), "myerson", costs, span=market_span(greedy))
    assert np.all(audit.gain <= 1e-6)


@given(st.integers(2, 10), st.integers(0, 2**32 - 1))
def test_single_winner_market_pays_the_critical_price(n, seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 10, n)
    prices = rng.uniform(0, 6, n)
    market = SubsetMarket(tabulate(SingleWinnerGame(values)))
    winner, critical = critical_prices(values, prices)
    for rule in ("myerson", "vcg"):
        outcome = settle(market, prices, rule, prices)
        if winner is None:
            assert not outcome.selected.any()
            continue
        assert np.flatnonzero(outcome.selected).tolist() == [winner]
        assert outcome.payments[winner] == pytest.approx(critical, abs=1e-9)


def test_greedy_loses_welfare_on_complements_where_exact_does_not():
    """Sellers 0 and 1 are complements (worth 10 together, nothing alone); seller 2 is worth
    6 alone. Greedy takes seller 2 first and never finds the pair: welfare 5 instead of 8."""
    values = np.zeros(8)
    for mask in range(8):
        pair = (mask & 0b011) == 0b011
        values[mask] = 10.0 if pair else (6.0 if mask & 0b100 else 0.0)
    table = TabulatedGame(values)
    costs = np.ones(3)
    greedy = GreedyAllocation()(table, costs)
    exact = ExactAllocation()(table, costs)
    assert greedy.selected.tolist() == [False, False, True] and greedy.welfare_at_bids == 5.0
    assert exact.selected.tolist() == [True, True, False] and exact.welfare_at_bids == 8.0


@given(st.tuples(st.integers(2, 5), st.integers(0, 2**32 - 1)))
def test_greedy_allocation_with_critical_payments_is_truthful_by_brute_force(inst):
    """Greedy (largest positive marginal welfare first, fixed tie order) is monotone for any
    game: lowering a report raises that seller's net marginal at every step, so the run is
    unchanged until it is picked, at that step or earlier. Critical-bid (Myerson) payments
    on it are therefore truthful and IR -- checked on random, not necessarily submodular,
    games. VCG computed with a greedy welfare has no such guarantee."""
    n, seed = inst
    rng = np.random.default_rng(seed)
    table = TabulatedGame(np.concatenate([[0.0], rng.uniform(0, 10, 2**n - 1)]))  # arbitrary game
    costs = rng.uniform(0, 6, n)
    market = SubsetMarket(table, allocation=GreedyAllocation())
    outcome = settle(market, costs, "myerson", costs)
    assert np.all(outcome.utilities >= -1e-6)
    audit = truthfulness_audit(subset_settler(market), "myerson", costs, span=market_span(market), n_linear=15)
    assert np.all(audit.gain <= 1e-6), audit.gain


@given(st.tuples(st.integers(2, 6), st.integers(0, 2**32 - 1)), st.booleans())
def test_greedy_critical_bids_in_one_pass_equal_bisection(inst, with_reserve):
    """``max_t [m_j(S_t) - max(g_t, 0)]`` over the run without j is the largest report
    with which j is still selected: it matches bisection on the allocation itself."""
    n, seed = inst
    rng = np.random.default_rng(seed)
    table = TabulatedGame(np.concatenate([[0.0], rng.uniform(0, 10, 2**n - 1)]))
    costs = rng.uniform(0, 6, n)
    market = SubsetMarket(table, allocation=GreedyAllocation(), reserve=4.0 if with_reserve else None)
    payments = settle(market, costs, "myerson").payments
    for j in market.allocate(costs).members:
        assert payments[j] == pytest.approx(critical_bid(market, costs, j), abs=1e-6)


@given(st.tuples(st.integers(2, 6), st.integers(0, 2**32 - 1)))
def test_greedy_vcg_uses_the_greedy_welfare_without_each_seller(inst):
    n, seed = inst
    rng = np.random.default_rng(seed)
    table = TabulatedGame(np.concatenate([[0.0], rng.uniform(0, 10, 2**n - 1)]))
    costs = rng.uniform(0, 6, n)
    market = SubsetMarket(table, allocation=GreedyAllocation())
    alloc = market.allocate(costs)
    payments = settle(market, costs, "vcg").payments
    for j in alloc.members:
        without = costs.copy()
        without[j] = np.inf  # never selected: the run without j
        expected = costs[j] + alloc.welfare_at_bids - market.allocate(without).welfare_at_bids
        assert payments[j] == pytest.approx(expected, abs=1e-9)


def test_audit_of_a_sample_checks_half_winners_half_others():
    from dataprice.experiment.environment import audit_sample

    selected = np.zeros(20, dtype=bool)
    selected[[2, 5, 7]] = True
    rng = np.random.default_rng(0)
    picked = audit_sample(selected, 4, rng)
    assert len(picked) == 4 and sum(selected[picked]) == 2
    assert len(audit_sample(selected, 10, rng)) == 10 and sum(selected[audit_sample(selected, 10, rng)]) == 3
    assert audit_sample(selected, None, rng) is None and audit_sample(selected, 20, rng) is None
    table, costs = _instance(4, 3)
    market = SubsetMarket(table)
    partial = truthfulness_audit(subset_settler(market), "shapley", costs, span=market_span(market), sellers=[1, 3])
    full = truthfulness_audit(subset_settler(market), "shapley", costs, span=market_span(market))
    assert np.isnan(partial.gain[[0, 2]]).all()
    np.testing.assert_array_equal(partial.gain[[1, 3]], full.gain[[1, 3]])


def test_a_settlement_builds_the_welfare_table_once_and_ships_without_it(monkeypatch):
    """Exact allocation remembers its last welfare table, so Myerson's and VCG's folds read
    the allocation's; other bids or another table build a new one; the memo (a weak
    reference) is not pickled to workers."""
    import pickle

    from dataprice.valuation.game import TabulatedGame

    rng = np.random.default_rng(5)
    table = TabulatedGame(np.sort(rng.uniform(0, 10, 2**6)))
    built = []
    original = ExactAllocation._welfare
    monkeypatch.setattr(ExactAllocation, "_welfare", staticmethod(lambda *a: built.append(1) or original(*a)))
    bids = rng.uniform(0, 1, 6)
    for rule in ("myerson", "vcg"):
        market = SubsetMarket(table)
        built.clear()
        first = settle(market, bids, rule)
        assert len(built) == 1, rule
        again = settle(market, bids.copy(), rule)
        np.testing.assert_array_equal(first.payments, again.payments)
        assert len(built) == 1  # same table, same bids: nothing built
    settle(market, bids * 1.5, "myerson")
    assert len(built) == 2
    welfare = market.allocation.welfare_table(table, bids * 1.5)
    assert not welfare.flags.writeable
    restored = pickle.loads(pickle.dumps(market.allocation))
    assert restored._last is None
    np.testing.assert_array_equal(restored.welfare_table(table, bids), original(table, bids, None))


@settings(max_examples=25, deadline=None)
@given(instances, st.one_of(st.none(), st.floats(0.5, 6.0)))
def test_myerson_pays_no_more_than_any_implemented_rule_that_is_truthful_and_ir(inst, reserve):
    """Myerson's lemma, by brute force over every registered payment rule: a rule that is
    individually rational and truthful for *every* cost a seller might have (checked on a
    grid of costs below the seller's critical bid, each with a misreport audit) must pay a
    winner at least its critical bid, which is what Myerson pays. Rules that fail the check
    (pay-as-bid always) are not compared; VCG always passes, and so, for the winners, do LOO
    and Shapley on most markets (their payment does not move with a winner's own report)."""
    from dataprice.market.rules.base import RULES

    table, costs = _instance(*inst)
    market = SubsetMarket(table, reserve=reserve)
    myerson = settle(market, costs, "myerson", costs)
    span = market_span(market)
    passed = []
    for rule in [r for r, spec in RULES.items() if "subset" in spec.pay]:
        ok = True
        for j in np.flatnonzero(myerson.selected):
            critical = myerson.payments[j]
            for t in np.linspace(0.05, 0.99, 6) * critical:  # costs at which j still wins
                types = costs.copy()
                types[j] = t
                outcome = settle(market, types, rule, types)
                audit = truthfulness_audit(subset_settler(market), rule, types, span=span)
                if outcome.utilities[j] < -1e-9 or audit.gain[j] > 1e-7:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            passed.append(rule)
            paid = settle(market, costs, rule, costs).payments
            assert np.all(paid[myerson.selected] >= myerson.payments[myerson.selected] - 1e-9), rule
    assert {"myerson", "vcg"} <= set(passed)
