"""Mechanism guarantees measured by brute force on random small markets.

For every instance (``tests/mechanism_cases.py``: 1..6 sellers, five families of value
functions, ``v(empty)`` zero or not, continuous costs and one instance in ten with exact
ties) and every (allocation, rule), at truthful reports: individual rationality (no seller's
utility below ``-tol``) and incentive compatibility (no seller gains more than ``tol`` from
any report in a search that covers every threshold where its selection changes). Where
theory says a violation cannot occur the count must be 0; where it says violations can
occur, the count must be positive on the fixed seed (so a broken detector fails the test),
and the counts are printed.

The fast slice (those of the first ``FAST_INSTANCES`` instances with at most
``FAST_MAX_SELLERS`` sellers, plus four constructed ones) runs
in the normal suite; the full suite of ``FULL_INSTANCES`` is ``-m slow``. The same numbers
come from ``python benchmarks/mechanism_properties.py --instances N --seed S``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from ..mechanism_cases import (
    ALLOCATIONS,
    PER_QUERY_THEORY,
    RULES,
    THEORY,
    Results,
    check_instance,
    constructed_instances,
    exact_thresholds,
    greedy_thresholds,
    make_instance,
    markdown_table,
    run_per_query_suite,
    run_suite,
)

SEED = 20240611
FAST_INSTANCES = 300  # the first 300 instances of the full suite ...
FAST_MAX_SELLERS = 4  # ... those with at most 4 sellers (a larger market costs 2-4x more)
FULL_INSTANCES = 10_000
PER_QUERY_FAST = 100
PER_QUERY_FULL = 2_000


def theory_problems(results: Results, theory: dict) -> list[str]:
    """Every (allocation, rule) cell whose counts contradict ``theory``."""
    problems = []
    for key, (ir, ic) in theory.items():
        t = results.tallies[key]
        for name, expected, count, witness in (
            ("IR violations", ir, t.ir_instances, t.ir_witness),
            ("profitable misreports", ic, t.ic_instances, t.ic_witness),
        ):
            if expected == "none" and count:
                smallest = f"; smallest: {witness.describe()}" if witness is not None else ""
                problems.append(f"{key}: {count} instances with {name}, theory says none{smallest}")
            if expected == "some" and not count:
                problems.append(
                    f"{key}: no {name} found where theory says they occur (detector broken?)"
                )
    return problems


def _report(results: Results, theory: dict | None, title: str) -> None:
    print(f"\n{title} ({results.reports_tried} reports settled)\n{markdown_table(results, theory)}")


@pytest.fixture(scope="module")
def fast_results() -> Results:
    results = run_suite(SEED, FAST_INSTANCES, max_sellers=FAST_MAX_SELLERS)
    for inst, _ in constructed_instances():
        check_instance(inst, results)
    return results


def test_instances_are_reproducible_and_varied():
    first = [make_instance(SEED, i) for i in range(FAST_INSTANCES)]
    again = make_instance(SEED, 7)
    np.testing.assert_array_equal(first[7].values, again.values)
    np.testing.assert_array_equal(first[7].costs, again.costs)
    assert {inst.n for inst in first} == set(range(1, 7))
    assert {inst.family for inst in first} == {
        "additive",
        "monotone",
        "submodular",
        "supermodular",
        "arbitrary",
    }
    assert any(inst.values[0] != 0 for inst in first) and any(inst.values[0] == 0 for inst in first)
    ties = [inst for inst in first if inst.ties]
    assert ties and all(np.all(inst.costs == np.round(inst.costs)) for inst in ties)
    assert any(inst.n >= 2 and inst.costs[0] == inst.costs[1] for inst in ties)


def test_fast_slice_matches_theory(fast_results):
    random = fast_results.tallies[("exact", "vcg")].instances - len(constructed_instances())
    _report(
        fast_results,
        THEORY,
        f"subset market, seed {SEED}, {random} random + 4 constructed instances",
    )
    assert random >= 150
    assert set(fast_results.tallies) == {(a, r) for a in ALLOCATIONS for r in RULES}
    problems = theory_problems(fast_results, THEORY)
    assert not problems, "\n".join(problems)


def test_fast_slice_search_covers_every_threshold(fast_results):
    """The search relies on the seller's selection changing only at the thresholds computed
    from the table, and on Myerson paying the critical one: checked at every report tried."""
    assert fast_results.reports_tried > 10 * FAST_INSTANCES
    assert not fast_results.mismatches, "\n".join(fast_results.mismatches[:5])


@pytest.mark.parametrize("case", range(len(constructed_instances())))
def test_constructed_instances_show_their_violations(case):
    inst, expected = constructed_instances()[case]
    results = Results()
    check_instance(inst, results)
    for allocation, rule, kind in expected:
        t = results.tallies[(allocation, rule)]
        assert (t.ir_instances if kind == "IR" else t.ic_instances) == 1, (allocation, rule, kind)
    for key, (ir, ic) in THEORY.items():  # and none where theory forbids them
        assert ir == "some" or results.tallies[key].ir_instances == 0, key
        assert ic == "some" or results.tallies[key].ic_instances == 0, key


def test_substitutes_instance_by_hand():
    """The constructed greedy case, with the numbers of its docstring."""
    inst = constructed_instances()[0][0]
    # run without seller 0: {} -> {1} -> {1, 2}; its marginal value 10, 5, 0 against the
    # best other net gain 8.5, 8.5 and none
    assert greedy_thresholds(inst.values, inst.costs, 0, None) == [10.0 - 8.5, 5.0 - 8.5, 0.0]
    assert exact_thresholds(inst.values, inst.costs, 0, None) == [
        (18.0 - 1.0) - 17.0
    ]  # {0,1,2} vs {1,2}
    results = Results()
    check_instance(inst, results, allocations=("greedy",), rules=("loo", "vcg", "myerson"))
    assert results.tallies[("greedy", "vcg")].ir_witness.truthful_utility == pytest.approx(-1.0)
    assert results.tallies[("greedy", "loo")].ir_witness.truthful_utility == pytest.approx(-1.0)
    assert results.tallies[("greedy", "myerson")].ir_instances == 0


def test_per_query_market_fast():
    results = run_per_query_suite(SEED, PER_QUERY_FAST)
    _report(results, None, f"per-query market, seed {SEED}, {PER_QUERY_FAST} instances")
    problems = theory_problems(results, {("per-query", r): v for r, v in PER_QUERY_THEORY.items()})
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_full_suite_matches_theory():
    workers = min(2, os.cpu_count() or 1)
    results = run_suite(SEED, FULL_INSTANCES, workers=workers)
    _report(results, THEORY, f"subset market, seed {SEED}, {FULL_INSTANCES} random instances")
    assert all(t.instances == FULL_INSTANCES for t in results.tallies.values())
    assert not results.mismatches, "\n".join(results.mismatches[:5])
    problems = theory_problems(results, THEORY)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_per_query_market_full():
    results = run_per_query_suite(SEED, PER_QUERY_FULL)
    _report(results, None, f"per-query market, seed {SEED}, {PER_QUERY_FULL} instances")
    problems = theory_problems(results, {("per-query", r): v for r, v in PER_QUERY_THEORY.items()})
    assert not problems, "\n".join(problems)
