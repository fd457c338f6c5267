"""The report's closing "which rule to use" paragraph is read from the run's own figures."""

from __future__ import annotations

import pandas as pd

from dataprice.report.advice import which_rule


def table(rows):
    return pd.DataFrame(rows, columns=["rule", "total_paid", "efficiency", "ir_violations", "truthful",
                                       "max_misreport_gain"])


def test_the_cheapest_truthful_fair_efficient_rule_is_named():
    said = which_rule(table([
        ("loo", 10.0, 1.0, 0, False, 2.5),
        ("shapley", 30.0, 1.0, 0, False, 4.0),
        ("myerson", 12.0, 1.0, 0, True, 0.0),
        ("vcg", 14.0, 1.0, 0, True, 0.0),
    ]))
    assert "(Myerson and VCG), Myerson pays the least: 12.000 in total." in said
    assert "Under LOO and Shapley a seller could gain by misreporting (up to 2.500, 4.000)" in said  # LOO is cheaper, but gamed


def test_ties_are_named_together_and_unfair_or_inefficient_rules_are_left_out():
    said = which_rule(table([
        ("myerson", 5.0, 1.0, 0, True, 0.0),
        ("vcg", 5.0 + 1e-12, 1.0, 0, True, 0.0),
        ("pay_as_bid", 1.0, 1.0, 2, True, 0.0),      # cheap but pays sellers below their cost
        ("floor", 2.0, 0.8, 0, True, 0.0),           # cheap but loses welfare
    ]))
    assert "(Myerson and VCG), Myerson and VCG pay the least, the same total each: 5.000." in said


def test_when_no_rule_has_all_three_it_says_what_each_lacks():
    said = which_rule(table([
        ("loo", 10.0, 1.0, 0, False, 2.5),
        ("pay_as_bid", 3.0, 0.9, 1, True, 0.0),
    ]))
    assert said.endswith("LOO is not truthful; pay-as-bid is not fair to every seller nor efficient.")


def test_without_an_audit_truthfulness_is_said_to_be_unmeasured():
    rows = pd.DataFrame([("myerson", 4.0, 1.0, 0), ("vcg", 6.0, 1.0, 0)],
                        columns=["rule", "total_paid", "efficiency", "ir_violations"])
    said = which_rule(rows)
    assert "Myerson pays the least: 4.000 in total." in said and "The audit was off" in said
