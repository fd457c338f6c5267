"""The RAG buyer's game: the value of a coalition of sellers is the QA quality of retrieval over their documents.

``v(S) = kappa * mean_q [ score(q, R_S(q)) - score(q, empty) ]`` where ``R_S(q)`` is the
top-k of question ``q`` among the documents of the sellers in ``S`` (see
:class:`~dataprice.buyers.rag.retrieval.SellerTopK`), ``kappa`` the buyer's value
per unit of quality, and the empty coalition scores 0 (``v(empty) = 0``).

Scorers of a retrieved list:

* :class:`RetrievalScorer`: retrieval-grounded, ``hit@k`` (a document that answers is in the
  top-k) or ``mrr@k`` (``1 / rank`` of the first one);
* :class:`ReaderScorer`: an LM reader (SmolLM2) scoring the reference answer's mean token
  log-probability given the retrieved context, minus the same without context; outputs are
  cached by (question, retrieved list), so coalitions that retrieve the same documents cost
  one forward pass;
* :class:`ReplayScorer`: recorded ``(question, document) -> score`` tables (an LLM judge run
  elsewhere), aggregated over the retrieved list (``max``, ``top1`` or ``mean``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.buyers.rag.retrieval import SellerTopK
from dataprice.data.corpus import Corpus
from dataprice.data.tables import read_records
from dataprice.errors import DataError
from dataprice.inputs import excerpt
from dataprice.valuation.game import Game


class Scorer(Protocol):
    def __call__(self, retrieved: NDArray[np.int64]) -> NDArray[np.float64]:
        """``retrieved``: ``int[B, Q, k]`` document indices (``-1`` = none) -> ``float[B, Q]``."""


def _gather(table: NDArray, retrieved: NDArray[np.int64], fill) -> NDArray:
    """``table[q, retrieved[b, q, i]]`` with ``fill`` where ``retrieved == -1``."""
    q_count, d_count = table.shape
    padded = np.concatenate([table, np.full((q_count, 1), fill, dtype=table.dtype)], axis=1)
    idx = np.where(retrieved < 0, d_count, retrieved)
    q_index = np.arange(q_count)[None, :, None]
    return padded[q_index, idx]


class _CandidateTable:
    """A scorer's per-(question, document) table read at ranked positions instead of documents.

    ``ranked[q, 1 + j] = table[q, candidates[q, j]]`` (``fill`` where the candidate is
    ``-1``) and ``ranked[q, 0] = fill``, flattened, so position ``p`` of question ``q``
    (``-1``: nothing retrieved) is entry ``q (L + 1) + 1 + p``. For positions ``p`` of
    :meth:`SellerTopK.positions` the gathered values are exactly
    ``_gather(table, retrieved, fill)`` for the documents ``retrieved = candidates[q, p]``,
    in the same ``(B, Q, k)`` layout, so the scorer's reduction over them gives the same
    floats, bit for bit; only the ``Q x documents`` table is neither copied nor indexed per
    batch.
    """

    def __init__(self, table: NDArray, candidates: NDArray[np.int64], fill, score) -> None:
        ranked = _gather(table, candidates[None], fill)[0]
        q_count, length = ranked.shape
        self.ranked = np.concatenate([np.full((q_count, 1), fill, dtype=ranked.dtype), ranked], axis=1).ravel()
        self.offsets = (np.arange(q_count, dtype=np.intp) * (length + 1) + 1)[:, None]
        self.score = score

    def __call__(self, positions: NDArray[np.intp]) -> NDArray[np.float64]:
        """``positions``: ``int[B, Q, k]`` ranked positions (``-1`` = none) -> ``float[B, Q]``."""
        return self.score(np.take(self.ranked, positions + self.offsets))


class RetrievalScorer:
    """``hit@k`` or ``mrr@k`` against the corpus's relevance matrix."""

    def __init__(self, relevance: NDArray[np.bool_], metric: Literal["hit", "mrr"] = "hit") -> None:
        self.relevance = np.asarray(relevance, dtype=bool)
        self.metric = metric

    def __call__(self, retrieved: NDArray[np.int64]) -> NDArray[np.float64]:
        return self._score(_gather(self.relevance, retrieved, False))

    def on_candidates(self, candidates: NDArray[np.int64]) -> _CandidateTable:
        """The same scores from ranked positions into ``candidates`` (``(Q, L)`` documents)."""
        return _CandidateTable(self.relevance, candidates, False, self._score)

    def _score(self, rel: NDArray[np.bool_]) -> NDArray[np.float64]:
        """``rel[b, q, i]``: whether the ``i``-th retrieved document answers; ``hit = any_i rel``,
        ``mrr = 1 / (1 + first i with rel)`` (0 when none)."""
        found = rel[..., 0].copy()  # any over the k slots; a loop over slots beats a reduce over so few
        for i in range(1, rel.shape[2]):
            found |= rel[..., i]
        if self.metric == "hit":
            return found.astype(np.float64)
        first = np.argmax(rel, axis=2)
        return np.where(found, 1.0 / (first + 1.0), 0.0)


