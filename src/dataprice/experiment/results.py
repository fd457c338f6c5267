"""What a run produces: :class:`ReplicateResult` (one draw of the task's randomness) and
:class:`RunResult` (the scenario, the sellers and every replicate, and everything the report
says about them), with the tables a report shows (:mod:`.tables`). Results are plain data:
:mod:`.persist` saves and reads them without pickle, and a report is written from a
``RunResult`` alone -- it recomputes and retrains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dataprice.experiment import tables
from dataprice.market.mechanism import Outcome
from dataprice.market.metrics import AuditResult
from dataprice.scenario import Scenario
from dataprice.valuation.result import ValuationResult


def _no_draws() -> pd.DataFrame:
    from dataprice.experiment.resampling import empty_draws

    return empty_draws()


def _no_utilities() -> pd.DataFrame:
    from dataprice.experiment.utilities import no_utilities

    return no_utilities()


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
    notes: list[str] = field(default_factory=list)  # how the buyer read its data (BuiltTask.notes)
    findings: list[str] = field(default_factory=list)  # what to read with care (BuiltTask.findings)
    #: rule -> each seller's critical report at the last round's reports (static subset markets)
    critical: dict[str, np.ndarray] = field(default_factory=dict)
    #: bootstrap draws of values and payments (:mod:`dataprice.experiment.resampling`)
    resamples: pd.DataFrame = field(default_factory=lambda: _no_draws())
    evaluation_points: int = 0  # size of the evaluation set the draws resample (0: none)
    #: values and re-settled payments under each utility the buyer offers
    #: (:mod:`dataprice.experiment.utilities`; empty for a buyer with one utility)
    utilities: pd.DataFrame = field(default_factory=lambda: _no_utilities())

    @property
    def best_welfare(self) -> float:
        return float(np.mean(self.round_best_welfare))


@dataclass(repr=False)
class RunResult:
    """A whole run: the scenario, the sellers (names and true costs) and every replicate.

    The sellers' names are stored, not recomputed: a saved run reopens without the data
    files its scenario names (a user corpus owner's name comes from the corpus).

    Attributes:
        notes: what the report says about the run's parts, taken from them when it ran:
            ``buyer`` (the buyer's label) and ``rules`` (each payment rule's note).
        tables: tables computed over all replicates once the run was complete (e.g. the
            federated buyer's ``aggregators`` comparison), saved with the run.
    """

    scenario: Scenario
    costs: np.ndarray
    seller_names: list[str]
    replicates: list[ReplicateResult]
    seconds: float = 0.0
    provenance: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def player_names(self) -> list[str]:
        return list(self.seller_names)

    # -- in a notebook ---------------------------------------------------------------------
    def __repr__(self) -> str:
        s = self.scenario
        smoke = ", smoke test" if s.smoke_test else ""
        return (f"RunResult({s.name!r}: {len(self.seller_names)} sellers, buyer {s.buyer.task}, "
                f"{len(self.replicates)} replicate(s) x {s.rounds} round(s){smoke}; rules {', '.join(self.rules)}; "
                f"methods {', '.join(self.methods)}; {self.seconds:.1f} s)")

    def _repr_html_(self) -> str:
        """A notebook's view: what ran, and one row per payment rule (the report's summary
        table); every text is escaped."""
        from html import escape

        s = self.scenario
        table = self.mechanisms_table()
        keep = [c for c in ("rule", "sellers_selected", "total_paid", "buyer_surplus", "efficiency", "ir_violations",
                            "truthful", "max_misreport_gain") if c in table.columns]
        rows = table[keep].to_html(index=False, float_format=lambda v: f"{v:,.3f}", border=0)
        banner = f"<p><b>{escape(s.smoke_test)}</b></p>" if s.smoke_test else ""
        return (f"<div><p><b>{escape(s.name)}</b>: {len(self.seller_names)} sellers, buyer "
                f"{escape(s.buyer.task)}, {len(self.replicates)} replicate(s) x {s.rounds} round(s), "
                f"{self.seconds:.1f} s. Methods: {escape(', '.join(self.methods))}.</p>{banner}{rows}"
                "<p>Per seller: <code>run.sellers_table()</code>; the full report: "
                "<code>dp.write(run, folder)</code>.</p></div>")

    @property
    def rules(self) -> list[str]:
        return list(self.scenario.market.payment_rules)

    @property
    def methods(self) -> list[str]:
        return [m.key for m in self.scenario.valuation]

    # -- tables (dataprice.experiment.tables) ---------------------------------------------
    def outcomes_table(self) -> pd.DataFrame:
        return tables.outcomes_table(self)

    def dynamics_table(self) -> pd.DataFrame:
        return tables.dynamics_table(self)

    def transactions_table(self) -> pd.DataFrame:
        return tables.transactions_table(self)

    def values_table(self) -> pd.DataFrame:
        return tables.values_table(self)

    def sellers_table(self) -> pd.DataFrame:
        return tables.sellers_table(self)

    def mechanisms_table(self) -> pd.DataFrame:
        return tables.mechanisms_table(self)
