"""What a run's market cannot tell apart, named so that a reader does not find meaning in it.

Computed once the replicates are in (from the settlements themselves) and stored with the
run's notes; the report prints them as they are. Two situations are recognised:

* **every seller selected** in every settlement under every rule: the allocation chose
  nobody out, so the payment rules differ only in how much they pay, not in whom;
* **every rule pays the same**: for each seller, the mean payment is equal under all the
  rules (to a relative tolerance of 1e-9), so the comparison between rules shows nothing.

Markets add their own findings, made when the buyer builds them
(:attr:`dataprice.buyers.base.BuiltTask.findings`), e.g. a per-query market where no query
has two owners with a valued candidate (:meth:`dataprice.market.kinds.PerQueryMarket.findings`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Relative tolerance under which two payments count as equal.
TOLERANCE = 1e-9


def data_notes(replicates: Any, kind: str = "notes") -> list[str]:
    """The buyers' notes on how they read their data (texts split or cut, ...; ``kind``
    ``findings``: what to read with care): once when every replicate says the same, else
    each replicate's, named."""
    per = [list(getattr(r, kind)) for r in replicates]
    if not any(per):
        return []
    if all(p == per[0] for p in per):
        return per[0]
    return [f"Replicate {r.replicate}: {line}" for r, lines in zip(replicates, per, strict=True) for line in lines]


def diagnostics(run: Any) -> list[str]:
    """One sentence per degenerate situation found in ``run``'s settlements (none: ``[]``)."""
    found = data_notes(run.replicates, "findings")
    outcomes = run.outcomes_table()
    if outcomes.empty:
        return found
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