class ReplayScorer:
    """Scores read from a recorded table ``(question_id, doc_id, score)``.

    Pairs missing from the table score ``missing`` (default 0). ``aggregate`` combines the
    retrieved documents' scores: ``max`` (the best document the reader saw), ``top1`` (the
    top-ranked document's) or ``mean``.
    """

    def __init__(self, scores: NDArray[np.float64], aggregate: Literal["max", "top1", "mean"] = "max") -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        self.aggregate = aggregate

    @classmethod
    def from_file(cls, path: str | Path, corpus: Corpus, *, aggregate="max", missing: float = 0.0) -> ReplayScorer:
        """Read ``question_id, doc_id, score`` rows (CSV, TSV, JSONL or JSON; any other
        suffix is read as CSV). Every id must be in ``corpus``, every score a finite number,
        and no (question, document) pair may appear twice. Scores are per document: in a
        chunked corpus every chunk of a document scores the document's score."""
        records = read_records(path, "replay", required=["question_id", "doc_id", "score"], default_format="csv")
        q_index = {q: i for i, q in enumerate(corpus.question_ids)}
        doc_ids = corpus.document_ids if corpus.document_ids is not None else corpus.doc_ids
        d_index = {d: i for i, d in enumerate(doc_ids)}
        rows = np.empty(len(records), dtype=np.int64)
        cols = np.empty(len(records), dtype=np.int64)
        for column, index, noun, out in (
            ("question_id", q_index, "question", rows), ("doc_id", d_index, "document", cols)
        ):
            for i, value in enumerate(records.text(column, f"every score needs a {noun} id")):
                found = index.get(value)
                if found is None:
                    raise records.error(i, column, f"{noun} {excerpt(value)} is not in the corpus")
                out[i] = found
        scores = records.numbers("score")
        keys = rows * max(len(doc_ids), 1) + cols
        order = np.argsort(keys, kind="stable")
        repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
        if repeated.size:
            later = int(order[1:][repeated].min())
            first = int(order[np.searchsorted(keys[order], keys[later])])
            raise DataError(
                f"{records.where(later)}, columns 'question_id' and 'doc_id': question "
                f"{excerpt(corpus.question_ids[rows[later]])} and document {excerpt(doc_ids[cols[later]])} "
                f"are scored twice (first on line {records.lines[first]}); give each pair one score"
            )
        table = np.full((corpus.n_questions, len(doc_ids)), missing, dtype=np.float64)
        table[rows, cols] = scores
        if corpus.parents is not None:
            table = table[:, corpus.parents]
        return cls(table, aggregate)

    def __call__(self, retrieved: NDArray[np.int64]) -> NDArray[np.float64]:
        if self.aggregate == "top1":
            return self._score(_gather(self.scores, retrieved[..., :1], 0.0))
        return self._score(_gather(self.scores, retrieved, np.nan))

    def on_candidates(self, candidates: NDArray[np.int64]) -> _CandidateTable:
        """The same scores from ranked positions into ``candidates`` (``(Q, L)`` documents)."""
        return _CandidateTable(self.scores, candidates, 0.0 if self.aggregate == "top1" else np.nan, self._score)

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """``values[b, q, i]``: the ``i``-th retrieved document's score (``top1``: 0 when none,
        otherwise NaN when none). ``top1``: ``values[..., 0]``; ``max``:
        ``max_i values`` (0 when none); ``mean``: ``sum_i values / count`` over the documents
        retrieved, summed by ``np.nansum`` (0 when none)."""
        if self.aggregate == "top1":
            return values[..., 0]
        if self.aggregate == "mean":
            count = np.sum(~np.isnan(values), axis=2)
            out = np.where(count > 0, np.nansum(values, axis=2) / np.maximum(count, 1), 0.0)
        else:
            out = np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=2)
        return np.where(np.isfinite(out), out, 0.0)


