"""One statement per seller: what it gave, what it is worth, what it was paid and why.

Each statement is a printable section (one A4 page; ``--statements pdf`` prints each to its
own PDF). It holds the seller's contribution, cost and report; its value under every method
and its payment under every rule, each with the interval from resampling the buyer's
evaluation set when there is one (:mod:`dataprice.experiment.resampling`); and one line per
rule saying **why** the payment is what it is:

* Myerson: the critical report, the highest report at which the seller is still selected,
  which is what it is paid (so its pay does not depend on its report below that);
* VCG: the seller's report plus the welfare it adds for the others; with the exact
  allocation this is the critical report again;
* LOO: the buyer's value of what it bought, and what that value would have been without
  the seller;
* Shapley: the Shapley value in the game among the selected sellers or among all (the
  scenario's ``shapley_scope``), with the seller's average marginal contribution broken
  down by how many sellers were there before it (when exact Shapley values were computed);
* not selected: the seller's value against its report, the report at which it would have
  been selected, and whom the buyer took instead.

Everything is read from the saved run: a statement recomputes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dataprice.experiment.results import RunResult
from dataprice.report.document import Bars, Section, Table
from dataprice.report.labels import label, name_of

#: Most statements in one report (a market of thousands of sellers gets the best-paid ones;
#: every seller's figures are in ``sellers.csv``).
MAX_STATEMENTS = 100

#: Columns of the per-seller table that describe what a seller contributed.
CONTRIBUTION = ("data_points", "noisy_label_fraction", "document_value", "noise_variance", "documents", "chunks",
                "original", "duplicate", "corrupted", "candidate_queries", "pairs", "flipped",
                "heldout_accuracy_alone", "copy_of", "list_price", "mean_list_price")


def _money(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{0.0 if round(x, 2) == 0 else x:,.2f}"


def _interval(sellers: pd.DataFrame, j: int, kind: str, name: str) -> str:
    lo, hi = sellers.get(f"{kind}_lo[{name}]"), sellers.get(f"{kind}_hi[{name}]")
    if lo is None or hi is None or pd.isna(lo.iloc[j]) or pd.isna(hi.iloc[j]):
        return ""
    return f"{_money(lo.iloc[j])} to {_money(hi.iloc[j])}"


@dataclass
class _Facts:
    """What the statements read from the run, computed once for every seller."""

    sellers: pd.DataFrame
    #: rule -> each seller's mean critical report over the replicates where it was selected
    #: at the last round (``critical_won``) and where it was not (``critical_lost``)
    critical_won: dict[str, np.ndarray]
    critical_lost: dict[str, np.ndarray]
    paid_won: dict[str, np.ndarray]  # rule -> mean payment over the settlements where the seller was selected
    bought_value: dict[str, np.ndarray]  # rule -> mean v(S*) over settlements where the seller was selected
    selected_names: dict[str, list[str]]  # rule -> sellers selected in at least half the settlements
    by_size: np.ndarray | None  # exact Shapley's mean marginal contribution by coalition size
    level: float
    resampled: bool


def _mean_where(rows: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
    """Per column, the mean of ``rows`` over the rows whose mask is set (NaN where none is)."""
    values, keep = np.array(rows, dtype=np.float64), np.array(masks, dtype=bool) & ~np.isnan(np.array(rows, dtype=np.float64))
    count = keep.sum(axis=0)
    total = np.where(keep, values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _facts(run: RunResult) -> _Facts:
    sellers = run.sellers_table()
    n = len(run.player_names)
    won: dict[str, np.ndarray] = {}
    lost: dict[str, np.ndarray] = {}
    for rule in run.rules:
        reps = [rep for rep in run.replicates if rule in rep.critical]
        if reps:
            found = [rep.critical[rule] for rep in reps]
            last = [rep.outcomes[rule][-1].selected for rep in reps]
            won[rule] = _mean_where(found, last)
            lost[rule] = _mean_where(found, [~x for x in last])
    paid: dict[str, np.ndarray] = {}
    bought: dict[str, np.ndarray] = {}
    chosen: dict[str, list[str]] = {}
    for rule in run.rules:
        settled = [outcome for rep in run.replicates for outcome in rep.outcomes[rule]]
        picked = [outcome.selected for outcome in settled]
        bought[rule] = _mean_where([np.full(n, outcome.value) for outcome in settled], picked)
        paid[rule] = _mean_where([outcome.payments for outcome in settled], picked)
        share = np.mean(np.array(picked, dtype=np.float64), axis=0)
        chosen[rule] = [run.player_names[k] for k in np.argsort(-share, kind="stable") if share[k] >= 0.5]
    by_size = None
    shapley = next((m.key for m in run.scenario.valuation if m.method == "exact_shapley"), None)
    if shapley is not None:
        tables = [rep.values[shapley].extra.get("by_size") for rep in run.replicates]
        if all(t is not None for t in tables):
            by_size = np.mean(np.array(tables, dtype=np.float64), axis=0)
    resampled = any(len(rep.resamples) for rep in run.replicates)
    return _Facts(sellers, won, lost, paid, bought, chosen, by_size, run.scenario.uncertainty.level, resampled)


def _names(names: list[str], limit: int = 8) -> str:
    if not names:
        return "nobody"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _split_screening(run: RunResult) -> tuple[list[str], list[str]]:
    """The run's method keys: semivalues (values a payment can rest on), then screening scores."""
    from dataprice.valuation.methods import METHODS

    semivalue = {spec.key: METHODS[spec.method].is_semivalue for spec in run.scenario.valuation}
    keys = list(run.methods)
    return [k for k in keys if semivalue.get(k, True)], [k for k in keys if not semivalue.get(k, True)]


