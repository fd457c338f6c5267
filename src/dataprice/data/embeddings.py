"""Precomputed embeddings in user files: ``id -> vector`` for documents and for questions.

A team that already embeds its corpus with a production retriever brings those vectors
instead of having dataprice embed the texts (the embedding model is then never loaded).
Two formats, chosen by the file's suffix:

* ``.npz`` (``numpy.savez``): an array ``ids`` (strings or integers, one per row) and an
  array ``vectors`` (floats, ``(len(ids), dimension)``)::

      np.savez("doc_vectors.npz", ids=np.array(doc_ids), vectors=matrix.astype(np.float32))

  read with ``allow_pickle=False`` (an object array is refused: unpickling runs code);
* ``.parquet``: a column ``id`` (strings or integers) and a column ``vector`` (a list of
  floats per row, all of one length)::

      pd.DataFrame({"id": doc_ids, "vector": list(matrix)}).to_parquet("doc_vectors.parquet")

The array or column names are ``id_column`` / ``vector_column`` (defaults ``id``/``ids``
and ``vector``/``vectors``). :func:`load_vectors` checks a file on its own (ids unique and
non-empty, one finite vector per id); :func:`vectors_for` picks the rows of the corpus's
ids (every id must be there; extra ids are ignored, so a production index may hold more);
:func:`check_dimensions` checks that documents and questions live in one space. Every
problem is one line naming the file and the array or column. Retrieval scores are inner
products of the given vectors: normalise them to unit length for cosine similarity (MiniLM
vectors are).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dataprice.data.tables import _columns_found, display
from dataprice.errors import DataError
from dataprice.inputs import checked_file, excerpt, max_data_bytes

#: File suffixes :func:`load_vectors` reads.
FORMATS = (".npz", ".parquet")


@dataclass
class Vectors:
    """Vectors of a file, one row per id.

    Attributes:
        path: the file.
        ids: the ids, as strings, unique.
        matrix: ``float32 (len(ids), dimension)``, finite.
        id_name, vector_name: the array or column each came from (for messages).
    """

    path: Path
    ids: list[str]
    matrix: NDArray[np.float32]
    id_name: str
    vector_name: str

    @property
    def dimension(self) -> int:
        return int(self.matrix.shape[1])


def _fail(path: Path, where: str, problem: str) -> DataError:
    return DataError(f"{display(path)}: {where}: {problem}")


def _npz_names(npz: np.lib.npyio.NpzFile, wanted: str, fallback: str) -> str | None:
    for name in (wanted, fallback):
        if name in npz.files:
            return name
    return None


def _npz_array(path: Path, npz: np.lib.npyio.NpzFile, name: str, limit: int) -> np.ndarray:
    """An array of the archive, its header checked before it is read (no object arrays, and
    at most ``limit`` bytes once decompressed)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise _fail(path, f"array {excerpt(name)}", f"not a numpy array ({excerpt(str(exc), 80)})") from None
    if dtype.hasobject:
        raise _fail(path, f"array {excerpt(name)}", "holds Python objects, which are refused (loading them can run "
                    "code); save strings as a str array and numbers as float32")
    size = math.prod(shape) * dtype.itemsize
    if size > limit:
        raise _fail(path, f"array {excerpt(name)}", f"is {size / 2**20:,.0f} MiB decompressed; the limit is "
                    f"{limit / 2**20:,.0f} MiB (raise it with DATAPRICE_MAX_INPUT_MB)")
    try:
        return np.asarray(npz[name])
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise _fail(path, f"array {excerpt(name)}", f"cannot be read ({excerpt(str(exc), 80)})") from None


def _read_npz(path: Path, id_column: str, vector_column: str) -> tuple[np.ndarray, np.ndarray, str, str]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{display(path)}: not a .npz archive ({excerpt(str(exc), 80)})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{display(path)}: not a .npz archive (a single array); save ids and vectors with np.savez")
    with npz:
        names = {}
        for wanted, fallback in ((id_column, "ids"), (vector_column, "vectors")):
            name = _npz_names(npz, wanted, fallback)
            if name is None:
                found = _columns_found(npz.files)
                raise DataError(f"{display(path)}: array {excerpt(wanted)} is missing; arrays found: {found}")
            names[wanted] = name
        limit = 4 * max_data_bytes()
        ids = _npz_array(path, npz, names[id_column], limit)
        vectors = _npz_array(path, npz, names[vector_column], limit)
    return ids, vectors, names[id_column], names[vector_column]