class ReaderScorer:
    """LM reader gain: ``logp(answer | context, question) - logp(answer | question)``.

    The context is the retrieved documents, best first, separated by blank lines. Gains are
    cached by (question, retrieved list): ``n_unique`` counts the distinct lists scored.
    """

    def __init__(self, reader, corpus: Corpus) -> None:
        if any(a is None for a in corpus.answers):
            raise DataError("the LM reader utility needs a reference answer for every question")
        self.reader = reader
        self.corpus = corpus
        self._cache: dict[tuple[int, tuple[int, ...]], float] = {}

    @property
    def n_unique(self) -> int:
        return len(self._cache)

    def __call__(self, retrieved: NDArray[np.int64]) -> NDArray[np.float64]:
        b, q_count, _ = retrieved.shape
        out = np.zeros((b, q_count))
        todo: dict[tuple[int, tuple[int, ...]], None] = {}
        for q in range(q_count):
            for row in np.unique(retrieved[:, q, :], axis=0):
                key = (q, tuple(int(d) for d in row if d >= 0))
                if key[1] and key not in self._cache:
                    todo[key] = None
        if todo:
            keys = list(todo)
            items = [
                ("\n\n".join(self.corpus.texts[d] for d in docs), self.corpus.questions[q], self.corpus.answers[q])
                for q, docs in keys
            ]
            gains = self.reader.gain(items)
            self._cache.update(zip(keys, map(float, gains), strict=True))
        for q in range(q_count):
            for i in range(b):
                docs = tuple(int(d) for d in retrieved[i, q] if d >= 0)
                out[i, q] = self._cache[(q, docs)] if docs else 0.0
        return out


class RAGGame(Game):
    """``v(S) = kappa * mean_q score(q, top-k of S's documents)`` (0 for the empty coalition).

    Coalitions are evaluated in chunks of ``batch_size``: :meth:`SellerTopK.positions` finds
    each coalition's top-k among the ranked candidates, for the whole chunk at once. A scorer
    with ``on_candidates`` (retrieval, replay) then reads its table at those positions; any
    other (the LM reader) is given the documents (:meth:`SellerTopK.retrieve`). Both give
    the same floats.
    """

    def __init__(
        self,
        topk: SellerTopK,
        scorer: Scorer,
        *,
        value_per_quality: float = 1.0,
        player_names: Sequence[str] | None = None,
        batch_size: int = 256,
    ) -> None:
        super().__init__(topk.n_sellers, player_names)
        self.topk = topk
        self.scorer = scorer
        self.value_per_quality = float(value_per_quality)
        self.batch_size = batch_size
        on_candidates = getattr(scorer, "on_candidates", None)
        self._by_position = None if on_candidates is None else on_candidates(topk.ranked_docs)

    def proxy_game(self) -> Game | None:
        """With the LM reader: retrieval hit@k on the same ranking, questions and money scale
        (a table lookup per coalition against a reader pass per new context; the reader's
        gain grows with whether the answer was retrieved). Other scorers need no proxy."""
        if not isinstance(self.scorer, ReaderScorer):
            return None
        try:
            relevance = self.scorer.corpus.relevance()
        except DataError:  # the corpus does not say which documents answer: no proxy
            return None
        return RAGGame(self.topk, RetrievalScorer(relevance, "hit"),
                       value_per_quality=self.value_per_quality, player_names=self.player_names,
                       batch_size=self.batch_size)

    def utility_variants(self) -> dict[str, Game]:
        """With a retrieval scorer: this game under ``hit`` and ``mrr`` (the declared metric
        first), on the same ranking, questions and money scale; other scorers: none."""
        if not isinstance(self.scorer, RetrievalScorer):
            return {}
        out: dict[str, Game] = {self.scorer.metric: self}
        for metric in ("hit", "mrr"):
            if metric != self.scorer.metric:
                out[metric] = RAGGame(self.topk, RetrievalScorer(self.scorer.relevance, metric),
                                      value_per_quality=self.value_per_quality, player_names=self.player_names,
                                      batch_size=self.batch_size)
        return out

    def _chunk_scores(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[B, Q]`` for one chunk of coalitions."""
        if self._by_position is not None:
            return self._by_position(self.topk.positions(coalitions))
        return self.scorer(self.topk.retrieve(coalitions))

    def question_scores(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[B, Q]``: each question's score for each coalition."""
        return np.concatenate(
            [
                self._chunk_scores(coalitions[s : s + self.batch_size])
                for s in range(0, coalitions.shape[0], self.batch_size)
            ]
        )

    @property
    def n_points(self) -> int:
        """Questions the value averages over (the evaluation set a bootstrap resamples)."""
        return int(self.topk.scores.shape[0])

    def point_values(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[m, Q]``: each question's score (:meth:`question_scores`)."""
        return self.question_scores(coalitions)

    def from_points(self, points: NDArray[np.float64], weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        """``kappa *`` the (weighted) mean score over questions."""
        return self.value_per_quality * (points.mean(axis=1) if weights is None else points @ weights)

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        # the empty coalition retrieves nothing; every scorer gives it 0
        return self.from_points(self.question_scores(coalitions))
