"""The tables of a run (one function each; :class:`~dataprice.experiment.results.RunResult`
has them as methods): what reports show and what ``sellers.csv`` and friends hold.

* :func:`outcomes_table` -- one row per replicate, round, rule and seller;
* :func:`values_table` -- one row per replicate, valuation method and seller;
* :func:`sellers_table` -- one row per seller: contribution, cost, report, values, payments;
* :func:`mechanisms_table` -- one row per payment rule: totals, efficiency, IR, truthfulness,
  stability;
* :func:`dynamics_table`, :func:`transactions_table` -- the repeated market, round by round.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dataprice.market.metrics import TOLERANCE, efficiency, mean_rank_correlation

#: A :class:`~dataprice.experiment.results.RunResult` (not imported: results.py imports this module).
RunResult = Any


def outcomes_table(run: RunResult) -> pd.DataFrame:
    """Long table: one row per replicate, round, rule and seller."""
    rows = []
    for rep in run.replicates:
        for rule, outcomes in rep.outcomes.items():
            for t, o in enumerate(outcomes):
                for j, name in enumerate(run.player_names):
                    rows.append(
                        {
                            "replicate": rep.replicate,
                            "round": t,
                            "rule": rule,
                            "seller": name,
                            "cost": run.costs[j],
                            "bid": o.bids[j],
                            "quantity": o.quantities[j],
                            "selected": bool(o.selected[j]),
                            "payment": o.payments[j],
                            "utility": o.utilities[j],
                        }
                    )
    return pd.DataFrame(rows)


def dynamics_table(run: RunResult) -> pd.DataFrame:
    """One row per replicate, rule and round: welfare, efficiency, payments, mean report
    over cost; ``late`` marks the last fifth of the rounds (where learners have settled)."""
    frame = pd.concat(
        [rep.dynamics.assign(replicate=rep.replicate) for rep in run.replicates], ignore_index=True
    )
    frame["late"] = frame["round"] >= int(np.floor(0.8 * run.scenario.rounds))
    return frame


def transactions_table(run: RunResult) -> pd.DataFrame:
    return pd.concat(
        [rep.transactions.assign(replicate=rep.replicate) for rep in run.replicates], ignore_index=True
    )


def values_table(run: RunResult) -> pd.DataFrame:
    """Long table: one row per replicate, method and seller."""
    frames = []
    for rep in run.replicates:
        for result in rep.values.values():
            frame = result.to_dataframe().rename(columns={"player": "seller"})
            frame.insert(0, "replicate", rep.replicate)
            frame["n_evaluations"] = result.n_evaluations
            frame["converged"] = result.converged
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def sellers_table(run: RunResult) -> pd.DataFrame:
    """One row per seller: contribution, cost, bid, values by method, payments and
    utilities by rule (means over replicates and rounds; ``*_sd`` across replicates)."""
    names = run.player_names
    table = pd.DataFrame({"seller": names, "cost": run.costs})
    stacked = pd.concat([r.sellers for r in run.replicates]).groupby("seller", sort=False)
    numeric = [c for c in run.replicates[0].sellers.columns if c != "seller" and pd.api.types.is_numeric_dtype(run.replicates[0].sellers[c])]
    contrib = stacked.agg({c: ("mean" if c in numeric else "first") for c in run.replicates[0].sellers.columns if c != "seller"})
    table = table.join(contrib, on="seller")
    outcomes = run.outcomes_table()
    first = outcomes[outcomes["rule"] == run.rules[0]]
    table["bid"] = first.groupby("seller", sort=False)["bid"].mean().reindex(names).to_numpy()
    values = run.values_table()
    for method in run.methods:
        per = values[values["method"] == method].pivot(index="replicate", columns="seller", values="value")
        table[f"value[{method}]"] = per[names].mean(axis=0).to_numpy()
        if len(run.replicates) > 1:
            table[f"value_sd[{method}]"] = per[names].std(axis=0, ddof=1).to_numpy()
        se = values[values["method"] == method].groupby("seller", sort=False)["stderr"].mean()
        table[f"value_se[{method}]"] = se.reindex(names).to_numpy()
    bounds = intervals_table(run)
    for method in run.methods:
        _add_interval(table, bounds, "value", method)
    for rule in run.rules:
        sub = outcomes[outcomes["rule"] == rule]
        grouped = sub.groupby("seller", sort=False)
        table[f"selected[{rule}]"] = grouped["selected"].mean().reindex(names).to_numpy()
        table[f"payment[{rule}]"] = grouped["payment"].mean().reindex(names).to_numpy()
        table[f"utility[{rule}]"] = grouped["utility"].mean().reindex(names).to_numpy()
        _add_interval(table, bounds, "payment", rule)
        if run.scenario.audit.enabled:
            gains = np.array([rep.audits[rule].gain for rep in run.replicates])
            audited = (~np.isnan(gains)).sum(axis=0)
            table[f"misreport_gain[{rule}]"] = np.where(
                audited > 0, np.nansum(gains, axis=0) / np.maximum(audited, 1), np.nan
            )  # mean over the replicates that audited the seller
    return table


def intervals_table(run: RunResult) -> pd.DataFrame:
    """Percentile intervals of values and payments over the bootstrap draws of the
    evaluation set, pooled over replicates (:func:`dataprice.experiment.resampling.intervals`)."""
    from dataprice.experiment.resampling import intervals

    return intervals([rep.resamples for rep in run.replicates], len(run.player_names),
                     run.scenario.uncertainty.level)


def _add_interval(table: pd.DataFrame, bounds: pd.DataFrame, quantity: str, name: str) -> None:
    """``<quantity>_lo[name]`` and ``<quantity>_hi[name]`` columns, when that was resampled."""
    rows = bounds[(bounds["quantity"] == quantity) & (bounds["name"] == name)].sort_values("seller")
    if len(rows) == len(table):
        table[f"{quantity}_lo[{name}]"] = rows["lo"].to_numpy()
        table[f"{quantity}_hi[{name}]"] = rows["hi"].to_numpy()


def mechanisms_table(run: RunResult) -> pd.DataFrame:
    """One row per payment rule: totals, efficiency, IR, truthfulness and stability."""
    rows = []
    for rule in run.rules:
        paid, surplus, welfare, eff, ir, selected = [], [], [], [], [], []
        for rep in run.replicates:
            for o, best in zip(rep.outcomes[rule], rep.round_best_welfare, strict=True):
                paid.append(o.total_paid)
                surplus.append(o.buyer_surplus)
                welfare.append(o.welfare)
                eff.append(efficiency(o, best))
                ir.append(int(np.sum(o.utilities < -TOLERANCE * max(abs(best), 1.0))))
                selected.append(int(o.selected.sum()))
        payments = np.array([np.mean([o.payments for o in rep.outcomes[rule]], axis=0) for rep in run.replicates])
        mean = payments.mean(axis=0)
        row = {
            "rule": rule,
            "sellers_selected": float(np.mean(selected)),
            "total_paid": float(np.mean(paid)),
            "buyer_surplus": float(np.mean(surplus)),
            "welfare": float(np.mean(welfare)),
            "efficiency": float(np.mean(eff)),
            "ir_violations": float(np.mean(ir)),
        }
        if run.scenario.rounds > 1:
            dyn = run.dynamics_table()
            late = dyn[(dyn["rule"] == rule) & dyn["late"]]
            row["late_efficiency"] = float(late["efficiency"].mean())
            row["late_bid_ratio"] = float(late["mean_bid_ratio"].mean())
            row["late_total_paid"] = float(late["total_paid"].mean())
            row["sellers_active_end"] = float(
                np.mean([r.dynamics[r.dynamics["rule"] == rule]["sellers_active"].iloc[-1] for r in run.replicates])
            )
        if run.scenario.audit.enabled:
            gains = np.array([rep.audits[rule].gain for rep in run.replicates])
            row["max_misreport_gain"] = float(np.nanmax(gains, axis=1).mean())
            row["sellers_gaining"] = float((gains > TOLERANCE * max(abs(row["welfare"]), 1.0)).sum(axis=1).mean())
            row["truthful"] = bool(row["sellers_gaining"] == 0)
        if len(run.replicates) > 1:
            std = payments.std(axis=0, ddof=1)
            paid_any = np.abs(mean) > TOLERANCE
            row["payment_cv"] = float(np.mean(std[paid_any] / np.abs(mean[paid_any]))) if paid_any.any() else float("nan")
            row["rank_correlation"] = mean_rank_correlation(payments)
        rows.append(row)
    return pd.DataFrame(rows)
