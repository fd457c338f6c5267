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
        self.replicates = []  # no finding made by the buyer's market

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


def _query_log_market(folder: Path, scores: list[tuple[str, str, float]]) -> Path:
    folder.mkdir()
    (folder / "documents.csv").write_text(
        "doc_id,owner,text,price\nd1,a,first,0.5\nd2,b,second,0.4\nd3,c,third,0.3\n")
    (folder / "questions.csv").write_text("question_id,question\nq1,one?\nq2,two?\n")
    (folder / "log.csv").write_text("question_id,doc_id,score\n" + "".join(f"{q},{d},{s}\n" for q, d, s in scores))
    path = folder / "scenario.yaml"
    path.write_text(
        "name: alone\nseed: 1\nsellers: {count: 3}\n"
        "buyer: {task: rag_single_document, candidates_from: query_log, query_log: log.csv,\n"
        "        corpus: {source: files, documents: documents.csv, questions: questions.csv}}\n"
        "valuation: [{method: exact_shapley}]\nmarket: {payment_rules: [loo, myerson, vcg]}\n"
    )
    return path


def test_a_per_query_market_without_competition_says_so(tmp_path):
    """Each query's only valued candidate belongs to one owner (the others score 0): the
    report says no document competes; with two valued owners on a query it says nothing."""
    alone = _query_log_market(tmp_path / "alone", [("q1", "d1", 1.0), ("q1", "d2", 0.0), ("q2", "d3", 2.0)])
    assert main(["run", str(alone), "--quiet", "--out", str(tmp_path / "a")]) == 0
    report = (tmp_path / "a" / "report.md").read_text()
    assert "Read with care:** No query has two owners with a valued candidate (2 of 2 queries have exactly one" \
        in report
    competing = _query_log_market(tmp_path / "two", [("q1", "d1", 1.0), ("q1", "d2", 0.5), ("q2", "d3", 2.0)])
    assert main(["run", str(competing), "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert "No query has two owners" not in (tmp_path / "b" / "report.md").read_text()