def _main_value(run: RunResult) -> str | None:
    """The method a statement compares a report with: exact Shapley, else the first Shapley,
    else the first semivalue; never a screening score (None when there is only those)."""
    for wanted in ("exact_shapley", "shapley", "tmc_shapley", "stratified_shapley", "kernel_shapley",
                   "permutation_shapley", "knn_shapley"):
        for spec in run.scenario.valuation:
            if spec.method == wanted:
                return spec.key
    valued, _ = _split_screening(run)
    return valued[0] if valued else None


def why(run: RunResult, facts: _Facts, j: int, rule: str) -> str:
    """The line that explains seller ``j``'s payment under ``rule`` (one paragraph)."""
    s = run.scenario
    row = facts.sellers.iloc[j]
    name = name_of(rule)
    name = name[:1].upper() + name[1:]  # it starts a sentence
    report = float(row["bid"])
    share = float(row[f"selected[{rule}]"])
    nothing = np.full(len(facts.sellers), np.nan)
    others = [x for x in facts.selected_names[rule] if x != row["seller"]]
    pay = float(facts.paid_won[rule][j]) if share > 0 else float(row[f"payment[{rule}]"])
    sometimes = (f" when selected (in {share:.0%} of the settlements; {_money(float(row[f'payment[{rule}]']))} "
                 "on average over all)" if 0 < share < 1 else "")
    if share == 0:
        critical = facts.critical_lost.get(rule, nothing)[j]
    else:
        critical = facts.critical_won.get(rule, nothing)[j]
    if share == 0:
        main = _main_value(run)
        line = f"**{name}: not selected.** You reported {_money(report)}"
        line += (f"; your value ({name_of(main)}) is {_money(float(row[f'value[{main}]']))}. " if main is not None
                 else ". ")
        if np.isfinite(critical):
            line += ("At the others' reports you would not have been selected at any report, even 0: your data "
                     "does not raise the buyer's value beyond what the sellers chosen give it. " if critical <= 1e-9 else
                     f"You would have been selected at a report up to {_money(critical)}. ")
        return line + f"The buyer took {_names(others)} instead."
    if rule == "myerson" and np.isfinite(critical):
        return (f"**Myerson** paid you {_money(pay)}{sometimes}: your critical report. At the others' reports you "
                f"would have been selected at any report up to {_money(critical)}, and that is the pay, whatever "
                "you report below it; reporting above it loses the sale.")
    if rule == "vcg" and np.isfinite(critical):
        if s.market.allocation == "exact" and s.market.reserve is None:
            return (f"**VCG** paid you {_money(pay)}{sometimes}: your report plus the welfare you add at the reports (the "
                    f"best welfare with you minus the best without you). With the exact allocation this is your "
                    f"critical report: selected at any report up to {_money(critical)}.")
        return (f"**VCG** paid you {_money(pay)}{sometimes}: your report plus the welfare you add at the reports, "
                f"measured with the {s.market.allocation} allocation{' and the reserve' if s.market.reserve is not None else ''}; "
                f"that is not your critical report ({_money(critical)}), which is why VCG can be gamed here.")
    if rule == "loo":
        bought = facts.bought_value[rule][j]
        return (f"**LOO** paid you {_money(pay)}{sometimes}: the buyer's value of the data it bought was "
                f"{_money(bought)}; without yours it would have been {_money(bought - pay)}.")
    if rule == "shapley":
        exact = next((spec.key for spec in s.valuation if spec.method == "exact_shapley"), None)
        everyone = f"; over all sellers your exact Shapley value is {_money(float(row[f'value[{exact}]']))}" if exact else ""
        if s.market.shapley_scope == "selected":
            return (f"**Shapley** paid you {_money(pay)}{sometimes}: your Shapley value in the game among the "
                    f"sellers selected (you and {_names(others)}), not among all sellers{everyone}. Selecting fewer "
                    "sellers shares the same value among fewer, so a payment can exceed the value over all sellers.")
        return f"**Shapley** paid you {_money(pay)}{sometimes}: your Shapley value among all sellers{everyone}."
    note = run.notes.get("rules", {}).get(rule, "")
    return f"**{name}** paid you {_money(pay)}{sometimes}" + (f": it {note}." if note else ".")


