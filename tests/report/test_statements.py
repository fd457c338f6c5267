"""Seller statements: every "why" line checked against the run's own figures, on a user's CSV
read through the public loader, and `--statements pdf` from the command line."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from dataprice.cli import main
from dataprice.experiment import run_scenario
from dataprice.report.browser import browser_available, pdf_pages
from dataprice.report.statements import _facts, statements_section, why
from dataprice.scenario import load_scenario

NO_BROWSER = browser_available()


@pytest.fixture(scope="module")
def user_scenario(tmp_path_factory):
    """Four labs' rows of a wine table written as the user's CSV; lab_d's labels are shuffled."""
    folder = tmp_path_factory.mktemp("user")
    data = load_wine()
    rng = np.random.default_rng(0)
    table = pd.DataFrame(data.data[:, :6], columns=[f"m{k}" for k in range(6)])
    table["cultivar"] = data.target
    table["lab"] = [f"lab_{'abcd'[k % 4]}" for k in range(len(table))]
    noisy = table["lab"] == "lab_d"
    table.loc[noisy, "cultivar"] = rng.permutation(table.loc[noisy, "cultivar"].to_numpy())
    table.to_csv(folder / "rows.csv", index=False)
    (folder / "scenario.yaml").write_text("""
name: labs
seed: 3
sellers:
  count: 4
  costs: {lab_a: 1.0, lab_b: 2.0, lab_c: 25.0, lab_d: 1.5}
buyer:
  task: classifier
  table: {file: rows.csv, owner_column: lab, label_column: cultivar}
  validation_fraction: 0.3
  model: logistic
  value_per_quality: 100
valuation:
  - method: loo
  - method: exact_shapley
market:
  payment_rules: [loo, shapley, myerson, vcg]
audit:
  grid_points: 5
uncertainty:
  resamples: 30
""")
    return folder / "scenario.yaml"


@pytest.fixture(scope="module")
def run(user_scenario):
    return run_scenario(load_scenario(user_scenario), progress=False)


def number_after(text: str, phrase: str) -> float:
    found = re.search(re.escape(phrase) + r" (-?[\d,]+\.\d\d)", text)
    assert found, (phrase, text)
    return float(found.group(1).replace(",", ""))


def test_every_why_line_says_the_runs_own_figures(run):
    facts = _facts(run)
    sellers = facts.sellers
    rep = run.replicates[0]
    chosen = {rule: rep.outcomes[rule][-1].selected for rule in run.rules}
    assert chosen["myerson"].any() and not chosen["myerson"].all()  # the expensive lab is left out
    for j, name in enumerate(run.seller_names):
        pay = {rule: float(sellers[f"payment[{rule}]"].iloc[j]) for rule in run.rules}
        if chosen["myerson"][j]:
            line = why(run, facts, j, "myerson")
            # Myerson pays the critical report, and the line says both
            assert np.isclose(rep.critical["myerson"][j], pay["myerson"])
            assert number_after(line, "paid you") == pytest.approx(pay["myerson"], abs=0.006)
            assert number_after(line, "at any report up to") == pytest.approx(pay["myerson"], abs=0.006)
        if chosen["loo"][j]:
            line = why(run, facts, j, "loo")
            bought = rep.outcomes["loo"][-1].value
            assert number_after(line, "bought was") == pytest.approx(bought, abs=0.006)
            assert number_after(line, "would have been") == pytest.approx(bought - pay["loo"], abs=0.006)
        if chosen["shapley"][j]:
            line = why(run, facts, j, "shapley")
            assert "among the sellers selected" in line and "not among all sellers" in line
        if not chosen["vcg"][j]:
            line = why(run, facts, j, "vcg")
            assert "not selected" in line
            report = float(sellers["bid"].iloc[j])
            assert number_after(line, "You reported") == pytest.approx(report, abs=0.006)
            critical = rep.critical["vcg"][j]
            assert critical < report  # that is why it lost
            if critical > 0:
                assert number_after(line, "selected at a report up to") == pytest.approx(critical, abs=0.006)
            for k in np.flatnonzero(chosen["vcg"]):
                assert run.seller_names[k] in line  # whom the buyer took instead
            assert name not in line.split("instead")[0].split("took")[-1]


def test_one_statement_per_seller_with_intervals_and_the_shapley_breakdown(run):
    head, pages = statements_section(run)
    assert [p.title for p in pages] == [f"Statement: {n}" for n in run.seller_names]
    assert all(p.kind == "statement" for p in pages)
    sellers = _facts(run).sellers
    for rule in run.rules:
        lo, hi = sellers[f"payment_lo[{rule}]"], sellers[f"payment_hi[{rule}]"]
        assert (lo <= hi + 1e-12).all()
    by_size = np.array(run.replicates[0].values["exact_shapley"].extra["by_size"])
    assert np.allclose(by_size.mean(axis=1), run.replicates[0].values["exact_shapley"].values)
    bars = [b for b in pages[0].blocks if type(b).__name__ == "Bars"]
    assert len(bars) == 1 and np.allclose(bars[0].values, by_size[0])
    assert "resampling the buyer's evaluation set (30 draws per replicate" in head.blocks[0]


@pytest.mark.skipif(NO_BROWSER is not None, reason=str(NO_BROWSER))
def test_statements_pdf_from_the_command_line_one_page_each(user_scenario, tmp_path):
    out = tmp_path / "report"
    assert main(["run", str(user_scenario), "--out", str(out), "-q", "--statements", "pdf"]) == 0
    pdfs = sorted((out / "statements").glob("*.pdf"))
    assert [p.stem for p in pdfs] == ["lab_a", "lab_b", "lab_c", "lab_d"]
    assert [pdf_pages(p) for p in pdfs] == [1, 1, 1, 1]
    assert not list((out / "statements").glob("*.html"))  # the pages printed are not left behind


def test_statements_pdf_without_a_browser_is_one_line_and_no_report(user_scenario, tmp_path, monkeypatch, capsys):
    import dataprice.report.browser as browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium-for-test")
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    out = tmp_path / "report"
    assert main(["run", str(user_scenario), "--out", str(out), "-q", "--statements", "pdf"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--statements pdf needs headless Chromium" in err[0]
    assert not out.exists()


def test_with_a_budget_the_myerson_line_does_not_claim_the_critical_report(user_scenario):
    """A budget scales payments down pro rata, below the critical report: the statement then
    gives the rule's own note instead of 'paid X, your critical report'."""
    scenario = load_scenario(user_scenario, {"market": {"budget": 1.0}, "uncertainty": {"resamples": 0}})
    run = run_scenario(scenario, progress=False)
    assert all(not rep.critical for rep in run.replicates)
    facts = _facts(run)
    chosen = run.replicates[0].outcomes["myerson"][-1].selected
    j = int(np.flatnonzero(chosen)[0])
    line = why(run, facts, j, "myerson")
    assert "critical report" not in line and "critical bid" in line  # the rule's note
