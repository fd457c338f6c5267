"""The notebook API: load a scenario, run it, get DataFrames, write or reopen a report.

    import dataprice as dp

    scenario = dp.load("scenarios/quickstart.yaml", seed=3)   # a file, or a dict
    run = dp.run(scenario, small=True)                         # a RunResult
    run.sellers_table()                                        # one row per seller
    dp.comparison(run)                                         # one row per payment rule
    dp.write(run, "reports/mine")                              # report.html, report.md, tables
    again = dp.open_report("reports/mine")                     # the saved RunResult
    dp.diff("reports/mine", "reports/other").payments          # what changed, and why
    dp.use_plugin("mypkg.rules")                               # your own buyers, methods, rules

Everything here is a thin layer over :mod:`dataprice.scenario`, :mod:`dataprice.experiment`
and :mod:`dataprice.report`; errors are the same one-line :class:`DatapriceError` s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dataprice.experiment.results import RunResult
from dataprice.scenario import (
    Scenario,
    check_data_files,
    load_scenario,
    merge_overrides,
    parse_scenario,
    small_scenario,
)


def use_plugin(*modules: str) -> None:
    """Import plugin modules by name (their buyers, methods and rules become available to
    scenarios, here and in engine workers); see :mod:`dataprice.plugins`."""
    from dataprice.plugins import load_plugins

    load_plugins(modules)


def load(source: str | Path | dict | Scenario, **overrides: Any) -> Scenario:
    """A validated scenario from a YAML file, a dict or a scenario; keyword overrides replace
    top-level fields and merge into sections (``engine={"kind": "loky"}``)."""
    if isinstance(source, Scenario):
        if not overrides:
            return source
        source = source.model_dump(mode="json")
    if isinstance(source, dict):
        scenario = parse_scenario(merge_overrides(source, overrides))
        check_data_files(scenario)
        return scenario
    return load_scenario(source, overrides or None)


def run(
    scenario: str | Path | dict | Scenario, *, small: bool = False, progress: bool = True, engine=None,
    checkpoint_dir: str | Path | None = None,
) -> RunResult:
    """Run every replicate. ``small=True`` runs the scenario at CI size
    (:func:`~dataprice.scenario.small_scenario`); ``engine`` overrides the scenario's: an
    engine, or any ``concurrent.futures.Executor`` (your pool; dataprice does not shut it down)."""
    from dataprice.experiment import run_scenario

    resolved = load(scenario)
    if small:
        resolved = small_scenario(resolved)
    return run_scenario(resolved, progress=progress, engine=engine, checkpoint_dir=checkpoint_dir)


def comparison(result: RunResult) -> pd.DataFrame:
    """The payment rules side by side over the run's seeds: truthfulness, efficiency, cost,
    stability (what ``dataprice compare`` reports)."""
    from dataprice.experiment.compare import comparison_table

    return comparison_table(result)


def write(result: RunResult, out_dir: str | Path, *, comparison: bool = False) -> Path:
    """Write the report directory (atomically); ``comparison=True`` writes the compare report."""
    from dataprice.report import write_comparison, write_report

    return (write_comparison if comparison else write_report)(result, out_dir)


def open_report(directory: str | Path) -> RunResult:
    """The run saved in a report directory (data only, checked against its manifest; no
    pickle is read, and the scenario's data files are not needed)."""
    from dataprice.report.writer import load_results

    return load_results(directory)[0]


def diff(before: str | Path, after: str | Path):
    """Payment changes between two report directories (:class:`~dataprice.report.diff.ReportDiff`)."""
    from dataprice.report.diff import diff_reports

    return diff_reports(before, after)