def statement(run: RunResult, facts: _Facts, j: int) -> Section:
    """Seller ``j``'s statement (a section of kind ``statement``)."""
    s = run.scenario
    row = facts.sellers.iloc[j]
    seller = str(row["seller"])
    section = Section(f"Statement: {seller}", kind="statement", level=3)
    given = [f"{label(c)} {_fmt(row[c])}" for c in CONTRIBUTION if c in facts.sellers.columns and pd.notna(row[c])]
    truthful = "truthfully" if np.isclose(row["bid"], row["cost"]) else f"{row['bid'] / row['cost'] - 1:+.0%} against it" if row["cost"] else ""
    section.blocks.append(
        f"**What you gave:** {'; '.join(given) if given else 'your data'}. **Your cost** {_money(row['cost'])}; "
        f"**your report** {_money(row['bid'])}" + (f" ({truthful})" if truthful else "") + "."
    )
    level = f"{facts.level:.0%} interval"
    valued, screened = _split_screening(run)
    values = pd.DataFrame({
        "method": [name_of(m) for m in valued],
        "value": [row[f"value[{m}]"] for m in valued],
        level: [_interval(facts.sellers, j, "value", m) for m in valued],
    })
    payments = pd.DataFrame({
        "rule": [name_of(r) for r in run.rules],
        "selected": [f"{row[f'selected[{r}]']:.0%}" for r in run.rules],
        "paid": [row[f"payment[{r}]"] for r in run.rules],
        level: [_interval(facts.sellers, j, "payment", r) for r in run.rules],
        "utility (paid − cost)": [row[f"utility[{r}]"] for r in run.rules],
    })
    if valued:
        section.blocks.append(Table(values, "Your data's value under each method.", digits=2))
    if screened:
        section.blocks.append(
            "**Screening scores** (not a value and not a basis for payment: they do not add up to the buyer's "
            "gain): " + "; ".join(f"{name_of(m)} {float(row[f'value[{m}]']):+.3f}" for m in screened) + "."
        )
    section.blocks.extend(_example_lines(run, j))
    section.blocks.append(Table(payments, "Your payment under each rule.", digits=2))
    section.blocks.append(
        "Means over replicates and rounds; selected: share of the settlements. "
        + (f"Interval: {facts.level:.0%} percentile interval over {s.uncertainty.resamples} resamples of the buyer's "
           "evaluation set per replicate (payments: the last round's)." if facts.resampled else
           "No resampling interval: this buyer's value is not an average over an evaluation set, or resampling "
           "was turned off.")
    )
    lines: dict[str, list[str]] = {}  # the same explanation under several rules is said once
    for rule in run.rules:
        text = why(run, facts, j, rule)
        _, _, rest = text.partition(": not selected.** ")
        key = rest if rest else text
        lines.setdefault(key, []).append(name_of(rule) if rest else "")
    for text, rules in lines.items():
        named = [r for r in rules if r]
        said = ", ".join(named)
        section.blocks.append(f"**{said[:1].upper() + said[1:]}: not selected.** {text}" if named else text)
    if facts.by_size is not None:
        sizes = facts.by_size[j]
        n = sizes.shape[0]
        section.blocks.append(Bars(
            [str(k) for k in range(n)], [float(v) for v in sizes],
            f"Your exact Shapley value, {_money(float(np.mean(sizes)))}, is the plain average of these {n} numbers: "
            "your mean marginal contribution when joining k other sellers, k = 0 .. " + str(n - 1) + ".",
            label_title="k (sellers before you)", value_title="mean marginal contribution",
        ))
    return section


