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

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

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
    """``scenario.yaml`` and ``sellers.csv`` of a report directory, through the input
    boundary: checked against the manifest when there is one (a report of a version before
    manifests is read with the size and encoding checks only), parsed as data."""
    from dataprice.experiment.persist import REPORT_FORMAT, SCHEMA
    from dataprice.inputs import decode_text, load_yaml, max_data_bytes, read_bytes
    from dataprice.safedir import MANIFEST, read_manifest, verified_bytes

    if not directory.is_dir():
        raise DataError(f"report directory not found: {directory}")
    for name in ("scenario.yaml", "sellers.csv"):
        if not (directory / name).is_file():
            raise DataError(f"{directory}: no {name}; give two report directories written by dataprice")
    if (directory / MANIFEST).exists():
        manifest = read_manifest(directory, [REPORT_FORMAT], SCHEMA, "report directory")

        def read(name: str) -> bytes:
            return verified_bytes(directory, name, manifest)
    else:

        def read(name: str) -> bytes:
            return read_bytes(directory / name, name, limit=max_data_bytes())

    source = str(directory / "scenario.yaml")
    scenario = load_yaml(decode_text(read("scenario.yaml"), source, "scenario file"), source)
    csv = directory / "sellers.csv"
    try:
        sellers = pd.read_csv(io.BytesIO(read("sellers.csv")))
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv}: not a readable table ({str(exc).splitlines()[0][:120]})") from None
    if "seller" not in sellers.columns:
        raise DataError(f"{csv}: no 'seller' column; not a dataprice per-seller statement")
    for column in [c for c in sellers.columns if c.startswith(("payment[", "selected["))]:
        if not pd.api.types.is_numeric_dtype(sellers[column]):
            raise DataError(f"{csv}: column {column!r} must hold numbers")
    sellers["seller"] = sellers["seller"].astype(str)
    return scenario if isinstance(scenario, dict) else {}, sellers


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
