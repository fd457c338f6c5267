"""dataprice never destroys a user's files and never runs code it finds on disk.

Every case here was a real defect: ``--out DIR``, a scenario's ``output_dir`` and
``dataprice report --out DIR`` deleted whatever DIR held, and ``dataprice report`` and
resumed runs unpickled files from report and checkpoint directories.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import dataprice as dp
from dataprice.cli import main
from dataprice.errors import DataError, OutputError
from dataprice.safedir import PARTIAL_MARKER, check_output_dir, clean_stale, write_directory

SRC = Path(__file__).resolve().parents[1] / "src"

SINGLE = {
    "name": "single",
    "seed": 3,
    "sellers": {"count": 6, "costs": {"distribution": "uniform", "low": 0.0, "high": 0.4}},
    "buyer": {"task": "single_winner", "value_distribution": {"distribution": "uniform", "low": 0.2, "high": 1.0}},
    "valuation": [{"method": "loo"}, {"method": "exact_shapley"}],
    "audit": {"grid_points": 5},
}


def _scenario(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "single.yaml"
    path.write_text(yaml.safe_dump({**SINGLE, **changes}))
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# --- output directories ----------------------------------------------------------------------------


def test_run_refuses_a_folder_it_did_not_write_and_leaves_it_intact(tmp_path, capsys, monkeypatch):
    mydata = tmp_path / "x" / "mydata"
    (mydata / "chapters").mkdir(parents=True)
    (mydata / "thesis.tex").write_text("precious")
    (mydata / "chapters" / "one.tex").write_text("also precious")
    import dataprice.experiment as runner

    def must_not_run(*args, **kwargs):
        raise AssertionError("the refusal must come before any work")

    monkeypatch.setattr(runner, "run_scenario", must_not_run)
    assert main(["run", str(_scenario(tmp_path)), "-q", "--out", str(mydata)]) == 2
    err = _one_error_line(capsys)
    assert str(mydata) in err and "not written by dataprice" in err
    assert (mydata / "thesis.tex").read_text() == "precious"
    assert (mydata / "chapters" / "one.tex").read_text() == "also precious"


def test_output_dir_in_a_received_scenario_cannot_reach_outside_or_delete(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.md").write_text("mine")
    for target in (str(home), "../elsewhere", "reports/../../x"):
        assert main(["validate", str(_scenario(tmp_path, output_dir=target))]) == 2
        assert "output_dir" in _one_error_line(capsys)
    (tmp_path / "mine" / "nested").mkdir(parents=True)
    (tmp_path / "mine" / "nested" / "keep.txt").write_text("mine")
    assert main(["run", str(_scenario(tmp_path, output_dir="mine")), "-q"]) == 2
    assert "not written by dataprice" in _one_error_line(capsys)
    assert (tmp_path / "mine" / "nested" / "keep.txt").read_text() == "mine"
    assert (home / "notes.md").read_text() == "mine"


def test_dot_dotdot_the_current_folder_and_its_parents_are_refused(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    scenario = _scenario(tmp_path)
    for out in (".", "..", "sub/..", str(work), str(tmp_path)):
        assert main(["run", str(scenario), "-q", "--out", out]) == 2, out
        _one_error_line(capsys)
    assert main(["validate", str(_scenario(tmp_path, name=".."))]) == 2
    assert "name" in _one_error_line(capsys)


def test_a_file_or_a_symlink_is_never_replaced(tmp_path, capsys):
    scenario = _scenario(tmp_path)
    afile = tmp_path / "report.txt"
    afile.write_text("keep")
    assert main(["run", str(scenario), "-q", "--out", str(afile)]) == 2
    assert "a file" in _one_error_line(capsys)
    assert afile.read_text() == "keep"
    real = tmp_path / "real"
    assert main(["run", str(scenario), "-q", "--out", str(real)]) == 0
    capsys.readouterr()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert main(["run", str(scenario), "-q", "--out", str(link)]) == 2
    assert "symbolic link" in _one_error_line(capsys)


def test_a_report_is_replaced_but_not_once_a_user_adds_a_file(tmp_path, capsys):
    scenario, out = _scenario(tmp_path), tmp_path / "r"
    assert main(["run", str(scenario), "-q", "--out", str(out)]) == 0
    assert main(["run", str(scenario), "-q", "--out", str(out), "--seed", "8"]) == 0  # its own: replaced
    capsys.readouterr()
    (out / "run" / "my_notes.txt").write_text("annotations")
    assert main(["run", str(scenario), "-q", "--out", str(out)]) == 2
    assert "run/my_notes.txt" in _one_error_line(capsys)
    assert (out / "run" / "my_notes.txt").read_text() == "annotations"
    assert main(["report", str(out), "--out", str(out)]) == 2  # rebuilding in place is refused too
    _one_error_line(capsys)


def test_report_out_refuses_a_foreign_folder(tmp_path, capsys):
    scenario, out = _scenario(tmp_path), tmp_path / "r"
    assert main(["run", str(scenario), "-q", "--out", str(out)]) == 0
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "data.csv").write_text("a,b\n")
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(theirs)]) == 2
    _one_error_line(capsys)
    assert (theirs / "data.csv").read_text() == "a,b\n"
    with pytest.raises(OutputError):
        dp.write(dp.open_report(out), theirs)
    assert (theirs / "data.csv").read_text() == "a,b\n"


def test_an_empty_folder_and_an_old_versions_report_are_replaced(tmp_path):
    scenario = _scenario(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", str(scenario), "-q", "--out", str(empty)]) == 0
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("report.html", "report.md", "scenario.yaml", "results.pkl", "sellers.csv", "mechanisms.png"):
        (legacy / name).write_text("old")
    assert main(["run", str(scenario), "-q", "--out", str(legacy)]) == 0
    assert not (legacy / "results.pkl").exists() and (legacy / "manifest.json").is_file()


def test_diff_out_never_overwrites_a_file_it_did_not_write(tmp_path, capsys):
    scenario = _scenario(tmp_path)
    a = tmp_path / "a"
    assert main(["run", str(scenario), "-q", "--out", str(a)]) == 0
    mine = tmp_path / "mine.md"
    mine.write_text("# my notes\n")
    capsys.readouterr()
    assert main(["diff", str(a), str(a), "--out", str(mine)]) == 2
    _one_error_line(capsys)
    assert mine.read_text() == "# my notes\n"
    ours = tmp_path / "diff.md"
    assert main(["diff", str(a), str(a), "--out", str(ours)]) == 0
    assert main(["diff", str(a), str(a), "--out", str(ours)]) == 0  # its own file: rewritten


def test_interrupted_writes_are_cleaned_up_by_the_next_one(tmp_path):
    target = tmp_path / "r"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    import socket

    def leftover(name: str, pid: int | None) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "report.md").write_text("partial")
        if pid is not None:
            (folder / PARTIAL_MARKER).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
        return folder

    dead = leftover(".r.tmp-dead1", dead_pid)
    alive = leftover(".r.tmp-live1", os.getpid())
    unknown = leftover(".r.tmp-other", None)  # not marked: not provably ours
    write_directory(target, lambda f: (f / "a.txt").write_text("x"), fmt="dataprice-test", schema=1)
    old = tmp_path / ".r.old-abc"
    old.mkdir()
    write_directory(old, lambda f: (f / "a.txt").write_text("y"), fmt="dataprice-test", schema=1)
    assert not dead.exists()
    assert alive.exists() and unknown.exists()
    assert clean_stale(target) == [old]  # a sealed copy of a replaced directory
    assert (target / "a.txt").read_text() == "x"


def test_check_output_dir_rejects_bad_paths():
    for bad in ("", "a\x00b", ".", ".."):
        with pytest.raises(OutputError):
            check_output_dir(bad)


# --- no code from disk ---------------------------------------------------------------------------


def test_a_pickle_in_a_report_directory_is_never_loaded(tmp_path, capsys):
    marker = tmp_path / "pwned"
    report = tmp_path / "received"
    report.mkdir()
    (report / "results.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    (report / "scenario.yaml").write_text(yaml.safe_dump(SINGLE))
    assert main(["report", str(report)]) == 2
    assert "pickle" in _one_error_line(capsys)
    with pytest.raises(DataError):
        dp.open_report(report)
    assert not marker.exists()


def test_an_old_pickle_checkpoint_is_ignored(tmp_path, monkeypatch):
    """A cloned repository shipping ``reports/.NAME.checkpoints/<key>/replicate_0.pkl``
    (the key can be computed) used to run its code on ``make demo``."""
    from dataprice.experiment import scenario_key
    from dataprice.scenario import load_scenario

    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    path = _scenario(tmp_path)
    key = scenario_key(load_scenario(path))
    folder = tmp_path / "reports" / ".single.checkpoints" / key
    folder.mkdir(parents=True)
    (folder / "replicate_0.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    assert main(["run", str(path), "-q"]) == 0
    assert not marker.exists()


def test_a_damaged_checkpoint_is_recomputed_and_a_damaged_report_refused(tmp_path, capsys):
    from dataprice.experiment import ReplicateCheckpoints, run_scenario
    from dataprice.scenario import parse_scenario

    scenario = parse_scenario({**SINGLE, "replicates": 2})
    whole = run_scenario(scenario, progress=False)
    checkpoints = ReplicateCheckpoints(tmp_path / "ck", scenario)
    run_scenario(scenario, progress=False, checkpoint_dir=tmp_path / "ck")
    damaged = checkpoints.path(1) / "outcomes.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="ignoring checkpoint"):
        resumed = run_scenario(scenario, progress=False, checkpoint_dir=tmp_path / "ck")
    assert resumed.provenance["replicates_from_checkpoint"] == 1
    assert resumed.outcomes_table().equals(whole.outcomes_table())

    out = tmp_path / "r"
    dp.write(whole, out)
    meta = out / "run" / "run.json"
    meta.write_text(meta.read_text().replace("seller_0", "seller_9"))
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 2
    assert "differs from manifest.json" in _one_error_line(capsys)


def test_a_saved_run_reopens_without_its_data_files(tmp_path):
    """Sellers' names are stored: moving the corpus does not break ``dataprice report``."""
    docs, qs, judge = tmp_path / "docs.csv", tmp_path / "qs.csv", tmp_path / "judge.csv"
    docs.write_text("doc_id,owner,text\nd1,alice,Metformin treats diabetes.\nd2,bob,Salbutamol treats asthma.\n")
    qs.write_text("question_id,question,gold_doc_id\nq1,What treats diabetes?,d1\nq2,What treats asthma?,d2\n")
    judge.write_text("question_id,doc_id,score\nq1,d1,0.9\nq2,d2,0.7\n")
    data = {"name": "files", "sellers": {"count": 2, "costs": {"alice": 0.1, "bob": 0.2}},
            "buyer": {"task": "rag", "corpus": {"source": "files", "documents": "docs.csv", "questions": "qs.csv"},
                      "top_k": 1, "utility": "replay", "replay_file": "judge.csv"},
            "valuation": [{"method": "loo"}], "audit": {"enabled": False}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "r"
    assert main(["run", str(tmp_path / "s.yaml"), "-q", "--out", str(out)]) == 0
    for f in (docs, qs, judge):
        f.rename(f.with_suffix(".moved"))
    run = dp.open_report(out)
    assert run.player_names == ["alice", "bob"]
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0


def test_reports_are_byte_identical_across_hash_seeds(tmp_path):
    """Same seed, same bytes in every file (timings aside), whatever PYTHONHASHSEED is."""
    scenario = _scenario(tmp_path, replicates=2)
    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"r{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(SRC)}
        subprocess.run([sys.executable, "-m", "dataprice.cli", "run", str(scenario), "-q", "--out", str(out)],
                       check=True, env=env, capture_output=True)
        outs.append(out)
    from .conftest import same_tree

    assert same_tree(*outs) == []


def test_diff_reads_received_reports_as_checked_data(tmp_path, capsys):
    scenario, a = _scenario(tmp_path), tmp_path / "a"
    assert main(["run", str(scenario), "-q", "--out", str(a)]) == 0
    capsys.readouterr()
    legacy = tmp_path / "legacy"  # a report of a version before manifests, damaged
    legacy.mkdir()
    (legacy / "scenario.yaml").write_text("name: x\nname: y\n")
    (legacy / "sellers.csv").write_bytes(b"seller,payment[loo]\n\xff\xfe,1\n")
    assert main(["diff", str(a), str(legacy)]) == 2
    assert "appears twice" in _one_error_line(capsys)
    (legacy / "scenario.yaml").write_text("name: x\n")
    (legacy / "sellers.csv").write_text("seller,payment[loo]\nseller_0,lots\n")
    assert main(["diff", str(a), str(legacy)]) == 2
    assert "must hold numbers" in _one_error_line(capsys)
    (a / "sellers.csv").write_text("seller\n")  # edited after it was sealed
    assert main(["diff", str(a), str(a)]) == 2
    assert "differs from manifest.json" in _one_error_line(capsys)
