"""What a person reads: numbers printed as they are meant (counts without decimals, no
negative zero), a smoke-test run labelled as one on top of every report made from it, and
the time a command prints being the whole command's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from dataprice.cli import main
from dataprice.report.document import Banner, Section, Table, _format_frame, to_html, to_markdown
from dataprice.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_counts_print_as_integers_and_negative_zero_as_zero():
    frame = pd.DataFrame({
        "seller": ["a", "b", "c"],
        "data_points": [49.0, 43.0, 1200.0],           # counts stored as floats
        "payment": [-0.0001, 2.5, -1.25],              # -0.0001 rounds to zero at 3 digits
        "value": [0.0, np.nan, 3.0],                   # whole where given, one missing
        "selected": [True, False, True],
    })
    shown = _format_frame(frame, 3)
    assert shown["data points"].tolist() == ["49", "43", "1,200"]  # under its label
    assert shown["payment"].tolist() == ["0.000", "2.500", "-1.250"]
    assert shown["value"].tolist() == ["0", "", "3"]
    assert shown["selected"].tolist() == ["yes", "no", "yes"]
    assert "-0" not in " ".join(_format_frame(pd.DataFrame({"x": [-1e-12, -0.0]}), 3)["x"])


def test_a_banner_opens_both_renderings():
    sections = [Section("S", [Table(pd.DataFrame({"n": [1.0]}))])]
    md = to_markdown("T", [Banner("Smoke test: small"), "intro"], sections)
    assert md.splitlines()[2] == "> Smoke test: small"
    page = to_html("T", [Banner("Smoke test: `small`"), "intro"], sections)
    assert '<div class="banner" role="note">Smoke test: <code>small</code></div>' in page


def test_a_small_run_is_labelled_a_smoke_test_and_says_the_sizes_it_ran(tmp_path, capsys):
    out = tmp_path / "small"
    assert main(["run", str(SCENARIOS / "learning_sellers.yaml"), "--small", "-q", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    whole, run = map(float, re.search(r"\(([\d.]+) s in all; the run ([\d.]+) s\)", printed).groups())
    assert whole >= run > 0
    report = (out / "report.md").read_text()
    banner = report.splitlines()[2]
    assert banner.startswith("> Smoke test: `learning_sellers` ran at the size `--small` gives it: 2 replicates")
    assert "5 rounds (full size: 200)" in banner and "not the scenario's" in banner
    description = report.splitlines()[4]
    assert description.startswith("Smoke-test size of `learning_sellers`: 2 replicates")
    assert "At full size:" in description  # the full scenario's own words follow, named as such
    # a report rebuilt from the directory keeps the label
    again = tmp_path / "again"
    assert main(["report", str(out), "--out", str(again)]) == 0
    assert (again / "report.md").read_text().splitlines()[2] == banner
    # the full-size scenario carries no label, so its reports have no banner
    assert load_scenario(SCENARIOS / "learning_sellers.yaml").smoke_test is None


def test_tables_show_labels_and_the_glossary_names_the_csv_columns(tmp_path):
    from dataprice.report.labels import glossary, label

    assert label("value[exact_shapley]") == "value: exact Shapley"
    assert label("payment[my_plugin_rule]") == "paid under my plugin rule"  # a plugin's rule, readable too
    assert label("seller") == "seller"  # no label: shown as it is, and not in the glossary
    assert glossary(["seller", "payment[vcg]", "payment[vcg]"]).values.tolist() == [["paid under VCG", "payment[vcg]"]]
    out = tmp_path / "r"
    assert main(["run", str(SCENARIOS / "single_winner.yaml"), "--small", "-q", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| seller | document value | true cost | report | value: LOO |" in report
    assert "value[" not in report.split("## Glossary")[0]
    assert "| paid under Myerson | payment[myerson] |" in report.split("## Glossary")[1]
    assert "payment[myerson]" in pd.read_csv(out / "sellers.csv").columns  # the files keep the machine names


def test_the_reproduce_section_lists_what_the_scenario_sets_and_folds_the_rest(tmp_path):
    from dataprice.scenario import changed_fields, parse_scenario

    scenario = parse_scenario({
        "name": "t", "sellers": {"count": 3, "costs": [0.1, 0.2, 0.3]},
        "buyer": {"task": "single_winner", "values": [1.0, 2.0, 3.0]},
        "valuation": [{"method": "exact_shapley"}], "market": {"payment_rules": ["myerson"]},
        "audit": {"grid_points": 7},
    })
    assert changed_fields(scenario) == [
        ("name", "t"), ("sellers.count", "3"), ("sellers.costs", "[0.1, 0.2, 0.3]"), ("buyer.task", "single_winner"),
        ("buyer.values", "[1.0, 2.0, 3.0]"), ("valuation", '[{"method": "exact_shapley"}]'),
        ("market.payment_rules", '["myerson"]'), ("audit.grid_points", "7"),
    ]  # defaults (seed, rounds, engine, ...) are not listed
    out = tmp_path / "r"
    assert main(["run", str(SCENARIOS / "single_winner.yaml"), "--small", "-q", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "<td>sellers.count</td>" in page
    assert "<details><summary>The resolved scenario, every default filled in (click to open)</summary><pre>" in page
