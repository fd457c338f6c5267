"""Compare two report directories: which seller's payment changed, and why.

Reads what every report directory holds (``scenario.yaml`` and ``sellers.csv``), so it
works across versions and between ``run`` and ``compare`` reports. For every seller and
payment rule present in both, the payment change is listed with the inputs that changed
along with it: the scenario settings (flattened keys), whether the seller was selected,
its cost, its report, what it contributed, and its value under each method. A change
that comes with no change of the seller's own inputs is attributed to the others (the
market around it) -- the explanation names what is known, not a causal decomposition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dataprice.errors import DataError

#: Changes smaller than this (absolute, or relative to the larger payment) are ignored.
TOLERANCE = 1e-6

_SELLER_INPUTS = ("cost", "bid")
_NOT_INPUTS = ("seller", "payment", "utility", "misreport_gain", "selected", "value_sd", "value_se", "payment_sd",
               "utility_sd")


@dataclass
class ReportDiff:
    scenario_changes: list[str]  # "market.reserve: None -> 2.5"
    payments: pd.DataFrame  # seller, rule, payment_a, payment_b, change, reasons
    only_in_a: list[str]
    only_in_b: list[str]

    def to_markdown(self, a: str, b: str) -> str:
        lines = [f"# Report diff: `{a}` → `{b}`", ""]
        lines += ["## Scenario changes", ""]
        lines += [f"- `{c}`" for c in self.scenario_changes] or ["- none"]
        lines.append("")
        if self.only_in_a or self.only_in_b:
            lines += ["## Sellers", ""]
            if self.only_in_a:
                lines.append(f"- only in `{a}`: {', '.join(self.only_in_a)}")
            if self.only_in_b:
                lines.append(f"- only in `{b}`: {', '.join(self.only_in_b)}")
            lines.append("")
        changed = self.payments[self.payments["changed"]]
        lines += ["## Payments that changed", ""]
        if changed.empty:
            lines += ["No payment changed.", ""]
            return "\n".join(lines)
        lines += ["| seller | rule | before | after | change | why |", "|---|---|---|---|---|---|"]
        for _, row in changed.iterrows():
            lines.append(
                f"| {row['seller']} | {row['rule']} | {row['payment_a']:,.3f} | {row['payment_b']:,.3f} "
                f"| {row['change']:+,.3f} | {row['reasons']} |"
            )
        unchanged = int((~self.payments["changed"]).sum())
        lines += ["", f"{len(changed)} payment(s) changed; {unchanged} did not.", ""]
        return "\n".join(lines)


def _flatten(data, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def _read(directory: Path) -> tuple[dict, pd.DataFrame]:
    scenario, sellers = directory / "scenario.yaml", directory / "sellers.csv"
    for path in (scenario, sellers):
        if not path.is_file():
            raise DataError(f"{directory}: no {path.name}; give two report directories written by dataprice")
    return yaml.safe_load(scenario.read_text()) or {}, pd.read_csv(sellers)


def _differs(x, y) -> bool:
    if isinstance(x, (int, float, np.floating)) and isinstance(y, (int, float, np.floating)):
        if pd.isna(x) and pd.isna(y):
            return False
        return not np.isclose(float(x), float(y), rtol=TOLERANCE, atol=TOLERANCE)
    return x != y


def diff_reports(a: str | Path, b: str | Path) -> ReportDiff:
    """Seller-by-seller payment changes from report ``a`` to report ``b``."""
    scen_a, sell_a = _read(Path(a))
    scen_b, sell_b = _read(Path(b))
    flat_a, flat_b = _flatten(scen_a), _flatten(scen_b)
    scenario_changes = [
        f"{key}: {flat_a.get(key)} -> {flat_b.get(key)}"
        for key in sorted(set(flat_a) | set(flat_b))
        if key not in {"name", "output_dir", "description"} and flat_a.get(key) != flat_b.get(key)
    ]
    names_a, names_b = list(sell_a["seller"]), list(sell_b["seller"])
    both = [s for s in names_a if s in set(names_b)]
    sell_a, sell_b = sell_a.set_index("seller"), sell_b.set_index("seller")
    rules = [c[len("payment["):-1] for c in sell_a.columns if c.startswith("payment[") and c in sell_b.columns]
    inputs = [c for c in sell_a.columns if c in sell_b.columns and not c.startswith(_NOT_INPUTS)]
    rows = []
    for seller in both:
        ra, rb = sell_a.loc[seller], sell_b.loc[seller]
        own = [
            f"{c} {ra[c]:,.3f} → {rb[c]:,.3f}" if isinstance(ra[c], (int, float, np.floating)) else f"{c} {ra[c]} → {rb[c]}"
            for c in inputs
            if _differs(ra[c], rb[c])
        ]
        for rule in rules:
            pa, pb = float(ra[f"payment[{rule}]"]), float(rb[f"payment[{rule}]"])
            changed = _differs(pa, pb)
            reasons = []
            sel = f"selected[{rule}]"
            if sel in ra.index and sel in rb.index and _differs(ra[sel], rb[sel]):
                reasons.append(f"selected {_share(ra[sel])} → {_share(rb[sel])}")
            reasons += own
            if changed and not reasons:
                reasons.append("own inputs unchanged: the other sellers or the market settings changed")
            rows.append({"seller": seller, "rule": rule, "payment_a": pa, "payment_b": pb, "change": pb - pa,
                         "changed": changed, "reasons": "; ".join(reasons)})
    payments = pd.DataFrame(rows, columns=["seller", "rule", "payment_a", "payment_b", "change", "changed", "reasons"])
    if not payments.empty:
        order = payments["change"].abs().sort_values(ascending=False, kind="stable").index
        payments = payments.loc[order].reset_index(drop=True)
    return ReportDiff(
        scenario_changes,
        payments,
        [s for s in names_a if s not in set(names_b)],
        [s for s in names_b if s not in set(names_a)],
    )


def _share(x) -> str:
    x = float(x)
    return "yes" if x == 1.0 else "no" if x == 0.0 else f"{x:.0%} of settlements"
