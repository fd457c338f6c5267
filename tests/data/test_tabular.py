"""The user's tabular data as sellers' shards (:func:`dataprice.data.tabular.tabular_shards`),
and Parquet through the shared table reader.

Checked: owners in order of first appearance; encodings fitted on the training rows only
(a category seen only in validation adds no column); standardisation on training rows;
label order; the split is stratified, seeded and keeps every owner; JSON lines and Parquet
give the same shards as CSV; bad cells are one line naming file, row and column.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataprice.data.tables import read_records
from dataprice.data.tabular import TableColumns, tabular_shards

from ..conftest import fails

TRAIN = pd.DataFrame({
    "owner": ["b", "a", "b", "c", "a", "c", "b", "a"],
    "size": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    "kind": ["x", "y", "x", "z", "y", "x", "z", "y"],
    "label": [10, 2, 10, 2, 10, 2, 10, 2],
})
VAL = pd.DataFrame({"size": [1.5, 7.5], "kind": ["x", "w"], "label": [10, 2]})



@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    TRAIN.to_csv(tmp_path / "train.csv", index=False)
    VAL.to_csv(tmp_path / "val.csv", index=False)
    return tmp_path / "train.csv", tmp_path / "val.csv"


def test_onehot_is_fitted_on_training_rows_only(files):
    train, val = files
    shards, names, features = tabular_shards(str(train), validation=str(val))
    assert names == ["b", "a", "c"]
    assert shards.owners.tolist() == [0, 1, 0, 2, 1, 2, 0, 1]
    assert features == ["size", "kind=x", "kind=y", "kind=z"]  # no column for 'w', seen in validation only
    # labels in numeric order: 2 -> class 0, 10 -> class 1
    assert shards.y_train.tolist() == [1, 0, 1, 0, 1, 0, 1, 0] and shards.y_val.tolist() == [1, 0]
    np.testing.assert_allclose(shards.X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(shards.X_train.std(axis=0), 1.0)
    # 'w' encodes as all zeros before standardisation: each one-hot column sits at -mean/std
    onehot = TRAIN["kind"].to_numpy()[:, None] == np.array(["x", "y", "z"])[None, :]
    expected = -onehot.mean(axis=0) / onehot.std(axis=0)
    np.testing.assert_allclose(shards.X_val[1, 1:], expected)


def test_ordinal_codes_in_sorted_order_and_minus_one_for_unseen(files):
    train, val = files
    shards, _, features = tabular_shards(str(train), validation=str(val), columns=TableColumns(encoding="ordinal"))
    assert features == ["size", "kind"]
    codes = TRAIN["kind"].map({"x": 0, "y": 1, "z": 2}).to_numpy(dtype=float)
    np.testing.assert_allclose(shards.X_train[:, 1], (codes - codes.mean()) / codes.std())
    np.testing.assert_allclose(shards.X_val[1, 1], (-1 - codes.mean()) / codes.std())


def test_the_split_is_seeded_stratified_and_keeps_every_owner(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"owner": rng.choice(["p", "q", "r", "s"], 200), "f": rng.normal(size=200),
                          "label": rng.choice(["u", "v", "w"], 200)})
    table.to_csv(tmp_path / "t.csv", index=False)
    a, _, _ = tabular_shards(str(tmp_path / "t.csv"), seed=5, validation_fraction=0.25)
    b, _, _ = tabular_shards(str(tmp_path / "t.csv"), seed=5, validation_fraction=0.25)
    c, _, _ = tabular_shards(str(tmp_path / "t.csv"), seed=6, validation_fraction=0.25)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_val, c.X_val)
    assert len(a.y_val) == 50 and a.n_classes == 3
    assert set(a.owners.tolist()) == {0, 1, 2, 3}


def test_csv_jsonl_and_parquet_load_to_the_same_shards(tmp_path, files):
    train, val = files
    csv_shards, _, _ = tabular_shards(str(train), validation=str(val))
    TRAIN.to_parquet(tmp_path / "train.parquet", index=False)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIN.to_dict("records")))
    for name in ("train.parquet", "train.jsonl"):
        other, names, _ = tabular_shards(str(tmp_path / name), validation=str(val))
        assert names == ["b", "a", "c"]
        np.testing.assert_array_equal(other.X_train, csv_shards.X_train)
        np.testing.assert_array_equal(other.X_val, csv_shards.X_val)


def test_parquet_cells_read_as_text_and_nested_cells_are_refused(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [0.1, 1e-300, 3.0], "b": ["x", None, "z"], "c": [[1], [2], [3]]}), path)
    records = read_records(path, "test", required=["a", "b"])
    assert records.cells["a"] == ["0.1", "1e-300", "3.0"] and records.cells["b"] == ["x", None, "z"]
    assert records.where(1, "b") == f"{path}: row 2, column 'b'"
    fails(lambda: read_records(path, "test", required=["c"]), "t.parquet", "row 1", "'c'", "a list")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    fails(lambda: read_records(tmp_path / "bad.parquet", "test", required=["a"]), "bad.parquet", "Parquet")


def test_bad_cells_name_file_line_and_column(tmp_path):
    def load(table: pd.DataFrame, **kwargs):
        table.to_csv(tmp_path / "t.csv", index=False)
        return lambda: tabular_shards(str(tmp_path / "t.csv"), **kwargs)

    fails(load(TRAIN.assign(owner=TRAIN.owner.where(TRAIN.index != 3))), "t.csv", "line 5", "'owner'", "owner")
    fails(load(TRAIN, columns=TableColumns(categorical=())), "t.csv", "line 2", "'kind'", "categorical")
    fails(load(TRAIN, n_sellers=2), "t.csv", "3 distinct owners", "set sellers.count to 3")
    fails(load(TRAIN.drop(columns=["size", "kind"])), "t.csv", "no feature column")
    fails(load(TRAIN.assign(label=[1, 1, 1, 1, 1, 1, 1, 2])), "t.csv", "'label'", "cannot be split")
    fails(load(TRAIN.assign(size=[1, 2, 3, 4, "nan", 6, 7, 8])), "t.csv", "line 6", "'size'", "not a finite number")
    lonely = pd.concat([TRAIN, pd.DataFrame([{"owner": "solo", "size": 9.0, "kind": "x", "label": 2}])])
    fails(load(lonely, validation_fraction=0.5, seed=0), "t.csv", "'owner'", "no training row")
