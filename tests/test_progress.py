"""Progress reads well where it is shown: plain lines in a log (no carriage returns or escape
codes), nothing with ``--no-progress`` (the summary table still printed) or ``-q``."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from dataprice.progress import LineProgress, progress

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_line_progress_writes_a_line_now_and_then_and_one_at_the_end():
    out = io.StringIO()
    bar = LineProgress(total=10, desc="replicates", file=out, every=0.0)  # a line at every update
    for _ in range(3):
        bar.update(1)
    bar.close()
    bar.close()  # closing twice writes once
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["replicates: 1/10", "replicates: 2/10", "replicates: 3/10",
                                                       "replicates: 3/10"]
    quiet = io.StringIO()
    inner = LineProgress(range(5), desc="evaluations", unit="eval", file=quiet, leave=False)  # every 30 s
    assert list(inner) == [0, 1, 2, 3, 4] and quiet.getvalue() == ""  # quick inner work: no line at all


def test_progress_off_writes_nothing(capsys):
    assert list(progress(range(3), desc="x", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def _run(tmp_path, *flags):
    return subprocess.run(
        [sys.executable, "-m", "dataprice.cli", "run", str(SCENARIOS / "learning_documents.yaml"), "--small",
         "--out", str(tmp_path / "-".join(flags or ("default",))), *flags],
        capture_output=True, text=True, check=False, timeout=300,
    )


def test_a_run_in_a_log_prints_plain_lines_and_the_flags_are_separate(tmp_path):
    logged = _run(tmp_path)
    assert logged.returncode == 0, logged.stderr
    assert "replicates: 2/2" in logged.stderr
    assert "\r" not in logged.stderr and "\x1b" not in logged.stderr  # no live-bar residue in a log
    assert "myerson" in logged.stdout  # the summary table
    no_progress = _run(tmp_path, "--no-progress")
    assert no_progress.stderr == "" and "myerson" in no_progress.stdout
    quiet = _run(tmp_path, "-q")
    assert quiet.stderr == "" and quiet.stdout.startswith("report written to")
