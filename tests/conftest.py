from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from dataprice.cli import main
from dataprice.errors import DataError
from dataprice.valuation.game import TabulatedGame

settings.register_profile("ci", max_examples=40, deadline=None)
settings.load_profile("ci")


def random_table(n: int, rng: np.random.Generator, *, empty_zero: bool = False) -> TabulatedGame:
    """A random game as a table of 2^n values."""
    values = rng.normal(size=2**n)
    if empty_zero:
        values[0] = 0.0
    return TabulatedGame(values)


def random_monotone_table(n: int, rng: np.random.Generator, scale: float = 10.0) -> TabulatedGame:
    """A random monotone game: v(S) = max over a random set of 'items' covered by S, plus
    a random additive part, so adding a seller never lowers v."""
    masks = np.arange(2**n)
    weights = rng.uniform(0, scale, size=n)
    coverage = rng.uniform(0, scale, size=n)
    bits = ((masks[:, None] >> np.arange(n)) & 1).astype(bool)
    values = bits @ weights * 0.3 + np.max(np.where(bits, coverage, 0.0), axis=1)
    return TabulatedGame(values)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def run_serial_and_parallel(scenario, make_engine=None):
    """The same scenario on the serial engine and on a parallel one (default: two local
    worker processes)."""
    from dataprice.engine import LokyEngine, SerialEngine
    from dataprice.experiment import run_scenario

    serial = run_scenario(scenario, progress=False, engine=SerialEngine())
    engine = make_engine() if make_engine is not None else LokyEngine(2)
    try:
        parallel = run_scenario(scenario, progress=False, engine=engine)
    finally:
        engine.shutdown()
    return serial, parallel


def same_tree(a: Path, b: Path, skip=("timings.json",)) -> list[str]:
    """Relative paths whose bytes differ between two directory trees (or exist in one only)."""
    files_a = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    differ = sorted(files_a ^ files_b)
    for name in sorted(files_a & files_b):
        if name not in skip and (a / name).read_bytes() != (b / name).read_bytes():
            differ.append(name)
    return differ


#: A small classifier scenario (five sellers, one with every label flipped) used across tests.
SMALL_CLASSIFIER = {
    "name": "small",
    "seed": 4,
    "replicates": 2,
    "sellers": {
        "count": 5,
        "costs": {"distribution": "uniform", "low": 0.5, "high": 3.0},
        "label_noise": {"sellers": [4], "fraction": 1.0},
    },
    "buyer": {"task": "classifier", "dataset": "breast_cancer", "max_points": 200, "value_per_quality": 100},
    "valuation": [
        {"method": "loo"},
        {"method": "exact_shapley"},
        {"method": "tmc_shapley", "max_evaluations": 300},
        {"method": "knn_shapley"},
    ],
    "audit": {"grid_points": 9},
}


#: A valid safetensors file holding no tensor (an 8-byte header length, then ``{}``): the
#: weights of a stand-in model folder whose other files are under test.
EMPTY_SAFETENSORS = (2).to_bytes(8, "little") + b"{}"


def fails(call, *parts: str) -> str:
    """The message of the DataError ``call()`` raises: one line, short, containing ``parts``."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    for part in parts:
        assert part in message, message
    return message


def run_cli(path: Path, out: Path, *extra: str) -> int:
    """``dataprice run PATH -q --out OUT [extra]``, as a user would; the exit status."""
    return main(["run", str(path), "-q", "--out", str(out), *extra])


def run_cli_process(path: Path, out: Path, *extra: str) -> tuple[int, str]:
    """``dataprice run PATH -q --out OUT [extra]`` in a new Python process, as a terminal
    runs it: the exit status and everything written to its stderr, including what libraries'
    own log handlers write there (which pytest's capture of one test does not see)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "dataprice.cli", "run", str(path), "-q", "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=300)
    return done.returncode, done.stderr.strip()


#: The tables two runs of the same market must agree on exactly.
COMPARED_TABLES = ("values", "mechanisms", "outcomes", "sellers")


def same_tables(a: Path, b: Path, tables=COMPARED_TABLES) -> None:
    """The report directories ``a`` and ``b`` hold the same ``tables``, bit for bit."""
    for name in tables:
        pa, pb = a / f"{name}.parquet", b / f"{name}.parquet"
        assert pa.exists() == pb.exists(), name
        if pa.exists():
            pd.testing.assert_frame_equal(pd.read_parquet(pa), pd.read_parquet(pb), check_exact=True, obj=name)
