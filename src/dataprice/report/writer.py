"""Write a run's report directory atomically, and only over what dataprice wrote.

Everything is written into a hidden sibling folder, sealed with ``manifest.json`` (sizes and
sha256 of every file) and swapped in for the target only once complete, so a failure never
leaves a half-written report, an earlier report at the same place survives a failed run,
and a directory dataprice did not write is refused, never deleted
(:mod:`dataprice.safedir`).

Contents: ``scenario.yaml`` (fully resolved), ``sellers.csv/.parquet`` (per-seller
statement), ``mechanisms.csv/.parquet`` (rule comparison), ``values.csv/.parquet`` and
``outcomes.csv/.parquet`` (long tables), ``valuations.json`` (results with provenance),
two plots, ``report.md``, a self-contained ``report.html`` and ``run/``: the whole run as
data (:mod:`dataprice.experiment.persist`; ``dataprice report DIR`` rebuilds the report from it, no
pickle). Timings go to ``timings.json`` only, so two runs with the same seed give
byte-identical reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dataprice.experiment.persist import REPORT_FORMAT, SCHEMA, write_run
from dataprice.experiment.results import RunResult
from dataprice.report import plots
from dataprice.report.advice import which_rule
from dataprice.report.document import (
    Banner,
    Code,
    Image,
    Section,
    Table,
    to_html,
    to_markdown,
    unique_name,
)
from dataprice.report.labels import glossary
from dataprice.report.statements import CONTRIBUTION, per_example, statements_section
from dataprice.report.utilities import utility_section
from dataprice.safedir import write_directory
from dataprice.scenario import changed_fields, scenario_to_yaml


def _count(mean: float, run: RunResult) -> str:
    """'2 sellers', or '1.67 sellers on average' when it is a mean over several settlements."""
    settlements = len(run.replicates) * run.scenario.rounds
    if float(mean).is_integer() or settlements == 1:
        return f"{mean:g} seller{'s' if mean != 1 else ''}"
    return f"{mean:.3g} sellers on average"


def _selected_line(run: RunResult, limit: int = 30) -> str:
    """Who was selected under each rule (with the share of settlements when it varies)."""
    outcomes = run.outcomes_table()
    share = outcomes.groupby(["rule", "seller"], sort=False)["selected"].mean()
    lines = {}
    for rule in run.rules:
        chosen = share.loc[rule]
        chosen = chosen[chosen > 0].sort_values(ascending=False, kind="stable")
        names = [f"{s}" if v == 1 else f"{s} ({v:.0%})" for s, v in chosen.items()]
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        lines[rule] = (", ".join(names[:limit]) + more) if names else "nobody"
    if len(set(lines.values())) == 1:
        return f"**Selected** (every rule): {next(iter(lines.values()))}."
    return "**Selected:** " + "; ".join(f"{rule}: {who}" for rule, who in lines.items()) + "."


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]``, or NaN when the column is absent (e.g. no spread with one replicate)."""
    return frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)


def _with_uncertainty(value: float, se: float, sd: float, replicates: int, lo: float = np.nan,
                      hi: float = np.nan) -> str:
    """``12.3 ± 0.4 [10.1, 14.0]``: the value, its Monte Carlo standard error and its interval
    from resampling the evaluation set (or, without one, ``(sd 1.1)``: its spread over replicates)."""
    if pd.isna(value):
        return ""
    text = f"{value:,.3f}"
    if pd.notna(se) and se > 0:
        text += f" ± {se:,.3f}"
    if pd.notna(lo) and pd.notna(hi):
        text += f" [{lo:,.2f}, {hi:,.2f}]"
    elif replicates > 1 and pd.notna(sd):
        text += f" (sd {sd:,.3f})"
    return text


def _save_table(frame: pd.DataFrame, directory: Path, stem: str) -> None:
    frame.to_csv(directory / f"{stem}.csv", index=False)
    frame.to_parquet(directory / f"{stem}.parquet", index=False)


