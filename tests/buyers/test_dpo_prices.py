"""Priced preference pairs: a ``price`` column in the user's pairs file gives each pair its
list price, and an owner, who sells its pairs together, costs the sum of its pairs' prices.

Run as a user would (``dataprice run`` on files the test writes, the tiny LM): the sellers'
costs are those sums, and a price with ``sellers.costs`` too, or a negative price, is one
line naming the file, exit status 2 and no report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from dataprice.cli import main
from dataprice.data.preferences import load_preferences

from ..conftest import run_cli

PAIRS = [
    ("What is the ICD-10-CM code for cholera?\nAnswer:", " A00.9", " I10", "lab_a", 0.25),
    ("What is the ICD-10-CM code for essential hypertension?\nAnswer:", " I10", " A00.9", "lab_a", 0.5),
    ("What is the ICD-10-CM code for asthma?\nAnswer:", " J45.909", " E11.9", "lab_b", 1.0),
    ("What is the ICD-10-CM code for type 2 diabetes?\nAnswer:", " E11.9", " J45.909", "lab_c", 0.125),
    ("What is the ICD-10-CM code for a headache?\nAnswer:", " R51.9", " N39.0", "lab_c", 0.125),
]
HELDOUT = "prompt,chosen,rejected\n\"Code for cholera?\nAnswer:\", A00.9, I10\n"


def market(folder: Path, *, pairs=PAIRS, **sellers) -> Path:
    folder.mkdir()
    pd.DataFrame(pairs, columns=["prompt", "chosen", "rejected", "owner", "price"]).to_csv(
        folder / "pairs.csv", index=False)
    (folder / "heldout.csv").write_text(HELDOUT)
    data = {
        "name": "priced_pairs", "seed": 3,
        "sellers": {"count": 3, **sellers},
        "buyer": {"task": "dpo", "model": "tiny", "training": {"epochs": 1},
                  "preferences": {"source": "files", "file": "pairs.csv", "heldout_file": "heldout.csv"}},
        "valuation": [{"method": "exact_shapley"}],
        "market": {"payment_rules": ["shapley", "vcg"]},
        "audit": {"grid_points": 3},
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_loader_reads_each_pairs_price_and_sums_them_per_owner(tmp_path):
    path = market(tmp_path / "m")
    sold = load_preferences(path.parent / "pairs.csv")
    assert sold.prices.tolist() == [0.25, 0.5, 1.0, 0.125, 0.125]
    assert sold.owner_prices().tolist() == [0.75, 1.0, 0.25]
    assert sold.of_owner(2).prices.tolist() == [0.125, 0.125]
    assert load_preferences(path.parent / "heldout.csv", owner_column=None).prices is None


def test_an_owners_cost_is_the_sum_of_its_pairs_prices(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))
    assert run_cli(market(tmp_path / "m"), tmp_path / "out") == 0
    sellers = pd.read_csv(tmp_path / "out" / "sellers.csv").set_index("seller")
    assert sellers["cost"].to_dict() == {"lab_a": 0.75, "lab_b": 1.0, "lab_c": 0.25}
    assert sellers["list_price"].to_dict() == sellers["cost"].to_dict()
    assert sellers["pairs"].to_dict() == {"lab_a": 2, "lab_b": 1, "lab_c": 2}


@pytest.mark.parametrize(("make", "where", "what"), [
    (lambda f: market(f, costs={"lab_a": 1.0, "lab_b": 1.0, "lab_c": 1.0}), "pairs.csv", "remove sellers.costs"),
    # prompts span two lines each: the fifth pair starts on line 10 of the file
    (lambda f: market(f, pairs=[*PAIRS[:4], (*PAIRS[4][:4], -0.5)]), "pairs.csv: line 10, column 'price'",
     "prices must be >= 0"),
    (lambda f: market(f, pairs=[*PAIRS[:4], (*PAIRS[4][:4], "free")]), "pairs.csv: line 10, column 'price'", ""),
], ids=["prices and costs", "negative price", "not a number"])
def test_bad_prices_are_one_line_exit_2_and_no_report(make, where, what, tmp_path, capsys):
    path = make(tmp_path / "m")
    assert main(["validate", str(path)]) == 2
    said = capsys.readouterr().err.strip()
    assert len(said.splitlines()) == 1 and where in said and what in said, said
    assert run_cli(path, tmp_path / "out") == 2
    assert where in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