#: Examples named in a statement line (the lowest and the highest values).
EXAMPLES_NAMED = 3


def per_example(result) -> tuple[np.ndarray, np.ndarray] | None:
    """``(values, owners)`` per training example of a result that has them (in-run
    Shapley keeps them in its ``extra``), else None."""
    values = result.extra.get("example_values")
    if values is None:
        return None
    return np.asarray(values, dtype=np.float64), np.asarray(result.extra["example_owners"], dtype=np.int64)


def _example_lines(run: RunResult, j: int) -> list[str]:
    """For methods that value each example (in-run Shapley): how seller ``j``'s value splits
    over its examples, naming the lowest- and highest-valued (first replicate)."""
    out = []
    rep = run.replicates[0]
    for key, result in rep.values.items():
        examples = per_example(result)
        if examples is None:
            continue
        values, owners = examples
        mine = np.flatnonzero(owners == j)
        if mine.size == 0:
            continue
        own = values[mine]
        order = np.argsort(own, kind="stable")
        k = min(EXAMPLES_NAMED, mine.size)
        low = ", ".join(f"#{mine[i]} ({_money(float(own[i]))})" for i in order[:k])
        high = ", ".join(f"#{mine[i]} ({_money(float(own[i]))})" for i in order[::-1][:k])
        negative = int((own < 0).sum())
        out.append(
            f"**Your {mine.size} examples under {name_of(key)}** add up to {_money(float(own.sum()))}"
            + (" in the first replicate" if len(run.replicates) > 1 else "")
            + f"; {negative} of them lowered the buyer's validation utility. Lowest: {low}. Highest: {high}. "
            "(# is the example's position among the buyer's training examples, from 0: for a pairs file, its data "
            "row; every example is in examples.csv.)"
        )
    return out


def _fmt(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"
    return str(value)


def statements_section(run: RunResult) -> tuple[Section, list[Section]]:
    """The "Statements" heading and one statement per seller (the best-paid
    :data:`MAX_STATEMENTS` in a larger market)."""
    facts = _facts(run)
    n = len(run.player_names)
    order = list(range(n))
    head = Section("Statements")
    head.blocks.append(
        "One page per seller: what it gave, what its data is worth under each valuation method and what each "
        "payment rule paid it, with the reason for each payment. Figures are means over replicates and rounds."
        + (f" Intervals come from resampling the buyer's evaluation set ({run.scenario.uncertainty.resamples} draws "
           f"per replicate, pooled over the {len(run.replicates)} replicate(s), so they also span the replicates' data "
           "and training draws)." if facts.resampled else
           " No interval from resampling: this buyer's value is not an average over an evaluation set, or resampling "
           "was turned off (`uncertainty.resamples: 0`).")
    )
    if n > MAX_STATEMENTS:
        paid = facts.sellers[[f"payment[{r}]" for r in run.rules]].max(axis=1).to_numpy()
        order = sorted(np.argsort(-paid, kind="stable")[:MAX_STATEMENTS].tolist())
        head.blocks.append(f"Statements for the {MAX_STATEMENTS} best-paid of {n} sellers; every seller's figures "
                           "are in `sellers.csv`.")
    return head, [statement(run, facts, j) for j in order]


__all__ = ["MAX_STATEMENTS", "statement", "statements_section", "why"]
