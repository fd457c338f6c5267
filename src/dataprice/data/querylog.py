"""A query log: the candidates a production retriever returned, with their values.

A team that logs its retrieval brings its per-query candidates as a table (CSV, TSV, JSONL,
JSON or Parquet, read by :func:`~dataprice.data.tables.read_records`) with columns

* ``question_id``: a question of the corpus's questions file;
* ``doc_id``: a document of the corpus's documents file (its owner is the seller);
* ``score``: the candidate's value ``v_qd`` to the buyer for that question, before
  ``value_per_quality`` (e.g. an LLM judge's score);
* ``rank`` (optional): the retriever's rank, a positive integer, distinct within a
  question (candidates are kept in this order; without it, in the file's order);
* ``price`` (optional): the document's list price, a finite number ``>= 0``; a document
  logged for several questions must carry the same price on every row.

Each (question, document) pair appears at most once. Anything wrong is one line naming the
file, the line and the column (:class:`~dataprice.errors.DataError`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dataprice.data.corpus import Corpus
from dataprice.data.tables import read_records
from dataprice.errors import DataError
from dataprice.inputs import excerpt

#: The columns of a query log.
QUESTION, DOC, SCORE, RANK, PRICE = "question_id", "doc_id", "score", "rank", "price"


@dataclass(frozen=True)
class QueryLog:
    """Per question, its logged candidates (``-1`` pads questions with fewer).

    Attributes:
        docs: ``(Q, m)`` document indices into the corpus, in rank (or file) order.
        scores: ``(Q, m)`` the logged scores (0 for padding).
        doc_prices: per corpus document, the price the log gives it (``nan``: none), or
            ``None`` when the log has no price column.
    """

    docs: NDArray[np.int64]
    scores: NDArray[np.float64]
    doc_prices: NDArray[np.float64] | None

    @property
    def n_rows(self) -> int:
        return int((self.docs >= 0).sum())


def load_query_log(path: str | Path, corpus: Corpus) -> QueryLog:
    """Read a query log against ``corpus`` (see the module docstring for the columns).

    Raises:
        DataError: one line naming the file, and the line and column of the first bad value:
            an unknown question or document id, a pair logged twice, a rank that is not a
            positive integer or repeats within a question, a price below 0 or two prices for
            one document, a missing column, an empty file, bytes that are not UTF-8.
    """
    records = read_records(path, "query log", required=[QUESTION, DOC, SCORE], optional=[RANK, PRICE])
    q_index = {q: i for i, q in enumerate(corpus.question_ids)}
    d_index = {d: i for i, d in enumerate(corpus.doc_ids)}
    n = len(records)
    rows = np.empty(n, dtype=np.int64)
    cols = np.empty(n, dtype=np.int64)
    for column, index, noun, out in ((QUESTION, q_index, "question", rows), (DOC, d_index, "document", cols)):
        for i, value in enumerate(records.text(column, f"every logged candidate needs a {noun} id")):
            found = index.get(value)
            if found is None:
                where = "the questions file" if noun == "question" else "the documents file"
                raise records.error(i, column, f"{noun} {excerpt(value)} is not in {where}")
            out[i] = found
    scores = records.numbers(SCORE)
    repeat = _first_repeat(zip(rows.tolist(), cols.tolist(), strict=True))
    if repeat is not None:
        i, first, (q, d) = repeat
        raise records.error(
            i, DOC, f"question {excerpt(corpus.question_ids[q])} and document "
            f"{excerpt(corpus.doc_ids[d])} are logged twice (first on line {records.lines[first]}); "
            "give each pair one row"
        )
    order = np.arange(n)
    if records.has(RANK):
        ranks = records.numbers(RANK)
        bad = np.flatnonzero((ranks < 1) | (ranks != np.floor(ranks)))
        if bad.size:
            raise records.error(int(bad[0]), RANK, f"rank {ranks[bad[0]]:g} is not a positive integer")
        repeat = _first_repeat(zip(rows.tolist(), ranks.tolist(), strict=True))
        if repeat is not None:
            i, first, (q, rank) = repeat
            raise records.error(
                i, RANK, f"rank {rank:g} is given twice for question "
                f"{excerpt(corpus.question_ids[q])} (first on line {records.lines[first]}); ranks must differ"
            )
        order = np.lexsort((order, ranks, rows))
    else:
        order = np.lexsort((order, rows))
    doc_prices = None
    if records.has(PRICE):
        prices = records.prices(PRICE)
        doc_prices = np.full(corpus.n_documents, np.nan)
        priced_at: dict[int, int] = {}
        for i, (d, price) in enumerate(zip(cols.tolist(), prices.tolist(), strict=True)):
            first = priced_at.setdefault(d, i)
            if first != i and prices[first] != price:
                raise records.error(
                    i, PRICE, f"document {excerpt(corpus.doc_ids[d])} is priced {price:g} here and "
                    f"{prices[first]:g} on line {records.lines[first]}; a document has one price"
                )
            doc_prices[d] = price
    counts = np.bincount(rows, minlength=corpus.n_questions)
    width = max(int(counts.max(initial=0)), 1)
    docs = np.full((corpus.n_questions, width), -1, dtype=np.int64)
    values = np.zeros((corpus.n_questions, width))
    sorted_rows = rows[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(n) - starts[sorted_rows]
    docs[sorted_rows, slot] = cols[order]
    values[sorted_rows, slot] = scores[order]
    if n == 0:  # pragma: no cover - read_records refuses a file without rows
        raise DataError(f"{path}: the query log has no rows")
    return QueryLog(docs, values, doc_prices)


def _first_repeat(keys: Iterable[tuple[Any, Any]]) -> tuple[int, int, tuple[Any, Any]] | None:
    """``(row, first row, key)`` of the first key seen twice, or None."""
    seen: dict[tuple[Any, Any], int] = {}
    for i, key in enumerate(keys):
        first = seen.setdefault(key, i)
        if first != i:
            return i, first, key
    return None