def build_sections(run: RunResult, directory: Path) -> tuple[str, list[str], list[Section]]:
    s = run.scenario
    sellers = run.sellers_table()
    mechanisms = run.mechanisms_table()
    rules, methods = run.rules, run.methods
    title = f"Compensation report: {s.name}"
    intro: list = [Banner(s.smoke_test)] if s.smoke_test else []
    intro += [s.description.strip()] if s.description.strip() else []
    intro.append(
        f"{s.sellers.count} sellers sell data to {run.notes.get('buyer', s.buyer.task)}. "
        f"Seed {s.seed}, {s.replicates} replicate(s), {s.rounds} round(s); "
        f"allocation `{s.market.allocation}`"
        + (f" with reserve {s.market.reserve:g}" if s.market.reserve is not None else "")
        + f"; sellers bid `{s.bidding.strategy}`."
    )

    summary = Section("Summary")
    best = sum(r.best_welfare for r in run.replicates) / len(run.replicates)
    if s.market.allocation == "greedy":
        summary.blocks.append(
            f"Welfare of the greedy choice at the true costs: **{best:,.3f}** (mean over replicates). "
            "With the greedy allocation, efficiency is measured against this greedy choice, not the exact "
            "optimum over all coalitions, which is not computed. The greedy rule is monotone, so Myerson "
            "critical bids stay truthful; VCG payments computed with a greedy welfare are not guaranteed "
            "truthful. The audit below measures both."
        )
    else:
        summary.blocks.append(f"Best achievable welfare at the true costs: **{best:,.3f}** (mean over replicates).")
    for finding in run.notes.get("diagnostics", []):
        summary.blocks.append(f"**Read with care:** {finding}")
    for line in run.notes.get("data", []):
        summary.blocks.append(f"**How the data was read:** {line}")
    summary.blocks.append(_selected_line(run))
    summary.blocks.append(Table(mechanisms, "One row per payment rule (means over replicates and rounds)."))
    summary.blocks.append(Image(plots.mechanism_comparison(mechanisms, directory / "mechanisms.png"), "payment rules compared"))
    for _, row in mechanisms.iterrows():
        line = f"**{row['rule']}** {run.notes.get('rules', {}).get(row['rule'], '')}: total paid {row['total_paid']:,.3f}, buyer surplus {row['buyer_surplus']:,.3f}, efficiency {row['efficiency']:.3f}"
        if "truthful" in row:
            line += (
                "; truth-telling was a best response for every " + ("audited " if s.audit.sample else "") + "seller"
                if row["truthful"]
                else f"; {_count(row['sellers_gaining'], run)} could gain up to {row['max_misreport_gain']:,.3f} by misreporting"
            )
        if row["ir_violations"] > 0:
            line += f"; {_count(row['ir_violations'], run)} paid less than their cost"
        summary.blocks.append(line + ".")
    summary.blocks.append(which_rule(mechanisms))

    statement = Section("Per-seller figures")
    cols = ["seller"] + [c for c in sellers.columns if c in CONTRIBUTION]
    cols += ["cost", "bid"]
    shown = sellers[cols].copy()
    for m in methods:
        shown[f"value[{m}]"] = [
            _with_uncertainty(v, se, sd, len(run.replicates), lo, hi)
            for v, se, sd, lo, hi in zip(sellers[f"value[{m}]"], _column(sellers, f"value_se[{m}]"),
                                         _column(sellers, f"value_sd[{m}]"), _column(sellers, f"value_lo[{m}]"),
                                         _column(sellers, f"value_hi[{m}]"), strict=True)
        ]
    resampled = any(f"value_lo[{m}]" in sellers.columns for m in methods)
    caption = ("Contribution, cost, report and value under each method, over all sellers. ± is the Monte Carlo "
               "standard error (exact methods have none)")
    if resampled:
        caption += (f"; [lo, hi] the {s.uncertainty.level:.0%} interval from resampling the buyer's evaluation set "
                    f"({s.uncertainty.resamples} draws per replicate, pooled over replicates)")
    if len(run.replicates) > 1:
        caption += (f"; sd (where there is no interval) is the spread over the {len(run.replicates)} replicates "
                    "(data draw, training)")
    statement.blocks.append(Table(shown, caption + "."))
    pays = sellers[["seller"]].copy()
    for r in rules:
        pays[f"payment[{r}]"] = [
            _with_uncertainty(v, np.nan, np.nan, 1, lo, hi)
            for v, lo, hi in zip(sellers[f"payment[{r}]"], _column(sellers, f"payment_lo[{r}]"),
                                 _column(sellers, f"payment_hi[{r}]"), strict=True)
        ]
    for r in rules:
        pays[f"utility[{r}]"] = sellers[f"utility[{r}]"]
    basis = ("Payments are settled on the sellers selected: a Shapley payment is the Shapley value in the game "
             "among the selected sellers, not the value over all sellers in the table above. "
             if "shapley" in rules and s.market.shapley_scope == "selected" else "")
    if s.market.value_basis is not None:
        basis = value_basis_line(s.market.value_basis) + " "
    statement.blocks.append(Table(pays, basis + "Payment and utility (payment minus cost of what was used) under each "
                                  "rule" + ("; [lo, hi] the last round's payment over the resampled evaluation sets"
                                            if any(f"payment_lo[{r}]" in sellers.columns for r in rules) else "") + "."))
    if s.audit.enabled:
        gain_cols = ["seller"] + [f"misreport_gain[{r}]" for r in rules]
        audit = sellers[gain_cols]
        caption = "Truthfulness audit: best utility gain from misreporting (others truthful)."
        if s.audit.sample is not None and s.audit.sample < len(sellers):
            audit = audit[audit[gain_cols[1:]].notna().any(axis=1)]
            caption += (f" A sample of {s.audit.sample} sellers per rule and replicate was audited, half among"
                        " those selected; the table lists the audited sellers (blank: not audited under that rule).")
        statement.blocks.append(Table(audit, caption))

    methods_section = Section("Valuation methods")
    rows = []
    for method in methods:
        results = [rep.values[method] for rep in run.replicates]
        rows.append(
            {
                "method": method,
                "game evaluations": sum(r.n_evaluations for r in results) / len(results),
                "converged": all(r.converged for r in results),
                # over the sellers a method valued (a partial valuation leaves the others out)
                "mean stderr": float(np.mean([r.stderr[np.isfinite(r.values)].mean() for r in results])),
                "stopping": results[0].extra.get("stopping", results[0].extra.get("note", "exact")),
                "model trainings": results[0].extra.get("model_trainings", ""),
                "unlearning runs": results[0].extra.get("unlearning_runs", ""),
            }
        )
    methods_section.blocks.append(Table(pd.DataFrame(rows), "Evaluations are per replicate; exact methods read the tabulated game."))
    if len(run.replicates) > 1:
        methods_section.blocks.append(
            "Values and payments are means over replicates; `*_sd` columns in `sellers.csv` give their spread."
        )

    figures = Section("Figures")
    figures.blocks.append(Image(plots.payments_by_rule(sellers, rules, directory / "payments_by_rule.png"), "payments by rule"))
    figures.blocks.append(Image(plots.value_vs_cost(sellers, methods, directory / "value_vs_cost.png"), "value vs cost"))

    sections = [summary, statement, methods_section]
    robustness = utility_section(run, directory)
    if robustness is not None:
        sections.append(robustness)
    sections.append(figures)
    if s.rounds > 1:
        sections.append(dynamics_section(run, directory))
    if "aggregators" in run.tables:
        sections.append(aggregator_section(run, directory))
    head, pages = statements_section(run)
    sections += [head, *pages]
    sections.append(reproduce_section(run, "run"))
    return title, intro, sections


