"""Column labels a person reads, and the glossary back to the machine names of the CSV files.

The tables written next to a report (``sellers.csv``, ``mechanisms.csv``, ...) keep their
machine names (``value[exact_shapley]``, ``payment_cv``): scripts read them. The report's
own tables show :func:`label` of each column instead ("value: exact Shapley", "payment
variation over replicates (CV)"), and its glossary (:func:`glossary`) lists every label
shown with the column it comes from. Amounts of money are in the buyer's unit (the unit of
its value, ``value_per_quality`` per unit of quality).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

#: How methods and rules are written in labels (others: their name, underscores as spaces).
NAMES = {
    "loo": "LOO", "exact_shapley": "exact Shapley", "exact_banzhaf": "exact Banzhaf", "tmc_shapley": "TMC Shapley",
    "msr_banzhaf": "MSR Banzhaf", "knn_shapley": "KNN-Shapley", "asymmetric_shapley": "asymmetric Shapley",
    "unlearning_shapley": "unlearning Shapley", "permutation_shapley": "permutation Shapley",
    "stratified_shapley": "stratified Shapley", "kernel_shapley": "kernel Shapley",
    "shapley": "Shapley", "myerson": "Myerson", "vcg": "VCG", "pay_as_bid": "pay-as-bid",
    "value_bought": "value bought",
}

#: Fixed columns and their labels (amounts in the buyer's unit of money).
FIXED = {
    "sellers_selected": "sellers selected",
    "total_paid": "total paid",
    "buyer_surplus": "buyer surplus (value − paid)",
    "welfare": "welfare (value − sellers' costs)",
    "efficiency": "efficiency (share of best welfare)",
    "ir_violations": "sellers paid below cost",
    "max_misreport_gain": "largest gain from misreporting",
    "sellers_gaining": "sellers who gain by misreporting",
    "truthful": "truthful",
    "payment_cv": "payment variation over replicates (CV)",
    "rank_correlation": "rank agreement of payments over replicates",
    "data_points": "data points",
    "noisy_label_fraction": "share of noisy labels",
    "document_value": "document value",
    "noise_variance": "noise variance",
    "candidate_queries": "queries with a candidate",
    "heldout_accuracy_alone": "held-out accuracy alone",
    "copy_of": "copy of",
    "list_price": "list price (sum of its items)",
    "mean_list_price": "mean list price of its items",
    "cost": "true cost",
    "bid": "report",
    "misreport_mean": "mean |report / cost − 1|",
    "misreport_winners": "mean |report / cost − 1|, winners",
    "buyer_cost": "buyer's cost",
    "max_misreport_gain_mean": "largest gain from misreporting (mean)",
    "efficiency_mean": "efficiency (mean)",
    "buyer_cost_mean": "buyer's cost (mean)",
}

_PER = re.compile(r"^(?P<kind>[a-z_]+)\[(?P<name>[^\]]+)\]$")
_KINDS = {
    "value": "value: {}", "value_se": "value: {}, Monte Carlo s.e.", "value_sd": "value: {}, sd over replicates",
    "payment": "paid under {}", "payment_sd": "paid under {}, sd over replicates", "utility": "utility under {}",
    "misreport_gain": "gain from misreporting under {}",
    "value_lo": "value: {}, interval low", "value_hi": "value: {}, interval high",
    "payment_lo": "paid under {}, interval low", "payment_hi": "paid under {}, interval high",
    "selected": "share of settlements selected under {}",
}


def name_of(key: str) -> str:
    """A method's or rule's name as written in a label (``exact_shapley`` -> ``exact Shapley``)."""
    return NAMES.get(key, key.replace("_", " "))


def label(column: object) -> str:
    """The label a person reads for a table column (the column itself when it has none)."""
    text = str(column)
    if text in FIXED:
        return FIXED[text]
    found = _PER.match(text)
    if found and found["kind"] in _KINDS:
        return _KINDS[found["kind"]].format(name_of(found["name"]))
    return text


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its columns relabelled by :func:`label`."""
    return frame.rename(columns={c: label(c) for c in frame.columns})


def glossary(columns: Iterable[object]) -> pd.DataFrame:
    """Every relabelled column once: its label, and its name in the CSV files."""
    rows: dict[str, str] = {}
    for column in columns:
        shown = label(column)
        if shown != str(column):
            rows.setdefault(shown, str(column))
    return pd.DataFrame({"label in this report": list(rows), "column in the CSV files": list(rows.values())})


__all__ = ["FIXED", "NAMES", "glossary", "label", "labelled", "name_of"]
