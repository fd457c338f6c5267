"""A run killed with SIGKILL at any moment leaves no partial report, and the next run
resumes from its checkpoints to the same result as a run never interrupted.

Kill points are chosen three ways: while a replicate checkpoint is being written (a
``.replicate_*.tmp-*`` folder exists), while the report is being written (a
``.NAME.tmp-*`` folder exists), and at a random time. After every kill the report
directory is either absent or a complete, verified report; after the final run nothing
is left beside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from dataprice.experiment.persist import read_run

from ..conftest import same_tree

SRC = Path(__file__).resolve().parents[2] / "src"

SCENARIO = {
    "name": "killme",
    "seed": 4,
    "replicates": 4,
    "sellers": {"count": 5, "costs": {"distribution": "uniform", "low": 0.5, "high": 3.0},
                "label_noise": {"sellers": [4], "fraction": 1.0}},
    "buyer": {"task": "classifier", "dataset": "breast_cancer", "max_points": 200, "value_per_quality": 100},
    "valuation": [{"method": "loo"}, {"method": "exact_shapley"}, {"method": "tmc_shapley", "max_evaluations": 300}],
    "audit": {"grid_points": 9},
}
#: Files that legitimately differ after a resume: timings, and where the run records how
#: many replicates came from checkpoints (provenance, and the manifest that hashes it).
RESUME_NOTES = ("timings.json", "provenance.json", "manifest.json", "run/run.json")


def _start(scenario: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-m", "dataprice.cli", "run", str(scenario), "-q", "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _exists(where: Path, pattern: str) -> bool:
    """Whether a file matching ``pattern`` is below ``where`` now. The run renames and
    removes its temporary folders while we look: one that vanishes mid-walk is not there."""
    try:
        return any(where.rglob(pattern))
    except FileNotFoundError:
        return False


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` is true; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.kill()
    raise AssertionError("the run neither finished nor reached the kill point")


def _check_no_partial_report(out: Path) -> None:
    if out.exists():
        run, _ = read_run(out)  # every file verified against the manifest
        assert len(run.replicates) == SCENARIO["replicates"]
        assert (out / "report.html").is_file()


def _kill_points(n: int, rng: np.random.Generator) -> list[tuple[str, float]]:
    kinds = ["checkpoint", "report"] + [str(k) for k in rng.choice(["checkpoint", "report", "random"], size=max(n - 2, 0))]
    # random points fall in the first seconds: imports, the first replicates (a run resumed
    # from checkpoints finishes quickly)
    return [(kind, float(rng.uniform(0, 0.3 if kind != "random" else 3.0))) for kind in kinds[:n]]


def _kill_and_resume(tmp_path: Path, n_kills: int, seed: int) -> dict:
    scenario = tmp_path / "killme.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "dataprice.cli", "run", str(scenario), "-q", "--out", str(reference)],
                   env={**os.environ, "PYTHONPATH": str(SRC)}, check=True, capture_output=True)
    area = tmp_path / "area"
    area.mkdir()
    out = area / "killme"
    checkpoints = area / ".killme.checkpoints"
    rng = np.random.default_rng(seed)
    killed = {"checkpoint": 0, "report": 0, "random": 0, "finished_first": 0}
    for kind, delay in _kill_points(n_kills, rng):
        proc = _start(scenario, out)
        if kind == "random":
            started = time.monotonic()

            def ready(started=started, delay=delay):
                return time.monotonic() - started > delay

        else:
            pattern = ".replicate_*.tmp-*" if kind == "checkpoint" else ".killme.tmp-*"
            where = checkpoints if kind == "checkpoint" else area
            seen: list[float] = []

            def ready(where=where, pattern=pattern, seen=seen, delay=delay):
                if not seen and _exists(where, pattern):
                    seen.append(time.monotonic())
                return bool(seen) and time.monotonic() - seen[0] >= delay * 0.05

        if _kill_when(proc, ready):
            killed[kind] += 1
        else:
            killed["finished_first"] += 1
            assert proc.returncode == 0, proc.stderr.read().decode()
        _check_no_partial_report(out)
    final = _start(scenario, out)
    assert final.wait(timeout=300) == 0, final.stderr.read().decode()
    _check_no_partial_report(out)
    assert sorted(p.name for p in area.iterdir()) == ["killme"], "temporary folders or checkpoints were left"
    assert same_tree(reference, out, skip=RESUME_NOTES) == []
    ref_meta, meta = (json.loads((d / "run" / "run.json").read_text()) for d in (reference, out))
    assert {k: v for k, v in ref_meta.items() if k != "provenance"} == {k: v for k, v in meta.items() if k != "provenance"}
    return killed


def test_two_kills_while_writing_leave_no_partial_report_and_resume(tmp_path):
    killed = _kill_and_resume(tmp_path, 2, seed=0)
    print("kill points reached:", killed)
    assert killed["checkpoint"] + killed["report"] >= 1, killed


@pytest.mark.slow
def test_ten_random_kill_points(tmp_path):
    killed = _kill_and_resume(tmp_path, 10, seed=2026)
    print("kill points reached:", killed)
    assert killed["checkpoint"] + killed["report"] + killed["random"] >= 7, killed
