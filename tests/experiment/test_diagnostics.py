"""Degenerate markets are named in the run's notes and the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dataprice.cli import main
from dataprice.experiment.diagnostics import diagnostics

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


class _Run:
    def __init__(self, rows):
        self.frame = pd.DataFrame(rows, columns=["rule", "seller", "selected", "payment"])

    def outcomes_table(self):
        return self.frame


def test_each_situation_is_recognised_on_its_own():
    everyone_same = _Run([("loo", "a", True, 1.0), ("loo", "b", True, 2.0),
                          ("vcg", "a", True, 1.0), ("vcg", "b", True, 2.0 + 1e-12)])
    found = diagnostics(everyone_same)
    assert len(found) == 2 and "Every seller was selected" in found[0] and "Every rule pays" in found[1]

    differ = _Run([("loo", "a", True, 1.0), ("loo", "b", False, 0.0),
                   ("vcg", "a", True, 1.5), ("vcg", "b", False, 0.0)])
    assert diagnostics(differ) == []

    one_rule = _Run([("loo", "a", False, 0.0), ("loo", "b", True, 2.0)])
    assert diagnostics(one_rule) == []


def test_a_run_where_the_rules_differ_has_no_finding(tmp_path):
    out = tmp_path / "q"
    assert main(["run", str(SCENARIOS / "quickstart.yaml"), "--small", "--quiet", "--out", str(out)]) == 0
    assert "Read with care" not in (out / "report.md").read_text()


def test_a_market_where_every_rule_pays_the_same_says_so(tmp_path):
    """In the shipped embeddings-file market every rule pays each seller the same: the run's
    notes and its report say so, and a report rebuilt from the directory still does."""
    import dataprice as dp

    out = tmp_path / "e"
    assert main(["run", str(SCENARIOS / "rag_embeddings_file.yaml"), "--small", "--quiet", "--out", str(out)]) == 0
    notes = dp.open_report(out).notes["diagnostics"]
    assert any("Every rule pays every seller the same" in n for n in notes)
    assert "Read with care:** Every rule pays" in (out / "report.md").read_text()
    again = tmp_path / "again"
    assert main(["report", str(out), "--out", str(again)]) == 0
    assert (again / "report.md").read_text() == (out / "report.md").read_text()
