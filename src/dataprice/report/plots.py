"""Plots of a run (matplotlib, non-interactive backend, deterministic PNG output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

_META = {"Software": None}  # no version string in the file: same data, same bytes


#: Most sellers drawn in the per-seller bar chart; larger markets show the best paid.
MAX_BARS = 40


def payments_by_rule(sellers: pd.DataFrame, rules: list[str], path: Path) -> Path:
    """Grouped bars: each seller's mean payment under each rule, with its cost marked
    (the :data:`MAX_BARS` best-paid sellers when there are more)."""
    title = "Payment to each seller under each rule"
    if len(sellers) > MAX_BARS:
        top = sellers[[f"payment[{r}]" for r in rules]].max(axis=1).nlargest(MAX_BARS, keep="first").index
        title += f" ({MAX_BARS} best paid of {len(sellers)})"
        sellers = sellers.loc[sorted(top)]
    n = len(sellers)
    width = 0.8 / max(len(rules), 1)
    fig = Figure(figsize=(max(6, 0.9 * n + 2), 4))
    ax = fig.subplots()
    x = np.arange(n)
    for k, rule in enumerate(rules):
        ax.bar(x + (k - (len(rules) - 1) / 2) * width, sellers[f"payment[{rule}]"], width, label=rule)
    ax.scatter(x, sellers["cost"], marker="_", s=400, color="black", zorder=3, label="cost")
    ax.set_xticks(x, sellers["seller"], rotation=45, ha="right")
    ax.set_ylabel("payment (money)")
    ax.set_title(title)
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(ncols=min(len(rules) + 1, 5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    return path


#: Above this many sellers, the value-cost plot names only the most valuable ones.
MAX_LABELLED_SELLERS = 40


def value_vs_cost(sellers: pd.DataFrame, methods: list[str], path: Path) -> Path:
    """Scatter of each seller's value under each method against its cost."""
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for method in methods:
        ax.scatter(sellers["cost"], sellers[f"value[{method}]"], label=method, alpha=0.8)
    hi = float(sellers["cost"].max()) * 1.15 or 1.0
    ax.plot([0.0, hi], [0.0, hi], color="grey", ls="--", lw=0.8, label="value = cost")
    ax.set_xlim(0.0, hi)
    label_by = next((m for m in ("exact_shapley", "tmc_shapley") if m in methods), methods[0])
    many = len(sellers) > MAX_LABELLED_SELLERS  # thousands of labels are unreadable and slow to lay out
    labelled = sellers.nlargest(MAX_LABELLED_SELLERS, f"value[{label_by}]") if many else sellers
    for _, row in labelled.iterrows():
        ax.annotate(row["seller"], (row["cost"], row[f"value[{label_by}]"]), fontsize=7, alpha=0.7,
                    xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("private cost")
    ax.set_ylabel("value (money)")
    title = "Value of each seller's data against its cost"
    ax.set_title(title + (f" (the {MAX_LABELLED_SELLERS} most valuable named)" if many else ""))
    ax.legend(fontsize=8, loc="upper left" if many else "best")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    return path


def over_rounds(
    dynamics: pd.DataFrame,
    column: str,
    ylabel: str,
    title: str,
    path: Path,
    *,
    reference: float | None = None,
    smooth: bool = False,
) -> Path:
    """A line per rule: mean of ``column`` per round over replicates, with a min-max band.

    Rules that coincide (Myerson and VCG without constraints) stay visible through
    alternating line styles. With ``smooth``, a centred rolling mean over about a twentieth
    of the rounds (said in the title).
    """
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    styles = ["-", "--", ":", "-."]
    rounds = int(dynamics["round"].max()) + 1
    window = max(1, rounds // 20) if smooth else 1
    for k, (rule, frame) in enumerate(dynamics.groupby("rule", sort=False)):
        stats = frame.groupby("round")[column].agg(["mean", "min", "max"])
        if window > 1:
            stats = stats.rolling(window, center=True, min_periods=1).mean()
        ax.plot(stats.index, stats["mean"], label=rule, lw=1.5, ls=styles[k % len(styles)])
        if frame["replicate"].nunique() > 1:
            ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.12)
    if reference is not None:
        ax.axhline(reference, color="black", ls="--", lw=0.8)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f" (rolling mean over {window} rounds)" if window > 1 else ""))
    ax.legend(fontsize=8, ncols=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    return path


def mechanism_comparison(mechanisms: pd.DataFrame, path: Path) -> Path:
    """One panel per question: what the buyer pays, efficiency, truthfulness (largest
    misreport gain) and stability (payment CV across replicates), one bar per rule."""
    panels = [("total_paid", "total paid"), ("efficiency", "efficiency"),
              ("max_misreport_gain", "largest misreport gain"), ("payment_cv", "payment CV (stability)")]
    panels = [(c, t) for c, t in panels if c in mechanisms.columns and mechanisms[c].notna().any()]
    fig = Figure(figsize=(3.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    rules = list(mechanisms["rule"])
    colors = [f"C{k}" for k in range(len(rules))]
    for ax, (column, title) in zip(axes[0], panels, strict=True):
        ax.bar(rules, mechanisms[column].astype(float).fillna(0.0), color=colors)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.axhline(0, color="grey", lw=0.8)
    fig.suptitle("Payment rules compared (means over replicates)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=_META)
    return path
