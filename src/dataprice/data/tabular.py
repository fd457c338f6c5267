"""A user's tabular data (CSV, TSV, JSON lines, Parquet) as sellers' shards for the classifier
and federated buyers.

The training file has one row per data point: an owner column (the seller who sold the
row), a label column and feature columns. The buyer's validation data is a second file with
the same label and feature columns, or a stratified split of the training file
(``validation_fraction`` of its rows, drawn from stream :attr:`~dataprice.rng.Stream.DATA`
of the replicate's seed; every owner must keep at least one training row).

Features:

* **numeric** columns: every cell a finite number;
* **categorical** columns: those named in ``categorical``, or, when it is not given, every
  feature column with a cell that is not a number. They are encoded from the training rows
  only (never from the validation rows): ``onehot`` gives one 0/1 column per category seen
  in training (a category seen only in validation encodes as all zeros); ``ordinal`` gives
  one column of codes ``0 .. c-1`` in sorted order of the categories (a category seen only
  in validation gets ``-1``).

The encoded matrix is then standardised with the training rows' mean and standard deviation
(as :func:`~dataprice.data.shards.make_shards` does for the bundled data sets). Classes are
the training labels, in numeric order when every label is a number, else in text order.
Sellers are the distinct owners in order of first appearance. Every problem is one
:class:`~dataprice.errors.DataError` line naming the file, and the line and column where it
applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dataprice.data.shards import SellerShards, corrupt_shards
from dataprice.data.tables import Records, display, read_records
from dataprice.errors import DataError
from dataprice.inputs import excerpt
from dataprice.rng import Stream, child_rng

Encoding = Literal["onehot", "ordinal"]
#: Most categories one categorical column may have (one-hot makes a column of each).
MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class TableColumns:
    """Which columns of the user's file mean what (a buyer's ``table`` settings)."""

    owner: str = "owner"
    label: str = "label"
    features: tuple[str, ...] | None = None  # None: every column but owner and label
    categorical: tuple[str, ...] | None = None  # None: the feature columns holding text
    encoding: Encoding = "onehot"


@dataclass
class TabularFile:
    """The training file as read: owners, labels and features, checked."""

    records: Records
    owners: NDArray[np.int64]  # index of each row's owner in seller_names
    seller_names: list[str]
    labels: list[str]
    features: list[str]
    categorical: list[str]
    numeric: dict[str, NDArray[np.float64]]

    @property
    def n_sellers(self) -> int:
        return len(self.seller_names)


def _feature_columns(records: Records, columns: TableColumns) -> list[str]:
    if columns.features is not None:
        return list(columns.features)
    return [c for c in records.found if c not in {columns.owner, columns.label}]


def _texts(records: Records, column: str) -> list[str]:
    """A column whose cells were checked to be given (:func:`_read`)."""
    return [str(value) for value in records.cells[column]]


def _as_numbers(records: Records, column: str) -> NDArray[np.float64] | None:
    """The column as numbers, or None if some cell is not a number (text: a category).

    A cell that reads as a number but is not finite (``nan``, ``inf``: a missing value in a
    numeric column) is an error, not a category.
    """
    out = np.empty(len(records), dtype=np.float64)
    for row, value in enumerate(_texts(records, column)):
        try:
            number = float(value)
        except ValueError:
            return None
        if not math.isfinite(number):
            raise records.error(row, column, f"{excerpt(value)} is not a finite number; fill in every value")
        out[row] = number
    return out


def _numeric(records: Records, column: str, reason: str) -> NDArray[np.float64]:
    """A column that must be numeric: its numbers, or the error at the first bad cell."""
    numbers = _as_numbers(records, column)
    if numbers is not None:
        return numbers
    for row, value in enumerate(_texts(records, column)):
        try:
            ok = math.isfinite(float(value))
        except ValueError:
            ok = False
        if not ok:
            raise records.error(row, column, f"not a finite number ({excerpt(value)}); {reason}")
    raise AssertionError("unreachable")  # pragma: no cover


def _read(path: str, what: str, columns: TableColumns, *, owner: bool, features: list[str] | None) -> Records:
    """The file's records: owner (if ``owner``), label and ``features`` (every column when
    None), each cell given (no null, no blank)."""
    required = [columns.label, *(features or [])]
    if owner:
        required.insert(0, columns.owner)
    records = read_records(path, what, required=required, every_column=features is None)
    for column in (required if features is not None else [*required, *records.found]):
        if column in records.cells:
            meaning = "every row needs its owner" if column == columns.owner else "fill in every value"
            records.text(column, meaning)
    return records


def read_training_table(path: str, columns: TableColumns) -> TabularFile:
    """Read and check the training file: owner, label and feature columns, no missing cell,
    at least two classes, numeric columns numeric."""
    features_given = list(columns.features) if columns.features is not None else None
    records = _read(path, "tabular data", columns, owner=True, features=features_given)
    features = _feature_columns(records, columns)
    if not features:
        raise DataError(
            f"{display(records.path)}: no feature column besides owner column {columns.owner!r} and label column "
            f"{columns.label!r}; columns found: {records.columns_found()}"
        )
    for column in (columns.owner, columns.label):
        if column in features:
            raise DataError(
                f"{display(records.path)}: column {column!r} is the owner or label column and cannot also be a feature"
            )
    unknown = [c for c in (columns.categorical or ()) if c not in features]
    if unknown:
        raise DataError(
            f"{display(records.path)}: column {excerpt(unknown[0])}, listed as categorical, is not a feature "
            f"column; features: {', '.join(features[:12])}"
        )
    owner_cells = _texts(records, columns.owner)
    names = list(dict.fromkeys(owner_cells))  # order of first appearance
    index = {name: j for j, name in enumerate(names)}
    owners = np.array([index[o] for o in owner_cells], dtype=np.int64)
    labels = _texts(records, columns.label)
    if len(set(labels)) < 2:
        raise DataError(
            f"{display(records.path)}: column {columns.label!r}: every row has the label {excerpt(labels[0])}; "
            "a classifier needs at least two classes"
        )
    numeric: dict[str, NDArray[np.float64]] = {}
    categorical: list[str] = []
    for column in features:
        if columns.categorical is not None:
            if column in columns.categorical:
                categorical.append(column)
            else:
                numeric[column] = _numeric(records, column, "list the column under categorical if it holds categories")
            continue
        numbers = _as_numbers(records, column)
        if numbers is None:
            categorical.append(column)
        else:
            numeric[column] = numbers
    for column in categorical:
        count = len(set(_texts(records, column)))
        if count > MAX_CATEGORIES:
            raise DataError(
                f"{display(records.path)}: column {column!r} has {count:,} categories (more than {MAX_CATEGORIES}); "
                "leave it out of the features or encode it yourself"
            )
    return TabularFile(records, owners, names, labels, features, categorical, numeric)


def read_validation_table(path: str, columns: TableColumns, training: TabularFile) -> Records:
    """Read the validation file: the training file's label and feature columns (an owner
    column is allowed and ignored; any other column is an error when the features are not
    listed, since the two files should have the same columns)."""
    records = _read(path, "validation data", columns, owner=False, features=training.features)
    if columns.features is None:
        extra = [c for c in records.found if c not in {*training.features, columns.label, columns.owner}]
        if extra:
            raise DataError(
                f"{display(records.path)}: column {excerpt(extra[0])} is not in the training file "
                f"{display(training.records.path)}; the validation file needs the same columns"
            )
    _validation_labels(records, training, columns)
    for column in training.numeric:
        _numeric(records, column, f"the column is numeric in the training file {display(training.records.path)}")
    return records


def _class_order(labels: Sequence[str]) -> list[str]:
    distinct = set(labels)
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


@dataclass
class _Encoder:
    """Categorical encodings and standardisation fitted on training rows."""

    numeric: list[str]
    categories: dict[str, list[str]]
    encoding: Encoding
    mean: NDArray[np.float64] | None = None
    scale: NDArray[np.float64] | None = None

    def raw(self, numeric: dict[str, NDArray[np.float64]], cells: dict[str, list[str]],
            rows: NDArray[np.int64] | slice) -> NDArray[np.float64]:
        blocks = [numeric[c][rows][:, None] for c in self.numeric]
        for column, cats in self.categories.items():
            values = np.asarray(cells[column], dtype=object)[rows]
            if self.encoding == "onehot":
                blocks.append((values[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64))
            else:
                code = {c: k for k, c in enumerate(cats)}
                blocks.append(np.array([code.get(v, -1) for v in values], dtype=np.float64)[:, None])
        return np.concatenate(blocks, axis=1)

    def fit(self, X: NDArray[np.float64]) -> _Encoder:
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale = np.where(std > 0, std, 1.0)
        return self

    def transform(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        assert self.mean is not None and self.scale is not None
        return (X - self.mean) / self.scale

    def feature_names(self) -> list[str]:
        names = list(self.numeric)
        for column, cats in self.categories.items():
            names.extend([f"{column}={c}" for c in cats] if self.encoding == "onehot" else [column])
        return names


@lru_cache(maxsize=8)
def _cached_tables(path: str, validation: str | None, columns: TableColumns, stamps: tuple) -> tuple:  # noqa: ARG001
    # ``stamps`` (size and mtime of each file) is part of the cache key only: an edited file is read again
    training = read_training_table(path, columns)
    return training, (read_validation_table(validation, columns, training) if validation else None)


def _stamps(*paths: str | None) -> tuple:
    out: list[tuple[int, int] | None] = []
    for p in paths:
        if p is None:
            out.append(None)
            continue
        try:
            info = Path(p).stat()
            out.append((info.st_size, info.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def load_tables(path: str, validation: str | None, columns: TableColumns) -> tuple[TabularFile, Records | None]:
    """The checked training file and validation file (read once per content)."""
    return _cached_tables(path, validation, columns, _stamps(path, validation))


def table_seller_names(path: str, columns: TableColumns) -> list[str]:
    """The owners in the training file, in order of first appearance."""
    return read_training_cached(path, columns).seller_names


def read_training_cached(path: str, columns: TableColumns) -> TabularFile:
    return _cached_tables(path, None, columns, _stamps(path, None))[0]


def tabular_shards(
    path: str,
    *,
    columns: TableColumns = TableColumns(),
    validation: str | None = None,
    validation_fraction: float = 0.3,
    n_sellers: int | None = None,
    seed: int | np.random.SeedSequence | None = 0,
    noisy_sellers: Sequence[int] = (),
    noise_fraction: float = 1.0,
    copies: Sequence[tuple[int, int, float]] = (),
) -> tuple[SellerShards, list[str], list[str]]:
    """The sellers' shards of a user's table for one replicate.

    Returns ``(shards, seller_names, encoded feature names)``. ``n_sellers``, when given,
    must equal the number of distinct owners (the error says what to set ``sellers.count``
    to). Label noise and copies are applied as for the bundled data sets
    (:func:`~dataprice.data.shards.corrupt_shards`).
    """
    training, val_records = load_tables(path, validation, columns)
    where = display(training.records.path)
    if n_sellers is not None and training.n_sellers != n_sellers:
        raise DataError(
            f"{where}: {training.n_sellers} distinct owners in column {columns.owner!r}, "
            f"but sellers.count is {n_sellers}; set sellers.count to {training.n_sellers}"
        )
    classes = _class_order(training.labels)
    class_index = {c: k for k, c in enumerate(classes)}
    y_all = np.array([class_index[v] for v in training.labels], dtype=np.int64)
    n_rows = len(training.labels)
    if val_records is None:
        train_rows, val_rows = _split(training, y_all, validation_fraction, seed, columns)
    else:
        train_rows, val_rows = np.arange(n_rows), None
    cells = {c: _texts(training.records, c) for c in training.categorical}
    categories = {c: sorted({cells[c][r] for r in train_rows}) for c in training.categorical}
    encoder = _Encoder(list(training.numeric), categories, columns.encoding)
    X_train_raw = encoder.raw(training.numeric, cells, train_rows)
    encoder.fit(X_train_raw)
    X_train, y_train, owners = encoder.transform(X_train_raw), y_all[train_rows], training.owners[train_rows]
    if val_records is None:
        assert val_rows is not None
        X_val = encoder.transform(encoder.raw(training.numeric, cells, val_rows))
        y_val = y_all[val_rows]
    else:
        X_val, y_val = _validation_matrix(val_records, training, encoder, class_index, columns)
    X_train, y_train, owners, noisy = corrupt_shards(
        X_train, y_train, owners, len(classes), seed, noisy_sellers=noisy_sellers, noise_fraction=noise_fraction,
        copies=copies,
    )
    shards = SellerShards(
        X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val, owners=owners, n_sellers=training.n_sellers,
        n_classes=len(classes), noisy_points=noisy, dataset=Path(path).name,
    )
    return shards, list(training.seller_names), encoder.feature_names()


def _split(training: TabularFile, y: NDArray[np.int64], fraction: float, seed, columns: TableColumns):
    """Stratified split of the training file's rows (stream ``DATA``), every owner keeping a row."""
    from sklearn.model_selection import train_test_split

    where = display(training.records.path)
    counts = np.bincount(y)
    n_val = int(np.ceil(fraction * y.shape[0]))
    if counts.min() < 2 or n_val < counts.size or y.shape[0] - n_val < counts.size:
        rare = _class_order(training.labels)[int(np.argmin(counts))]
        raise DataError(
            f"{where}: column {columns.label!r}: {y.shape[0]} rows cannot be split (validation_fraction {fraction:g}) "
            f"with each of the {counts.size} classes on both sides (label {excerpt(rare)} has {counts.min()} row(s)); "
            "add rows, use a validation_fraction nearer 0.5, or give a validation file"
        )
    rng = child_rng(seed, Stream.DATA)
    rows = np.arange(y.shape[0])
    train_rows, val_rows = train_test_split(rows, test_size=fraction, random_state=int(rng.integers(2**31)), stratify=y)
    kept = np.bincount(training.owners[train_rows], minlength=training.n_sellers)
    if kept.min() == 0:
        lost = training.seller_names[int(np.argmin(kept))]
        raise DataError(
            f"{where}: column {columns.owner!r}: owner {excerpt(lost)} has no training row left after the "
            f"validation split (validation_fraction {fraction:g}); give it more rows or give a validation file"
        )
    return np.sort(train_rows), np.sort(val_rows)


def _validation_labels(records: Records, training: TabularFile, columns: TableColumns) -> list[str]:
    """The validation labels, each one of the training file's."""
    known = set(training.labels)
    labels = _texts(records, columns.label)
    for row, value in enumerate(labels):
        if value not in known:
            raise records.error(
                row, columns.label,
                f"label {excerpt(value)} does not occur in the training file {display(training.records.path)}",
            )
    return labels


def _validation_matrix(records: Records, training: TabularFile, encoder: _Encoder, class_index: dict[str, int],
                       columns: TableColumns) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    y = np.array([class_index[v] for v in _validation_labels(records, training, columns)], dtype=np.int64)
    numeric = {
        c: _numeric(records, c, f"the column is numeric in the training file {display(training.records.path)}")
        for c in training.numeric
    }
    cells = {c: _texts(records, c) for c in training.categorical}
    X = encoder.transform(encoder.raw(numeric, cells, slice(None)))
    return X, y


__all__ = ["Encoding", "TableColumns", "TabularFile", "load_tables", "read_training_table", "read_validation_table",
           "table_seller_names", "tabular_shards"]
