"""Which payment rule to use, read from one run's own figures.

The report's summary closes with one paragraph computed from the mechanisms table (means
over replicates and rounds), never from general claims: which rules were **truthful** here
(the audit found no profitable misreport: ``truthful``), which paid **no seller below its
cost** (``ir_violations == 0``: "fair to every seller"), which were **efficient** (efficiency within 1e-6 of the
best rule's), and among the rules that are all three, which is **cheapest** for the buyer
(least ``total_paid``; rules within a relative 1e-9 of it are named together). When no rule
is all three, the paragraph says which property each candidate lacks.
"""

from __future__ import annotations

import pandas as pd

from dataprice.report.labels import name_of

#: Relative tolerance under which two totals count as equal.
SAME = 1e-9


def _names(rules: list[str]) -> str:
    shown = [name_of(r) for r in rules]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def which_rule(mechanisms: pd.DataFrame) -> str:
    """One paragraph naming the rule(s) to use on this run's figures, and why."""
    table = mechanisms.set_index("rule")
    rules = list(table.index)
    if not rules:
        return ""
    audited = "truthful" in table.columns
    best = float(table["efficiency"].max())
    efficient = [r for r in rules if table.loc[r, "efficiency"] >= best - 1e-6]
    fair = [r for r in rules if table.loc[r, "ir_violations"] == 0]
    truthful = [r for r in rules if audited and bool(table.loc[r, "truthful"])]
    good = [r for r in rules if r in efficient and r in fair and (r in truthful or not audited)]
    said = "**Which rule to use, on this run's figures.** "
    if good:
        cheapest = min(float(table.loc[r, "total_paid"]) for r in good)
        tied = [r for r in good if abs(float(table.loc[r, "total_paid"]) - cheapest) <= SAME * max(abs(cheapest), 1.0)]
        least = f"pays the least: {cheapest:,.3f} in total" if len(tied) == 1 else \
            f"pay the least, the same total each: {cheapest:,.3f}"
        said += (f"Of the rules under which {'truth-telling was a best response, ' if audited else ''}no seller was "
                 f"paid below its cost and the buyer's welfare was the best reached ({_names(good)}), "
                 f"{_names(tied)} {least}.")
        if not audited:
            said += " The audit was off, so whether sellers would misreport was not measured."
    else:
        lacks = []
        for r in rules:
            missing = [what for what, ok in (("truthful", r in truthful or not audited), ("fair to every seller", r in fair),
                                             ("efficient", r in efficient)) if not ok]
            lacks.append(f"{name_of(r)} is not {' nor '.join(missing)}" if missing else name_of(r))
        said += "No rule was truthful, fair to every seller and efficient here: " + "; ".join(lacks) + "."
    gamed = [r for r in rules if audited and r not in truthful]
    if gamed and good:
        said += (" Under " + _names(gamed) + " a seller could gain by misreporting (up to "
                 + ", ".join(f"{float(table.loc[r, 'max_misreport_gain']):,.3f}" for r in gamed) + "): what a "
                 "seller gets there depends on how it reports, not only on its data.")
    return said


__all__ = ["which_rule"]
