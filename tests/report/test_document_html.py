"""The HTML report on a page: wide tables split into blocks that fit A4 (measured in
Chromium), headers that sort their table, statements that print to one page each, and
sections marked for the print stylesheet. The Markdown rendering keeps tables whole.

The Chromium checks skip, with the reason, where the browser is not installed
(:func:`dataprice.report.browser.browser_available`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataprice.report.browser import _driver, browser_available, check_report, pdf_pages, print_pdfs
from dataprice.report.document import (
    PAGE_CONTENT_PX,
    Section,
    Table,
    _format_frame,
    column_width,
    split_columns,
    to_html,
    to_markdown,
)

NO_BROWSER = browser_available()
needs_browser = pytest.mark.skipif(NO_BROWSER is not None, reason=str(NO_BROWSER))
RULES = ["myerson", "vcg", "pay_as_bid", "shapley", "exact_banzhaf", "tmc_shapley", "loo"]


def wide_frame(rows: int = 6) -> pd.DataFrame:
    """A key column and 14 numeric columns under long labels ("paid under Myerson", ...)."""
    rng = np.random.default_rng(1)
    columns: dict[str, object] = {"seller": [f"s{k}" for k in range(rows)]}
    for rule in RULES:
        columns[f"payment[{rule}]"] = rng.normal(1_000, 800, rows)
        columns[f"utility[{rule}]"] = rng.normal(0, 50, rows)
    return pd.DataFrame(columns)


def tables_of(page: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Each ``<table>`` of ``page``: its caption, header labels and rows of cells."""
    found = []
    for table in re.findall(r"<table>(.*?)</table>", page, re.S):
        caption = re.search(r"<caption>(.*?)</caption>", table)
        head = re.findall(r"<th>(.*?)</th>", table)
        rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])]
        found.append((caption[1] if caption else "", head, rows))
    return found


def test_a_wide_table_splits_into_blocks_that_repeat_the_key_column():
    frame = wide_frame()
    shown = _format_frame(frame, 3)
    blocks = tables_of(to_html("T", [], [Section("S", [Table(frame, "Payments")])]))
    assert len(blocks) >= 3
    assert [caption for caption, _, _ in blocks] == ["Payments"] + ["Payments (continued)"] * (len(blocks) - 1)
    labels: list[str] = []
    for _, head, rows in blocks:
        assert head[0] == "seller" and [row[0] for row in rows] == shown["seller"].tolist()
        labels += head[1:]
        # each block's estimated width fits the page
        assert sum(column_width(label, shown[label].tolist()) for label in head) <= PAGE_CONTENT_PX
    assert labels == list(shown.columns[1:])  # every column once, in order
    for k, label in enumerate(labels):
        block = next(b for b in blocks if label in b[1])
        assert [row[block[1].index(label)] for row in block[2]] == shown[label].tolist(), k
    # every cell once across the blocks (the key column aside)
    cells = [cell for _, _, rows in blocks for row in rows for cell in row[1:]]
    assert sorted(cells) == sorted(shown.iloc[:, 1:].to_numpy().ravel().tolist())


def test_a_table_that_fits_is_one_block_and_a_single_column_is_never_split():
    narrow = pd.DataFrame({"seller": ["a", "b"], "payment[vcg]": [1.0, 2.0]})
    assert split_columns(_format_frame(narrow, 3)) == [[0, 1]]
    assert split_columns(pd.DataFrame({"x": ["y" * 500]})) == [[0]]
    # a column too wide for a page on its own still gets a block (it scrolls in the page)
    too_wide = pd.DataFrame({"k": ["a"], "h" * 80: ["1"], "short": ["1"]})
    assert split_columns(too_wide) == [[0, 1], [0, 2]]


def test_long_text_cells_wrap_and_count_as_wrapped():
    prose = "A description of the scenario, in words, long enough to need several lines. " * 2
    page = to_html("T", [], [Section("S", [Table(pd.DataFrame({"field": ["description", "seed"],
                                                                "value": [prose, "11"]}))])])
    assert f'<td class="wrap">{prose}</td>' in page and "<td>11</td>" in page
    assert column_width("value", [prose]) == column_width("value", ["x" * 40])


def test_markdown_keeps_a_wide_table_whole():
    markdown = to_markdown("T", [], [Section("S", [Table(wide_frame(), "Payments")])])
    header = [line for line in markdown.splitlines() if line.startswith("| seller")]
    assert len(header) == 1 and header[0].count(" | ") == 14
    assert "(continued)" not in markdown


