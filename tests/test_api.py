"""The notebook API end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import dataprice as dp
from dataprice.errors import ScenarioError

from .conftest import SMALL_CLASSIFIER


def test_load_run_tables_write_reopen_and_diff(tmp_path):
    scenario = dp.load(SMALL_CLASSIFIER, replicates=1, audit={"enabled": False})
    assert scenario.replicates == 1 and scenario.audit.grid_points == 9  # merged, not replaced
    run = dp.run(scenario, progress=False)
    sellers = run.sellers_table()
    assert isinstance(sellers, pd.DataFrame) and len(sellers) == 5
    assert {"value[exact_shapley]", "payment[myerson]"} <= set(sellers.columns)
    assert set(dp.comparison(run)["rule"]) == set(scenario.market.payment_rules)
    out = dp.write(run, tmp_path / "a")
    again = dp.open_report(out)
    pd.testing.assert_frame_equal(again.sellers_table(), sellers)
    other = dp.write(dp.run(dp.load(scenario, seed=9), progress=False), tmp_path / "b")
    assert dp.diff(out, other).scenario_changes == ["seed: 4 -> 9"]


def test_small_run_of_a_library_scenario():
    run = dp.run(Path(__file__).resolve().parent.parent / "scenarios" / "reseller.yaml", small=True, progress=False)
    assert run.scenario.name == "reseller_small"
    assert all(getattr(m, "max_evaluations", None) is None or m.max_evaluations <= 300 for m in run.scenario.valuation)
    # in a notebook: a one-line repr (not the 11.8k characters of the dataclass), and a summary table
    text = repr(run)
    assert len(text) < 400 and "\n" not in text and text.startswith("RunResult('reseller_small': 5 sellers")
    assert "smoke test" in text
    html = run._repr_html_()
    assert html.count("<tr") == 1 + len(run.rules) and "total_paid" in html and "Smoke test" in html
    for rule in run.rules:
        assert f"<td>{rule}</td>" in html


def test_bad_input_is_one_line():
    with pytest.raises(ScenarioError, match="sellers.count"):
        dp.load({**SMALL_CLASSIFIER, "sellers": {"count": 0}})


def test_api_names_are_not_shadowed_by_submodules():
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(dp.__path__, "dataprice."):
        if module.name.count(".") == 1:
            importlib.import_module(module.name)  # sets dataprice.<submodule>
    for name in dp._API:
        assert callable(getattr(dp, name)) and not isinstance(getattr(dp, name), type(dp)), name
