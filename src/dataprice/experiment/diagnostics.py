"""What a run's market cannot tell apart, named so that a reader does not find meaning in it.

Computed once the replicates are in (from the settlements themselves) and stored with the
run's notes; the report prints them as they are. Two situations are recognised:

* **every seller selected** in every settlement under every rule: the allocation chose
  nobody out, so the payment rules differ only in how much they pay, not in whom;
* **every rule pays the same**: for each seller, the mean payment is equal under all the
  rules (to a relative tolerance of 1e-9), so the comparison between rules shows nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Relative tolerance under which two payments count as equal.
TOLERANCE = 1e-9


def diagnostics(run: Any) -> list[str]:
    """One sentence per degenerate situation found in ``run``'s settlements (none: ``[]``)."""
    outcomes = run.outcomes_table()
    if outcomes.empty:
        return []
    found: list[str] = []
    rules = list(dict.fromkeys(outcomes["rule"]))
    if bool(outcomes["selected"].all()):
        found.append(
            f"Every seller was selected in every settlement under every rule ({len(rules)} rule(s)): the rules "
            "differ only in how much they pay, not in whom they buy from."
        )
    if len(rules) > 1:
        paid = outcomes.groupby(["rule", "seller"], sort=False)["payment"].mean().unstack("seller")
        spread = paid.max(axis=0) - paid.min(axis=0)
        scale = np.maximum(paid.abs().max(axis=0), 1.0)
        if bool((spread <= TOLERANCE * scale).all()):
            found.append(
                f"Every rule pays every seller the same ({', '.join(rules)}): in this market the choice of "
                "payment rule changes nothing, so the comparison between rules says nothing about them."
            )
    return found
