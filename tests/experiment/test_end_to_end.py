"""Whole runs: reports written, identical for the same seed, engine-independent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dataprice.cli import main
from dataprice.experiment import run_scenario
from dataprice.scenario import parse_scenario

from ..conftest import SMALL_CLASSIFIER, run_serial_and_parallel, same_tree


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


REPORT_FILES = {
    "scenario.yaml", "sellers.csv", "sellers.parquet", "mechanisms.csv", "mechanisms.parquet",
    "values.csv", "values.parquet", "outcomes.csv", "outcomes.parquet", "valuations.json",
    "dynamics.csv", "dynamics.parquet", "transactions.csv", "transactions.parquet",
    "provenance.json", "timings.json", "payments_by_rule.png", "value_vs_cost.png", "mechanisms.png",
    "report.md", "report.html", "manifest.json", "run",
}


def test_run_writes_a_complete_report_and_is_reproducible(tmp_path):
    scenario = _write(tmp_path, SMALL_CLASSIFIER)
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(scenario), "--out", str(a), "--quiet"]) == 0
    assert main(["run", str(scenario), "--out", str(b), "--quiet"]) == 0
    assert {p.name for p in a.iterdir()} == REPORT_FILES
    assert not list(a.rglob("*.pkl"))
    assert same_tree(a, b) == []
    html = (a / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    sellers = pd.read_csv(a / "sellers.csv")
    assert {"cost", "bid", "value[exact_shapley]", "payment[myerson]", "utility[vcg]"} <= set(sellers.columns)
    # the noisy seller is valued lowest by exact Shapley
    assert sellers["value[exact_shapley]"].idxmin() == 4


def test_different_seed_gives_a_different_report(tmp_path):
    scenario = _write(tmp_path, SMALL_CLASSIFIER)
    main(["run", str(scenario), "--out", str(tmp_path / "a"), "--quiet"])
    main(["run", str(scenario), "--out", str(tmp_path / "b"), "--quiet", "--seed", "5"])
    assert (tmp_path / "a" / "values.csv").read_text() != (tmp_path / "b" / "values.csv").read_text()


def test_failed_run_keeps_the_previous_report(tmp_path, monkeypatch):
    scenario = _write(tmp_path, SMALL_CLASSIFIER)
    out = tmp_path / "r"
    main(["run", str(scenario), "--out", str(out), "--quiet"])
    before = (out / "report.md").read_text()

    import dataprice.report.writer as writer

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "to_html", boom)
    assert main(["run", str(scenario), "--out", str(out), "--quiet", "--seed", "9"]) == 1  # one line, exit 1
    with pytest.raises(RuntimeError):
        main(["--traceback", "run", str(scenario), "--out", str(out), "--quiet", "--seed", "9"])
    assert (out / "report.md").read_text() == before
    # nothing half-written; the finished replicates wait beside the report for a re-run
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.checkpoints", "r", "small.yaml"]
    monkeypatch.undo()
    assert main(["run", str(scenario), "--out", str(out), "--quiet", "--seed", "9"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "small.yaml"]
    assert json.loads((out / "provenance.json").read_text())["replicates_from_checkpoint"] == 2
    main(["run", str(scenario), "--out", str(tmp_path / "fresh"), "--quiet", "--seed", "9"])
    for name in ("values.csv", "outcomes.csv", "report.md"):
        assert (out / name).read_text() == (tmp_path / "fresh" / name).read_text(), name


def test_interrupted_replicates_resume_to_the_same_result(tmp_path):
    """Replicate checkpoints: a run stopped after some replicates continues where it stopped."""
    from dataprice.experiment import ReplicateCheckpoints

    scenario = parse_scenario({**SMALL_CLASSIFIER, "replicates": 3, "audit": {"enabled": False}})
    whole = run_scenario(scenario, progress=False)
    folder = tmp_path / "ckpt"
    first = run_scenario(scenario, progress=False, checkpoint_dir=folder)
    checkpoints = ReplicateCheckpoints(folder, scenario)
    shutil.rmtree(checkpoints.path(2))  # as if the run had been killed during replicate 2
    resumed = run_scenario(scenario, progress=False, checkpoint_dir=folder)
    assert resumed.provenance["replicates_from_checkpoint"] == 2
    pd.testing.assert_frame_equal(resumed.values_table(), whole.values_table())
    pd.testing.assert_frame_equal(resumed.outcomes_table(), first.outcomes_table())
    other = parse_scenario({**SMALL_CLASSIFIER, "replicates": 3, "seed": 99, "audit": {"enabled": False}})
    assert ReplicateCheckpoints(folder, other).load(0) is None  # a changed scenario never reuses them


def test_same_values_with_serial_and_two_local_workers():
    scenario = parse_scenario({**SMALL_CLASSIFIER, "replicates": 3, "audit": {"enabled": False}})
    serial, parallel = run_serial_and_parallel(scenario)
    pd.testing.assert_frame_equal(serial.values_table(), parallel.values_table())
    pd.testing.assert_frame_equal(serial.outcomes_table(), parallel.outcomes_table())


def test_continuous_and_single_winner_runs(tmp_path):
    mean = {
        "name": "mean",
        "sellers": {"count": 4, "costs": [0.1, 0.2, 0.4, 0.8]},
        "buyer": {"task": "mean_estimation", "n_buyers": 3, "noise": [0.2, 0.5, 1.0, 0.3]},
        "valuation": [{"method": "loo"}, {"method": "exact_shapley"}],
        "audit": {"grid_points": 7},
    }
    out = tmp_path / "mean"
    assert main(["run", str(_write(tmp_path, mean)), "--out", str(out), "--quiet"]) == 0
    mech = pd.read_csv(out / "mechanisms.csv").set_index("rule")
    assert mech.loc["myerson", "total_paid"] == pytest.approx(mech.loc["vcg", "total_paid"], rel=1e-6)
    assert bool(mech.loc["myerson", "truthful"]) and bool(mech.loc["vcg", "truthful"])

    single = {
        "name": "single",
        "sellers": {"count": 4, "costs": [1.0, 2.0, 0.5, 3.0]},
        "buyer": {"task": "single_winner", "values": [5.0, 8.0, 4.0, 9.0]},
        "valuation": [{"method": "exact_shapley"}],
    }
    out = tmp_path / "single"
    assert main(["run", str(_write(tmp_path, single)), "--out", str(out), "--quiet"]) == 0
    sellers = pd.read_csv(out / "sellers.csv").set_index("seller")
    # nets: 4, 6, 3.5, 6 -> seller_1 wins the tie by lowest index; critical = 8 - 6 = 2
    assert sellers.loc["seller_1", "payment[myerson]"] == pytest.approx(2.0)
    assert sellers["selected[myerson]"].sum() == 1


def test_random_markup_rounds_vary_bids(tmp_path):
    data = {
        **SMALL_CLASSIFIER,
        "replicates": 1,
        "rounds": 3,
        "bidding": {"strategy": "random_markup", "markup_low": 0.0, "markup_high": 1.0},
        "valuation": [{"method": "loo"}],
        "audit": {"enabled": False},
    }
    result = run_scenario(parse_scenario(data), progress=False)
    bids = result.outcomes_table().query("rule == 'vcg'").pivot(index="round", columns="seller", values="bid")
    assert bids.shape == (3, 5)
    assert not np.allclose(bids.iloc[0], bids.iloc[1])
    assert np.all(bids.to_numpy() >= result.costs - 1e-12)


def test_a_sweep_reuses_the_persistent_coalition_cache(tmp_path):
    """With ``engine.coalition_cache``, a second run of the same game (here: other payment
    rules and another Monte Carlo budget) computes no coalition value it has seen and
    gives the same values; another buyer seed is a different game and computes its own."""
    path = str(tmp_path / "coalitions.sqlite")
    base = {**SMALL_CLASSIFIER, "replicates": 1, "audit": {"enabled": False},
            "engine": {"coalition_cache": True, "coalition_cache_path": path}}
    first = run_scenario(parse_scenario(base), progress=False)
    assert first.replicates[0].game_evaluations == 2**5
    sweep = {**base, "market": {"payment_rules": ["myerson", "vcg"]}}
    second = run_scenario(parse_scenario(sweep), progress=False)
    assert second.replicates[0].game_evaluations == 0
    pd.testing.assert_frame_equal(second.values_table(), first.values_table())
    other = run_scenario(parse_scenario({**base, "seed": 5}), progress=False)
    assert other.replicates[0].game_evaluations == 2**5


def test_engine_and_coalition_cache_chosen_on_the_command_line(tmp_path):
    scenario = _write(tmp_path, {**SMALL_CLASSIFIER, "replicates": 2, "audit": {"enabled": False}})
    cache = tmp_path / "values.sqlite"
    out = tmp_path / "report"
    argv = ["run", str(scenario), "--out", str(out), "--quiet", "--engine", "loky", "--workers", "2",
            "--coalition-cache", str(cache)]
    assert main(argv) == 0
    saved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert saved["engine"]["kind"] == "loky" and saved["engine"]["workers"] == 2
    assert saved["engine"]["coalition_cache"] is True
    from dataprice.valuation.store import CoalitionStore

    assert CoalitionStore(cache).count() == 2 * 2**5  # both replicates' games, written by the workers


def test_report_command_rebuilds_the_same_report_from_saved_results(tmp_path):
    scenario = _write(tmp_path, {**SMALL_CLASSIFIER, "replicates": 1})
    first = tmp_path / "first"
    assert main(["run", str(scenario), "--out", str(first), "--quiet"]) == 0
    rebuilt = tmp_path / "rebuilt"
    assert main(["report", str(first), "--out", str(rebuilt)]) == 0
    assert same_tree(first, rebuilt) == []  # every byte, the saved run and manifest included
    assert json.loads((rebuilt / "timings.json").read_text()) == json.loads((first / "timings.json").read_text())


def test_report_command_on_a_directory_without_results_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "manifest.json" in err


def test_diff_names_the_sellers_whose_payment_changed_and_why(tmp_path):
    """A reserve below the cheapest seller's cost excludes it: its payment drops to 0
    because it is no longer selected, and the scenario change is listed."""
    base = {**SMALL_CLASSIFIER, "replicates": 1, "audit": {"enabled": False},
            "sellers": {**SMALL_CLASSIFIER["sellers"], "costs": [0.5, 1.0, 1.5, 2.0, 2.9]},
            "market": {"payment_rules": ["myerson", "pay_as_bid"]}}
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(_write(tmp_path, base)), "--out", str(a), "--quiet"]) == 0
    with_reserve = {**base, "market": {**base["market"], "reserve": 0.4}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(with_reserve))
    assert main(["run", str(tmp_path / "b.yaml"), "--out", str(b), "--quiet"]) == 0

    from dataprice.report.diff import diff_reports

    diff = diff_reports(a, b)
    assert "market.reserve: None -> 0.4" in diff.scenario_changes
    row = diff.payments.set_index(["seller", "rule"]).loc[("seller_0", "pay_as_bid")]
    assert row["payment_a"] == pytest.approx(0.5) and row["payment_b"] == 0.0
    assert "selected yes → no" in row["reasons"]
    out = tmp_path / "diff.md"
    assert main(["diff", str(a), str(b), "--out", str(out)]) == 0
    assert "seller_0" in out.read_text() and out.with_suffix(".csv").is_file()


def test_compare_reports_share_the_format_and_rebuild(tmp_path):
    scenario = _write(tmp_path, {**SMALL_CLASSIFIER, "audit": {"enabled": False}})
    out = tmp_path / "cmp"
    assert main(["compare", str(scenario), "--out", str(out), "--quiet", "--seeds", "2"]) == 0
    assert {"sellers.csv", "mechanisms.csv", "manifest.json", "run", "scenario.yaml", "comparison.csv"} <= {p.name for p in out.iterdir()}
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "comparison.csv").read_bytes() == (out / "comparison.csv").read_bytes()
    assert "Mechanism comparison" in (tmp_path / "again" / "report.md").read_text()
    # a comparison explains no single settlement: no statements to print, said in one line
    assert main(["report", str(out), "--out", str(tmp_path / "pdf"), "--statements", "pdf"]) != 0
    assert not (tmp_path / "pdf").exists()


def test_game_key_follows_the_content_of_user_data_files(tmp_path):
    """The coalition cache's key changes when a data file the buyer reads is edited, and
    not when only market settings change."""
    from dataprice.experiment import game_key
    from dataprice.scenario import load_scenario

    pd.DataFrame([("d1", "a", "Metformin treats diabetes."), ("d2", "b", "Salbutamol treats asthma.")],
                 columns=["doc_id", "owner", "text"]).to_csv(tmp_path / "docs.csv", index=False)
    pd.DataFrame([("q1", "What treats diabetes?", "d1", "Metformin")],
                 columns=["question_id", "question", "gold_doc_id", "answer"]).to_csv(tmp_path / "qs.csv", index=False)
    judge = tmp_path / "judge.csv"
    judge.write_text("question_id,doc_id,score\nq1,d1,0.9\n")
    data = {
        "name": "files", "sellers": {"count": 2, "costs": [0.1, 0.1]},
        "buyer": {"task": "rag", "corpus": {"source": "files", "documents": "docs.csv", "questions": "qs.csv"},
                  "top_k": 1, "utility": "replay", "replay_file": "judge.csv"},
        "valuation": [{"method": "loo"}],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    first = game_key(load_scenario(path), 0)
    path.write_text(yaml.safe_dump({**data, "market": {"payment_rules": ["vcg"]}}))
    assert game_key(load_scenario(path), 0) == first
    judge.write_text("question_id,doc_id,score\nq1,d1,0.5\n")
    assert game_key(load_scenario(path), 0) != first


def test_a_report_on_user_files_reopens_after_the_files_are_moved(tmp_path):
    """A report directory holds what its report shows (seller names from the user's
    documents file included) as data: it holds no pickle, and `dataprice report`,
    `dp.open_report` and `dataprice diff` work once the data files are gone."""
    import dataprice as dp

    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame([("d1", "alice", "Metformin treats type 2 diabetes."),
                  ("d2", "bob", "Salbutamol relieves asthma attacks."),
                  ("d3", "carol", "Amoxicillin treats bacterial infections.")],
                 columns=["doc_id", "owner", "text"]).to_csv(data / "docs.csv", index=False)
    pd.DataFrame([("q1", "What treats diabetes?", "d1"), ("q2", "What relieves asthma?", "d2")],
                 columns=["question_id", "question", "gold_doc_id"]).to_csv(data / "qs.csv", index=False)
    (data / "judge.csv").write_text("question_id,doc_id,score\nq1,d1,0.9\nq2,d2,0.7\nq1,d3,0.2\n")
    scenario = _write(tmp_path, {
        "name": "moved", "sellers": {"count": 3, "costs": {"alice": 0.1, "bob": 0.2, "carol": 0.3}},
        "buyer": {"task": "rag", "corpus": {"source": "files", "documents": "data/docs.csv",
                                            "questions": "data/qs.csv"},
                  "top_k": 1, "utility": "replay", "replay_file": "data/judge.csv", "value_per_quality": 10},
        "valuation": [{"method": "exact_shapley"}],
        "market": {"payment_rules": ["shapley", "myerson"]},
    })
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out), "--quiet"]) == 0
    before = pd.read_parquet(out / "sellers.parquet")
    shutil.move(str(data), str(tmp_path / "elsewhere"))

    assert not [p for p in out.rglob("*") if p.suffix in {".pkl", ".pickle", ".pt", ".npy"}]
    assert dp.open_report(out).seller_names == ["alice", "bob", "carol"]
    again = tmp_path / "again"
    assert main(["report", str(out), "--out", str(again)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(again / "sellers.parquet"), before)
    assert (again / "report.md").read_bytes() == (out / "report.md").read_bytes()
    assert main(["diff", str(out), str(again)]) == 0