def test_sections_carry_their_kind_level_and_a_unique_id():
    sections = [Section("Per-seller statements", ["All sellers."]),
                Section("Seller s1", ["Paid 3."], kind="statement", level=3),
                Section("Seller s1", ["Paid 4."], kind="statement", level=3)]
    page = to_html("T", [], sections)
    assert '<section id="per-seller-statements">\n<h2>Per-seller statements</h2>' in page
    assert '<section class="statement" id="seller-s1">\n<h3>Seller s1</h3>' in page
    assert '<section class="statement" id="seller-s1-2">' in page
    assert page.count("<script>") == 1 and page.index("<script>") > page.rindex("</section>")
    assert "### Seller s1" in to_markdown("T", [], sections)
    with pytest.raises(ValueError, match="level"):
        Section("x", level=1)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    """A report with a wide table, a sortable one, one of long text and three statements."""
    sortable = pd.DataFrame({
        "seller": ["s2", "s10", "s1", "s3", "s4"],
        "paid": [9.0, 1_200.5, -5.0, 10.0, np.nan],           # thousands separator, negative, empty
        "value": ["3.5 ± 0.2", "12 ± 1", "-1 (sd 2)", "[0.25, 0.5]", "100 [90, 110]"],
    })
    prose = pd.DataFrame({"field": ["description", "path", "seed"],
                          "value": ["Six sellers with learned bids, each a share of the digits data, " * 3,
                                    "/a/path/" + "without_a_space_" * 6 + ".parquet", "11"]})
    statements = [Section(f"Seller s{k}", [f"Seller s{k} was paid {k}.", Table(wide_frame().iloc[[k], :4])],
                          kind="statement", level=3) for k in range(3)]
    page = tmp_path_factory.mktemp("html") / "report.html"
    page.write_text(to_html("Report", ["intro"], [
        Section("Payments", [Table(wide_frame(), "Payments"), Table(sortable, "Sortable"), Table(prose)]),
        Section("Per-seller statements", ["One page each."]), *statements]))
    return page


@needs_browser
def test_in_chromium_at_a4_width_no_table_is_wider_than_the_page(report_page):
    found = check_report(report_page)
    assert found.ok, found
    assert found.wide_tables == []
    assert found.statements == 3
    assert found.tables == len(tables_of(report_page.read_text()))


@needs_browser
def test_the_browser_check_names_a_table_wider_than_the_page(tmp_path):
    page = tmp_path / "wide.html"
    too_wide = pd.DataFrame({"k": ["a"], "h" * 120: ["1"]})  # headers wrap at spaces only
    page.write_text(to_html("T", [], [Section("S", [Table(too_wide, "Too wide")])]))
    assert check_report(page).wide_tables == ["Too wide"]


@needs_browser
def test_clicking_a_header_sorts_its_table_numerically_then_reversed(report_page):
    from selenium.webdriver.common.by import By

    with _driver() as driver:
        driver.get(report_page.as_uri())
        table = next(t for t in driver.find_elements(By.TAG_NAME, "table")
                     if t.find_element(By.TAG_NAME, "caption").text == "Sortable")
        headers = table.find_elements(By.TAG_NAME, "th")

        def sellers() -> list[str]:
            return [row.find_element(By.TAG_NAME, "td").text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]

        headers[1].click()
        assert sellers() == ["s1", "s2", "s3", "s10", "s4"]  # -5 < 9 < 10 < 1,200.5, empty last
        assert headers[1].get_attribute("aria-sort") == "ascending"
        headers[1].click()
        assert sellers() == ["s10", "s3", "s2", "s1", "s4"]
        assert headers[1].get_attribute("aria-sort") == "descending"
        headers[2].click()  # by the leading number of "3.5 ± 0.2", "-1 (sd 2)", ...
        assert sellers() == ["s1", "s3", "s2", "s10", "s4"]
        assert headers[1].get_attribute("aria-sort") is None
        headers[0].click()  # text, with numbers inside compared as numbers
        assert sellers() == ["s1", "s2", "s3", "s4", "s10"]
        errors = [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    assert errors == []


@needs_browser
def test_a_statement_prints_to_one_page_and_each_statement_to_its_own(report_page, tmp_path, monkeypatch):
    one = tmp_path / "one.html"
    one.write_text(to_html("Statement for s1", ["intro"], [
        Section("Seller s1", ["Paid 12.3 for 40 points.", Table(wide_frame().iloc[[1]], "s1")], kind="statement", level=3)]))
    single, report = print_pdfs([(one, tmp_path / "one.pdf"), (report_page, tmp_path / "report.pdf")])
    assert single.read_bytes().startswith(b"%PDF")
    assert pdf_pages(single) == 1
    whole = pdf_pages(report)
    assert whole >= 3  # the wide tables' page(s), then statements s1 and s2 each opening a page
    monkeypatch.setenv("PATH", "")  # the fallback without pdfinfo counts the same
    assert (pdf_pages(single), pdf_pages(report)) == (1, whole)
