"""Every scenario in scenarios/ runs at small size, and its report opens in a real browser.

The browser is Debian's headless Chromium driven through chromedriver
(:mod:`dataprice.report.browser`); ``make test`` installs it when it can. Without it, the
runs and report checks still happen and only the browser part is skipped, with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dataprice.experiment import run_scenario
from dataprice.report import write_report
from dataprice.report.browser import browser_available, check_report, pdf_pages
from dataprice.report.statements import MAX_STATEMENTS
from dataprice.report.writer import (
    build_sections,
    load_results,
    rebuild_report,
    write_statement_pdfs,
)
from dataprice.scenario import load_scenario, small_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
NO_BROWSER = browser_available()
PRINTED = 24  # statements printed to PDF per scenario


def test_the_library_is_not_empty_and_documented():
    assert len(SCENARIOS) >= 10
    table = (ROOT / "scenarios" / "README.md").read_text()
    for path in SCENARIOS:
        assert f"`{path.name}`" in table, f"{path.name} is missing from scenarios/README.md"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_runs_small_and_its_report_opens_without_errors(path, tmp_path):
    scenario = small_scenario(load_scenario(path))
    out = write_report(run_scenario(scenario, progress=False), tmp_path / "report")
    for name in ("report.html", "report.md", "sellers.csv", "sellers.parquet", "mechanisms.csv", "scenario.yaml"):
        assert (out / name).is_file(), name
    assert '<div class="banner" role="note">Smoke test:' in (out / "report.html").read_text()  # --small says so
    assert "Which rule to use, on this run's figures." in (out / "report.md").read_text()
    if NO_BROWSER:
        pytest.skip(f"ran and wrote the report; browser check skipped: {NO_BROWSER}")
    page = check_report(out / "report.html")
    assert page.ok, page
    assert {"Summary", "Per-seller figures", "Statements", "Valuation methods", "Reproduce"} <= set(page.headings)
    assert page.tables >= 3 and page.images >= 2
    assert page.wide_tables == [], f"tables wider than an A4 page: {page.wide_tables}"
    run = load_results(out)[0]
    assert page.statements == min(len(run.seller_names), MAX_STATEMENTS)  # one statement per seller
    # `--statements pdf`: each seller's statement printed alone is one A4 page (every one in a
    # market of up to PRINTED sellers; the first PRINTED in a larger one, to keep the suite quick)
    if page.statements <= PRINTED:
        pdfs = sorted((rebuild_report(out, tmp_path / "with_pdf", statements="pdf") / "statements").glob("*.pdf"))
    else:
        _, _, sections = build_sections(run, tmp_path)
        pdfs = write_statement_pdfs(run, tmp_path, [x for x in sections if x.kind == "statement"][:PRINTED])
    assert len(pdfs) == min(page.statements, PRINTED)
    assert [pdf_pages(p) for p in pdfs] == [1] * len(pdfs), [p.name for p in pdfs if pdf_pages(p) != 1]


@pytest.mark.skipif(NO_BROWSER is not None, reason=str(NO_BROWSER))
def test_the_browser_check_catches_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><head><title>broken</title></head><body><h1>x</h1>"
        '<img src="missing.png" alt="missing plot"><script>notDefined();</script>'
        '<img src="https://example.invalid/x.png" alt="remote"></body></html>'
    )
    found = check_report(page)
    assert not found.ok
    assert any("notDefined" in message for message in found.console_errors)
    assert "missing plot" in found.broken_images
    assert any("example.invalid" in url for url in found.external_resources)
