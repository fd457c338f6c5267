"""The report's "Utility robustness" section: would values and payments change had the buyer
measured quality another way? (:mod:`dataprice.experiment.utilities` computes, per
replicate, the values and re-settled payments under each utility;
:mod:`dataprice.valuation.robustness` compares them.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dataprice.experiment.results import RunResult
from dataprice.report.document import Section, Table
from dataprice.valuation.robustness import compare_utilities


def utility_table(run: RunResult) -> pd.DataFrame:
    """``seller`` and one column per ``quantity[utility]``, means over the replicates that
    have the table (empty when none has)."""
    frames = [rep.utilities for rep in run.replicates if not rep.utilities.empty]
    if not frames:
        return pd.DataFrame()
    long = pd.concat(frames, ignore_index=True)
    utilities = list(dict.fromkeys(long["utility"]))  # the declared utility first
    quantities = list(dict.fromkeys(long["quantity"]))
    wide = long.pivot_table(index="seller", columns=["quantity", "utility"], values="amount", aggfunc="mean")
    wide = wide.reindex(range(len(run.player_names)))
    table = pd.DataFrame({"seller": run.player_names})
    for quantity in quantities:
        for utility in utilities:
            if (quantity, utility) in wide.columns:
                table[f"{quantity}[{utility}]"] = wide[(quantity, utility)].to_numpy()
    return table


def utility_section(run: RunResult, directory: Path) -> Section | None:
    """The section, or None when the buyer offers one utility (or the market is too large)."""
    table = utility_table(run)
    if table.empty:
        return None
    table.to_csv(directory / "utilities.csv", index=False)
    first = next(rep.utilities for rep in run.replicates if not rep.utilities.empty)
    utilities = list(dict.fromkeys(first["utility"]))
    declared = utilities[0]
    section = Section("Utility robustness")
    section.blocks.append(
        f"The buyer measured quality by **{declared}**; it could as well have used "
        f"{', '.join(f'**{u}**' for u in utilities[1:])}. Below, every seller's exact Shapley and Banzhaf values, and "
        "each rule's payments at the last round's reports, under each utility (same data, same money per unit of "
        "quality; no model was run again). The utilities' units differ (a share of questions or pairs, a mean log-probability), so a payment can move with the scale alone; ranks and angles do not depend on it. The angles follow Tamine et al. (ICLR 2026): a semivalue is linear in the "
        "utility, so turning the utility from the declared one (0 degrees) towards the other (90 degrees) swaps the "
        "order of a pair of sellers at an angle set by their values under the two; a small first angle means the "
        "ranking hangs on the choice of utility."
    )
    lines = []
    for semivalue in ("shapley", "banzhaf"):
        values = {u: table[f"{semivalue}[{u}]"].to_numpy() for u in utilities if f"{semivalue}[{u}]" in table}
        lines += [c.sentence() for c in compare_utilities(values, declared, semivalue)]
    moved = _payment_moves(table, declared, utilities)
    section.blocks.append("\n".join(f"- {line}" for line in lines + moved))
    section.blocks.append(Table(table, "Values and payments under each utility (also in utilities.csv); means over "
                                       "replicates.", digits=3))
    return section


def _payment_moves(table: pd.DataFrame, declared: str, utilities: list[str]) -> list[str]:
    """One line per rule and other utility: how many sellers' payments change, and the
    largest change (the money scale is the declared one's per unit of quality)."""
    out = []
    rules = [c[len("payment["):].split("]")[0] for c in table.columns if c.startswith("payment[") and c.endswith(f"[{declared}]")]
    for rule in rules:
        base = table[f"payment[{rule}][{declared}]"].to_numpy()
        for other in utilities[1:]:
            alt = table[f"payment[{rule}][{other}]"].to_numpy()
            changed = ~np.isclose(base, alt, rtol=1e-9, atol=1e-12)
            out.append(f"Under {rule}, measuring by {other} would change {int(changed.sum())} of {len(base)} sellers' "
                       f"payments (largest change {np.max(np.abs(alt - base)):,.4g}; sellers paid: "
                       f"{int((base > 0).sum())} under {declared}, {int((alt > 0).sum())} under {other}).")
    return out