def _read_parquet(path: Path, id_column: str, vector_column: str) -> tuple[np.ndarray, np.ndarray, str, str]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{display(path)}: not a Parquet file ({excerpt(str(exc), 80)})") from None
    for column in (id_column, vector_column):
        if column not in schema.names:
            found = _columns_found(schema.names)
            raise DataError(f"{display(path)}: column {excerpt(column)} is missing; columns found: {found}")
    kind = schema.field(vector_column).type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) or not (
        pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)
    ):
        raise _fail(path, f"column {excerpt(vector_column)}", f"holds {kind}; expected a list of floats per row")
    try:
        table = pq.read_table(path, columns=[id_column, vector_column])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{display(path)}: cannot be read ({excerpt(str(exc), 80)})") from None
    column = table.column(vector_column).combine_chunks()
    if column.null_count:
        row = int(np.flatnonzero(np.asarray(column.is_null()))[0])
        raise _fail(path, f"row {row + 1}, column {excerpt(vector_column)}", "missing (null); every id needs a vector")
    lengths = np.asarray(pc.list_value_length(column))
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise _fail(path, f"row {row + 1}, column {excerpt(vector_column)}",
                    f"a vector of {lengths[row]} numbers, but row 1 has {lengths[0]}; all vectors need one dimension")
    flat = np.asarray(pc.list_flatten(column).fill_null(float("nan")), dtype=np.float64)
    vectors = flat.reshape(len(column), int(lengths[0]) if len(lengths) else 0)
    ids = table.column(id_column).to_numpy(zero_copy_only=False)
    return ids, vectors, id_column, vector_column


def load_vectors(path: str | Path, what: str, *, id_column: str = "id", vector_column: str = "vector") -> Vectors:
    """Read and check one embeddings file (``.npz`` or ``.parquet``; see the module docstring).

    Args:
        path: the file.
        what: what the ids name, in messages (``document``, ``question``).
        id_column, vector_column: the array (``.npz``, which also accepts ``ids`` and
            ``vectors``) or column (``.parquet``) names.

    Raises:
        DataError: one line naming the file and the array or column: a missing one, ids
            that are empty or repeated, vectors that are not a 2-D array of numbers, one row
            per id, or hold NaN or infinity.
    """
    checked = checked_file(path, f"{what} embeddings file", limit=max_data_bytes())
    suffix = checked.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{display(checked)}: unsupported embeddings format {excerpt(checked.suffix)}; use "
                        f"{' or '.join(FORMATS)}")
    read = _read_npz if suffix == ".npz" else _read_parquet
    raw_ids, vectors, id_name, vector_name = read(checked, id_column, vector_column)
    id_at, vec_at = f"array {excerpt(id_name)}", f"array {excerpt(vector_name)}"
    if suffix == ".parquet":
        id_at, vec_at = f"column {excerpt(id_name)}", f"column {excerpt(vector_name)}"
    if raw_ids.ndim != 1:
        raise _fail(checked, id_at, f"has shape {raw_ids.shape}; expected one id per row")
    if raw_ids.dtype.kind not in "UiuO" or (raw_ids.dtype.kind == "O" and not all(isinstance(v, str) for v in raw_ids)):
        raise _fail(checked, id_at, f"holds {raw_ids.dtype}; expected strings or integers")
    ids = [str(v) for v in raw_ids.tolist()]
    if not ids:
        raise DataError(f"{display(checked)}: the {what} embeddings file has no rows")
    first: dict[str, int] = {}
    for row, value in enumerate(ids):
        if not value.strip():
            raise _fail(checked, f"row {row + 1}, {id_at}", f"empty {what} id; every vector needs an id")
        seen = first.setdefault(value, row)
        if seen != row:
            raise _fail(checked, f"row {row + 1}, {id_at}",
                        f"{what} id {excerpt(value)} appears twice (first in row {seen + 1}); ids must be unique")
    if vectors.ndim != 2 or vectors.dtype.kind not in "fiu":
        raise _fail(checked, vec_at, f"has shape {vectors.shape} and type {vectors.dtype}; expected numbers, "
                    "(number of ids, dimension)")
    if vectors.shape[0] != len(ids) or vectors.shape[1] < 1:
        raise _fail(checked, vec_at, f"has {vectors.shape[0]} rows of {vectors.shape[1]} numbers for {len(ids)} ids; "
                    "expected one vector per id")
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise _fail(checked, f"row {row + 1}, {vec_at}",
                    f"the vector of {what} {excerpt(ids[row])} holds NaN or infinity; every value must be finite")
    return Vectors(checked, ids, np.ascontiguousarray(vectors, dtype=np.float32), id_name, vector_name)


def vectors_for(vectors: Vectors, ids: Sequence[str], what: str, source: str) -> NDArray[np.float32]:
    """The rows of ``vectors`` for ``ids`` (in that order): every id must be in the file.

    ``source`` names where ``ids`` come from (the documents file), for the message.
    """
    index = {v: i for i, v in enumerate(vectors.ids)}
    missing = [v for v in ids if v not in index]
    if missing:
        raise DataError(
            f"{display(vectors.path)}: {what} id {excerpt(missing[0])} (from {source}) has no vector "
            f"({len(missing):,} of {len(ids):,} {what} ids missing); every {what} needs one"
        )
    return vectors.matrix[[index[v] for v in ids]]


def check_dimensions(documents: Vectors, questions: Vectors) -> None:
    """Documents and questions must be vectors of one dimension (one embedding space)."""
    if documents.dimension != questions.dimension:
        raise DataError(
            f"{display(questions.path)}: question vectors have {questions.dimension} dimensions, but the document "
            f"vectors of {display(documents.path)} have {documents.dimension}; embed both with the same model"
        )


__all__ = ["FORMATS", "Vectors", "check_dimensions", "load_vectors", "vectors_for"]
