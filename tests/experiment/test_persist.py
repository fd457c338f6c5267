"""Saved runs: read back bit for bit, and readable by later versions.

``tests/fixtures/report_schema1`` was written by dataprice 0.1.0 in run schema 1 (its plots and
HTML removed: they are not read back). Every later version must reopen it and rebuild its
report with the same tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import dataprice as dp
from dataprice.cli import main
from dataprice.experiment.persist import SCHEMA

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "report_schema1"


def test_a_schema_1_report_reopens_with_the_numbers_it_was_written_with(tmp_path):
    run = dp.open_report(FIXTURE)
    assert run.scenario.name == "schema1_fixture" and len(run.replicates) == 2 and SCHEMA >= 1
    for name, table in [("sellers", run.sellers_table()), ("mechanisms", run.mechanisms_table()),
                        ("values", run.values_table()), ("outcomes", run.outcomes_table())]:
        saved = pd.read_csv(FIXTURE / f"{name}.csv")
        assert list(saved.columns) == list(table.columns), name
        for column in saved.columns:
            if pd.api.types.is_numeric_dtype(saved[column]):
                np.testing.assert_allclose(table[column].to_numpy(dtype=float), saved[column].to_numpy(dtype=float),
                                           rtol=1e-12, atol=1e-12, err_msg=f"{name}.{column}")
            else:
                assert table[column].astype(str).tolist() == saved[column].astype(str).tolist(), f"{name}.{column}"
    assert main(["report", str(FIXTURE), "--out", str(tmp_path / "rebuilt")]) == 0
    assert (tmp_path / "rebuilt" / "report.html").is_file()


def test_a_run_is_read_back_bit_for_bit(tmp_path):
    run = dp.run({"name": "t", "seed": 2, "replicates": 2, "sellers": {"count": 3, "costs": [0.1, 0.2, 0.3]},
                  "buyer": {"task": "single_winner", "values": [1.0, 0.5, 0.25]},
                  "valuation": [{"method": "loo"}, {"method": "tmc_shapley", "max_evaluations": 40}]},
                 progress=False)
    dp.write(run, tmp_path / "r")
    again = dp.open_report(tmp_path / "r")
    for table in ("sellers_table", "mechanisms_table", "values_table", "outcomes_table", "dynamics_table"):
        pd.testing.assert_frame_equal(getattr(run, table)(), getattr(again, table)(), check_exact=True)
    assert again.notes == run.notes and again.seller_names == run.seller_names
    for a, b in zip(run.replicates, again.replicates, strict=True):
        for key in a.values:
            assert a.values[key].to_dict() == b.values[key].to_dict()