def example_table(run: RunResult) -> pd.DataFrame:
    """Per-example values of the methods that give them (in-run Shapley), every replicate:
    ``replicate, method, example, seller, value`` (``example``: the position among the
    buyer's training examples, e.g. the row of a pairs file)."""
    frames = []
    for rep in run.replicates:
        for key, result in rep.values.items():
            examples = per_example(result)
            if examples is None:
                continue
            values, owners = examples
            frames.append(pd.DataFrame({"replicate": rep.replicate, "method": key,
                                        "example": np.arange(values.size, dtype=np.int64),
                                        "seller": [run.player_names[o] for o in owners], "value": values}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def value_basis_line(key: str) -> str:
    """What paying on a method's values means (:mod:`dataprice.market.basis`), in one paragraph."""
    return (f"Payments are settled on the additive game of the {key} values, v(S) = v(empty) + the sum of the "
            f"values of the sellers in S (market.value_basis), not on the buyer's coalition values. On it a seller "
            "is selected when its value covers its report (and the reserve), and LOO, Shapley, Myerson and VCG "
            "each pay a selected seller its value; pay-as-bid pays the report. The game has no interactions: "
            "sellers holding the same data are each paid for it.")


def dynamics_section(run: RunResult, directory: Path) -> Section:
    """Reports and welfare round after round, per rule."""
    s = run.scenario
    dynamics = run.dynamics_table()
    section = Section("Dynamics over rounds")
    section.blocks.append(
        f"Sellers bid `{s.bidding.strategy}` for {s.rounds} rounds"
        + (f"; each round the buyer's values get shocks of relative size {s.market.value_noise:g}" if s.market.value_noise else "")
        + (f"; the buyer's budget per round is {s.market.budget:g}" if s.market.budget else "")
        + (f"; a seller leaves after {s.bidding.exit_after} losing rounds in a row" if s.bidding.exit_after else "")
        + ". The bands span the replicates."
    )
    section.blocks.append(
        Image(
            plots.over_rounds(dynamics, "mean_bid_ratio", "mean report / cost", "Reports relative to costs",
                              directory / "bids_over_rounds.png", reference=1.0),
            "bids over rounds",
        )
    )
    section.blocks.append(
        Image(
            plots.over_rounds(dynamics, "efficiency", "welfare / best welfare", "Efficiency per round",
                              directory / "welfare_over_rounds.png", reference=1.0, smooth=True),
            "welfare over rounds",
        )
    )
    return section


def aggregator_section(run: RunResult, directory: Path) -> Section:
    """Fixed aggregators against FedRandom: stability of contributions and payments."""
    table = run.tables["aggregators"]
    _save_table(table, directory, "aggregators")
    section = Section("Aggregator comparison")
    section.blocks.append(
        "Each aggregation rule of the pool and FedRandom, on the same data split, over the "
        "scenario's seeds (training randomness only). `contribution_cv`: spread of each client's "
        "reconstructed Shapley contribution across seeds over its mean; `rank_correlation`: "
        "agreement of contributions between seeds; `distance_*`: L1 distance of contribution "
        "shares to the data-size baseline or to retraining-based Shapley; `payment_cv`: spread "
        "of Myerson payments."
    )
    section.blocks.append(Table(table, "One row per aggregation rule (also in aggregators.csv)."))
    return section


def reproduce_section(run: RunResult, command: str) -> Section:
    section = Section("Reproduce")
    section.blocks.append(f"Run `dataprice {command} scenario.yaml` in this directory; the resolved scenario is below.")
    changed = changed_fields(run.scenario)
    section.blocks.append(Table(pd.DataFrame(changed, columns=["field", "value"]),
                                "What this scenario sets: every field that differs from its default."))
    section.blocks.append(Code(scenario_to_yaml(run.scenario), "yaml",
                               collapsed="The resolved scenario, every default filled in (click to open)"))
    return section


def _write_common(run: RunResult, directory: Path, kind: str) -> None:
    """Tables and provenance shared by run and comparison reports."""
    (directory / "scenario.yaml").write_text(scenario_to_yaml(run.scenario))
    _save_table(run.sellers_table(), directory, "sellers")
    _save_table(run.mechanisms_table(), directory, "mechanisms")
    _save_table(run.values_table(), directory, "values")
    _save_table(run.outcomes_table(), directory, "outcomes")
    _save_table(run.dynamics_table(), directory, "dynamics")
    _save_table(run.transactions_table(), directory, "transactions")
    examples = example_table(run)
    if not examples.empty:
        _save_table(examples, directory, "examples")
    valuations = {str(rep.replicate): {m: r.to_dict() for m, r in rep.values.items()} for rep in run.replicates}
    (directory / "valuations.json").write_text(json.dumps(valuations, indent=1, default=float))
    (directory / "provenance.json").write_text(json.dumps(run.provenance, indent=1))
    (directory / "timings.json").write_text(
        json.dumps({"total_seconds": run.seconds, "replicate_seconds": [r.seconds for r in run.replicates]}, indent=1)
    )
    write_run(run, directory, kind)


def load_results(directory: str | Path) -> tuple[RunResult, str]:
    """The run saved in a report directory and its kind (``run`` or ``compare``).

    Reads only data (JSON, YAML, Parquet), each file checked against the directory's
    manifest (:func:`dataprice.experiment.persist.read_run`); raises a one-line
    :class:`~dataprice.errors.DataError` when the directory is not a report, is damaged, or
    was written by a newer schema.
    """
    from dataprice.experiment.persist import read_run

    return read_run(directory)


def rebuild_report(directory: str | Path, out_dir: str | Path | None = None, *, statements: str | None = None) -> Path:
    """Write the report again from the run saved in ``directory`` (to ``out_dir``, default
    in place), with this version's report code (``statements="pdf"``: see :func:`write_report`)."""
    run, kind = load_results(directory)
    target = Path(out_dir) if out_dir is not None else Path(directory)
    if kind == "compare":
        if statements == "pdf":
            from dataprice.errors import OutputError

            raise OutputError(f"--statements pdf: {directory} is a comparison report, which has no seller statements "
                              "(run the scenario with `dataprice run` for those)")
        return write_comparison(run, target)
    return write_report(run, target, statements=statements)


def write_report(run: RunResult, out_dir: str | Path, *, statements: str | None = None) -> Path:
    """Write the report for ``run`` to ``out_dir`` (replacing it only when complete).

    ``statements="pdf"`` also prints each seller's statement to ``statements/<seller>.pdf``
    (one A4 page each) with headless Chromium; without a browser that fails with one line,
    before anything is replaced.
    """

    def fill(tmp: Path) -> None:
        _write_common(run, tmp, "run")
        title, intro, sections = build_sections(run, tmp)
        _render(tmp, title, intro, sections)
        if statements == "pdf":
            write_statement_pdfs(run, tmp, [x for x in sections if x.kind == "statement"])

    if statements not in (None, "html", "pdf"):
        raise ValueError(f"statements: 'html' or 'pdf', got {statements!r}")
    if statements == "pdf":
        require_browser()
    return write_atomically(out_dir, fill, "run")


def require_browser() -> None:
    """Refuse, with one line, when PDF statements cannot be printed here."""
    from dataprice.errors import OutputError
    from dataprice.report.browser import browser_available

    missing = browser_available()
    if missing:
        raise OutputError(f"--statements pdf needs headless Chromium: {missing}")


def write_statement_pdfs(run: RunResult, folder: Path, statements: list[Section]) -> list[Path]:
    """``statements/<seller>.pdf``: each statement alone on a page (its own HTML printed by
    Chromium, then removed), under the report's title and, for a smoke test, its banner."""
    from dataprice.report.browser import print_pdfs

    out = folder / "statements"
    out.mkdir()
    s = run.scenario
    intro: list = [Banner(s.smoke_test)] if s.smoke_test else []
    intro.append(f"Seed {s.seed}. The full report, with every seller and the method behind each figure, is "
                 "`report.html` in the same folder.")
    pages: list[tuple[Path, Path]] = []
    taken: set[str] = set()
    for section in statements:
        # a file name per seller: ASCII letters, digits, - and _ kept, unique even on a case-blind disk
        stem = unique_name(section.title.removeprefix("Statement: ")[:80], taken, keep=r"A-Za-z0-9_-", sep="_",
                           fallback="seller")
        html = out / f"{stem}.html"
        alone = Section(section.title, section.blocks, kind="statement alone", level=section.level)
        html.write_text(to_html(f"Compensation report: {s.name}", intro, [alone]))
        pages.append((html, out / f"{stem}.pdf"))
    written = print_pdfs(pages)
    for html, _ in pages:
        html.unlink()
    return written


def _render(folder: Path, title: str, intro: list, sections: list[Section]) -> None:
    """``report.md`` and ``report.html`` of the sections, with a glossary of the labels its
    tables show (the CSV files' column names) before the last section."""
    shown = [c for section in sections for block in section.blocks if isinstance(block, Table)
             for c in block.frame.columns]
    names = glossary(shown)
    if not names.empty:
        words = Section("Glossary", [Table(names, "The report's column labels and the columns of the CSV and "
                                                  "Parquet files they show; amounts are in the buyer's unit of money.")])
        sections = [*sections[:-1], words, sections[-1]]
    (folder / "report.md").write_text(to_markdown(title, intro, sections))
    (folder / "report.html").write_text(to_html(title, intro, sections))


def write_comparison(run: RunResult, out_dir: str | Path) -> Path:
    """Write the mechanism comparison for ``run`` (several seeds, every rule) to ``out_dir``."""
    from dataprice.experiment.compare import METRICS, comparison_table, per_seed_metrics

    def fill(tmp: Path) -> None:
        _write_common(run, tmp, "compare")
        table = comparison_table(run)
        _save_table(table, tmp, "comparison")
        _save_table(per_seed_metrics(run), tmp, "per_seed")
        s = run.scenario
        title = f"Mechanism comparison: {s.name}"
        intro: list = [Banner(s.smoke_test)] if s.smoke_test else []
        intro += [s.description.strip()] if s.description.strip() else []
        intro.append(
            f"{s.sellers.count} sellers, buyer `{s.buyer.task}`, {len(run.replicates)} seeds, {s.rounds} rounds per seed, "
            f"sellers bid `{s.bidding.strategy}`; every payment rule runs on the same seeds and the same random draws."
        )
        summary = Section("Comparison")
        show = ["rule"] + [f"{m}_mean" for m in METRICS] + ["payment_cv", "rank_correlation"]
        summary.blocks.append(Table(table[show], "Means over seeds (standard deviations in comparison.csv)."))
        summary.blocks.append(
            "Columns: " + "; ".join(f"**{m}**: {text}" for m, text in METRICS.items())
            + "; **payment_cv**: spread of each seller's payment across seeds over its mean; "
            "**rank_correlation**: Spearman correlation of payments between seeds."
        )
        sections = [summary, dynamics_section(run, tmp), reproduce_section(run, "compare")]
        _render(tmp, title, intro, sections)

    return write_atomically(out_dir, fill, "compare")


def write_atomically(out_dir: str | Path, fill, kind: str = "run") -> Path:
    """Call ``fill(folder)`` on a fresh hidden sibling folder, seal it and swap it in for
    ``out_dir`` -- which is replaced only if it is empty or a report dataprice wrote
    (:func:`dataprice.safedir.write_directory`)."""
    return write_directory(out_dir, fill, fmt=REPORT_FORMAT, schema=SCHEMA, what="report directory", kind=kind)
