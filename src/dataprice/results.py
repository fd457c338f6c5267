"""What a run produces: :class:`ReplicateResult` (one draw of the task's randomness) and
:class:`RunResult` (the scenario, the sellers and every replicate), with the tables a report
shows. Results are plain data: :mod:`dataprice.persist` saves and reads them without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dataprice.market.mechanism import Outcome
from dataprice.market.metrics import TOLERANCE, AuditResult, efficiency, mean_rank_correlation
from dataprice.scenario import Scenario
from dataprice.valuation.result import ValuationResult


@dataclass
class ReplicateResult:
    """Everything one replicate produced."""

    replicate: int
    seed: int
    sellers: pd.DataFrame  # what each seller contributed in this replicate
    values: dict[str, ValuationResult]
    outcomes: dict[str, list[Outcome]]  # rule -> one outcome per round
    audits: dict[str, AuditResult]  # rule -> audit at the last round's reports
    round_best_welfare: list[float]  # best welfare at true costs, per round
    dynamics: pd.DataFrame  # one row per rule and round (Mesa model variables)
    transactions: pd.DataFrame  # one row per purchase
    game_evaluations: int
    seconds: float

    @property
    def best_welfare(self) -> float:
        return float(np.mean(self.round_best_welfare))


@dataclass
class RunResult:
    """A whole run: the scenario, the sellers (names and true costs) and every replicate.

    The sellers' names are stored, not recomputed: a saved run reopens without the data
    files its scenario names (a user corpus owner's name comes from the corpus).
    """

    scenario: Scenario
    costs: np.ndarray
    seller_names: list[str]
    replicates: list[ReplicateResult]
    seconds: float = 0.0
    provenance: dict = field(default_factory=dict)

    @property
    def player_names(self) -> list[str]:
        return list(self.seller_names)

    @property
    def rules(self) -> list[str]:
        return list(self.scenario.market.payment_rules)

    @property
    def methods(self) -> list[str]:
        return [m.key for m in self.scenario.valuation]

    # -- tables -----------------------------------------------------------------------------
    def outcomes_table(self) -> pd.DataFrame:
        """Long table: one row per replicate, round, rule and seller."""
        rows = []
        for rep in self.replicates:
            for rule, outcomes in rep.outcomes.items():
                for t, o in enumerate(outcomes):
                    for j, name in enumerate(self.player_names):
                        rows.append(
                            {
                                "replicate": rep.replicate,
                                "round": t,
                                "rule": rule,
                                "seller": name,
                                "cost": self.costs[j],
                                "bid": o.bids[j],
                                "quantity": o.quantities[j],
                                "selected": bool(o.selected[j]),
                                "payment": o.payments[j],
                                "utility": o.utilities[j],
                            }
                        )
        return pd.DataFrame(rows)

    def dynamics_table(self) -> pd.DataFrame:
        """One row per replicate, rule and round: welfare, efficiency, payments, mean report
        over cost; ``late`` marks the last fifth of the rounds (where learners have settled)."""
        frame = pd.concat(
            [rep.dynamics.assign(replicate=rep.replicate) for rep in self.replicates], ignore_index=True
        )
        frame["late"] = frame["round"] >= int(np.floor(0.8 * self.scenario.rounds))
        return frame

    def transactions_table(self) -> pd.DataFrame:
        return pd.concat(
            [rep.transactions.assign(replicate=rep.replicate) for rep in self.replicates], ignore_index=True
        )

    def values_table(self) -> pd.DataFrame:
        """Long table: one row per replicate, method and seller."""
        frames = []
        for rep in self.replicates:
            for result in rep.values.values():
                frame = result.to_dataframe().rename(columns={"player": "seller"})
                frame.insert(0, "replicate", rep.replicate)
                frame["n_evaluations"] = result.n_evaluations
                frame["converged"] = result.converged
                frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def sellers_table(self) -> pd.DataFrame:
        """One row per seller: contribution, cost, bid, values by method, payments and
        utilities by rule (means over replicates and rounds; ``*_sd`` across replicates)."""
        names = self.player_names
        table = pd.DataFrame({"seller": names, "cost": self.costs})
        stacked = pd.concat([r.sellers for r in self.replicates]).groupby("seller", sort=False)
        numeric = [c for c in self.replicates[0].sellers.columns if c != "seller" and pd.api.types.is_numeric_dtype(self.replicates[0].sellers[c])]
        contrib = stacked.agg({c: ("mean" if c in numeric else "first") for c in self.replicates[0].sellers.columns if c != "seller"})
        table = table.join(contrib, on="seller")
        outcomes = self.outcomes_table()
        first = outcomes[outcomes["rule"] == self.rules[0]]
        table["bid"] = first.groupby("seller", sort=False)["bid"].mean().reindex(names).to_numpy()
        values = self.values_table()
        for method in self.methods:
            per = values[values["method"] == method].pivot(index="replicate", columns="seller", values="value")
            table[f"value[{method}]"] = per[names].mean(axis=0).to_numpy()
            if len(self.replicates) > 1:
                table[f"value_sd[{method}]"] = per[names].std(axis=0, ddof=1).to_numpy()
            se = values[values["method"] == method].groupby("seller", sort=False)["stderr"].mean()
            table[f"value_se[{method}]"] = se.reindex(names).to_numpy()
        for rule in self.rules:
            sub = outcomes[outcomes["rule"] == rule]
            grouped = sub.groupby("seller", sort=False)
            table[f"selected[{rule}]"] = grouped["selected"].mean().reindex(names).to_numpy()
            table[f"payment[{rule}]"] = grouped["payment"].mean().reindex(names).to_numpy()
            table[f"utility[{rule}]"] = grouped["utility"].mean().reindex(names).to_numpy()
            if self.scenario.audit.enabled:
                gains = np.array([rep.audits[rule].gain for rep in self.replicates])
                audited = (~np.isnan(gains)).sum(axis=0)
                table[f"misreport_gain[{rule}]"] = np.where(
                    audited > 0, np.nansum(gains, axis=0) / np.maximum(audited, 1), np.nan
                )  # mean over the replicates that audited the seller
        return table

    def mechanisms_table(self) -> pd.DataFrame:
        """One row per payment rule: totals, efficiency, IR, truthfulness and stability."""
        rows = []
        for rule in self.rules:
            paid, surplus, welfare, eff, ir, selected = [], [], [], [], [], []
            for rep in self.replicates:
                for o, best in zip(rep.outcomes[rule], rep.round_best_welfare, strict=True):
                    paid.append(o.total_paid)
                    surplus.append(o.buyer_surplus)
                    welfare.append(o.welfare)
                    eff.append(efficiency(o, best))
                    ir.append(int(np.sum(o.utilities < -TOLERANCE * max(abs(best), 1.0))))
                    selected.append(int(o.selected.sum()))
            payments = np.array([np.mean([o.payments for o in rep.outcomes[rule]], axis=0) for rep in self.replicates])
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
            if self.scenario.rounds > 1:
                dyn = self.dynamics_table()
                late = dyn[(dyn["rule"] == rule) & dyn["late"]]
                row["late_efficiency"] = float(late["efficiency"].mean())
                row["late_bid_ratio"] = float(late["mean_bid_ratio"].mean())
                row["late_total_paid"] = float(late["total_paid"].mean())
                row["sellers_active_end"] = float(
                    np.mean([r.dynamics[r.dynamics["rule"] == rule]["sellers_active"].iloc[-1] for r in self.replicates])
                )
            if self.scenario.audit.enabled:
                gains = np.array([rep.audits[rule].gain for rep in self.replicates])
                row["max_misreport_gain"] = float(np.nanmax(gains, axis=1).mean())
                row["sellers_gaining"] = float((gains > TOLERANCE * max(abs(row["welfare"]), 1.0)).sum(axis=1).mean())
                row["truthful"] = bool(row["sellers_gaining"] == 0)
            if len(self.replicates) > 1:
                std = payments.std(axis=0, ddof=1)
                paid_any = np.abs(mean) > TOLERANCE
                row["payment_cv"] = float(np.mean(std[paid_any] / np.abs(mean[paid_any]))) if paid_any.any() else float("nan")
                row["rank_correlation"] = mean_rank_correlation(payments)
            rows.append(row)
        return pd.DataFrame(rows)
