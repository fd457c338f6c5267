"""The per-query documents buyer (the published RAG market): per query, the buyer takes the
one candidate document with the best value minus price.

Candidates (``candidates_from``):

* ``retriever``: the best document of each of the ``candidates`` owners most similar to the
  query (MiniLM embeddings). A document's value: ``retrieval`` (1 if it answers),
  ``lm_reader`` (an LM's log-likelihood gain, floored at 0) or ``replay`` (recorded scores);
* ``query_log``: the candidates a production retriever logged, ``(question_id, doc_id,
  score[, rank][, price])`` (:mod:`dataprice.data.querylog`); a candidate's value is its
  logged score. Nothing is embedded and no model is loaded.

Values are times ``value_per_quality``. Prices (``pricing``): one price per owner (its
report, per document sold), or per item, from a ``price`` column in the documents file or
the query log. The market kind is ``per_query``; valuation methods see
``v(S) = sum_q max(0, max_{candidates d of q owned by S} v_qd)`` (no prices).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from dataprice.buyers.base import BuildContext, BuiltTask, costs_given, register_buyer
from dataprice.buyers.rag import CorpusBuyer
from dataprice.errors import DataError
from dataprice.specs import FilePath, PositiveFloat
from dataprice.valuation.game import Game


class PerQueryValueGame(Game):
    """``v(S) = sum_q max(0, max_{candidates d of q owned by S} v_qd)``: the buyer's value of
    owners' documents over the query set, with no prices, ``v(empty) = 0`` (the game
    valuation methods see)."""

    def __init__(self, values: NDArray[np.float64], owners: NDArray[np.int64], player_names: list[str]) -> None:
        super().__init__(len(player_names), player_names)
        self.values, self.owners = values, owners

    #: numbers held at once per block of coalitions, ``(coalitions, queries, candidates)``
    block_cells: ClassVar[int] = 1 << 22

    def value_function(self, coalitions):
        n_coalitions = coalitions.shape[0]
        column = np.where(self.owners >= 0, self.owners, coalitions.shape[1])  # padding reads a False column
        step = max(1, self.block_cells // max(self.values.size, 1))  # bounded memory, same numbers per row
        out = np.empty(n_coalitions)
        for start in range(0, n_coalitions, step):
            rows = coalitions[start:start + step]
            padded = np.concatenate([rows, np.zeros((rows.shape[0], 1), dtype=bool)], axis=1)
            member = padded[:, column]  # (B, Q, m)
            out[start:start + step] = np.where(member, self.values[None], 0.0).max(axis=2).sum(axis=1)
        return out


#: query logs read in this process: (path, mtime) -> (the corpus read against, the log)
_LOGS: dict[tuple[str, int], tuple[Any, Any]] = {}


def _query_log_cached(path: str, mtime: int, corpus):
    """:func:`~dataprice.data.querylog.load_query_log`, read once per file content and corpus."""
    from dataprice.data.querylog import load_query_log

    known = _LOGS.get((path, mtime))
    if known is not None and known[0] is corpus:
        return known[1]
    log = load_query_log(path, corpus)
    if len(_LOGS) >= 4:
        _LOGS.pop(next(iter(_LOGS)))
    _LOGS[(path, mtime)] = (corpus, log)
    return log


def owner_unit_prices(doc_prices: NDArray[np.float64], owners: NDArray[np.int64], n_owners: int) -> NDArray[np.float64]:
    """``u_o``: the mean list price of owner ``o``'s priced documents (``nan``: unpriced), 0
    for an owner with none."""
    priced = ~np.isnan(doc_prices)
    total = np.bincount(owners[priced], weights=doc_prices[priced], minlength=n_owners)
    count = np.bincount(owners[priced], minlength=n_owners)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


@register_buyer
class DocumentsBuyer(CorpusBuyer):
    """Per query, the buyer takes the one candidate document with the best value minus price.

    ``pricing`` says what an owner reports:

    * ``owner``: one price per document sold, the same for all its documents; its true cost
      is ``sellers.costs`` (a distribution, one cost for all, or costs by owner name);
    * ``item``: every document ``d`` has its own list price ``p_d``, its cost of being sold
      once (the documents file's ``price`` column, or the query log's). An owner makes *one*
      report ``b_o`` for all its items, in the unit of its mean list price ``u_o``: item
      ``d`` is offered at ``b_o p_d / u_o``, so the truthful report is ``b_o = u_o`` (the
      seller's cost in the report) and prices every item at its list price. With one
      document per owner, ``b_o`` is simply that document's price. ``sellers.costs`` must
      be left out (the prices are the costs);
    * ``auto`` (default): ``item`` if a price column is there, else ``owner``.
    """

    task: Literal["rag_single_document"]
    value_per_quality: PositiveFloat = 1.0
    candidates: Annotated[int, Field(ge=1, le=100)] = 10
    value_source: Literal["retrieval", "lm_reader", "replay"] = "retrieval"
    candidates_from: Literal["retriever", "query_log"] = "retriever"
    query_log: FilePath | None = None
    pricing: Literal["auto", "owner", "item"] = "auto"

    label: ClassVar[str] = "a RAG system that buys, per query, the one document with the best value minus price"
    market_kind: ClassVar[str] = "per_query"
    scored_by_field: ClassVar[str] = "value_source"
    path_fields: ClassVar[tuple[str, ...]] = (*CorpusBuyer.path_fields, "query_log")

    def scored_by(self) -> str:
        return self.value_source

    def needs_answers(self) -> bool:
        return self.candidates_from == "retriever"

    def extras(self) -> frozenset[str]:
        """Nothing beyond the core for candidates from a query log (no index, no model)."""
        return frozenset() if self.candidates_from == "query_log" else super().extras()

    def problems(self, scenario: Any) -> Iterable[str]:
        yield from super().problems(scenario)
        if self.candidates_from == "query_log":
            if not self.query_log:
                yield "buyer.query_log: needed when buyer.candidates_from is 'query_log'"
            if self.corpus.source != "files":
                yield ("buyer.corpus.source: candidates from a query log name documents and questions of your files; "
                       "use source 'files' with 'documents' and 'questions'")
            for name in ("value_source", "candidates", "replay_file"):  # set to something else than the default
                if getattr(self, name) != type(self).model_fields[name].default:
                    yield (f"buyer.{name}: not used with candidates from a query log (each logged candidate counts, "
                           "valued at its score); remove it")
        elif self.query_log:
            yield "buyer.query_log: read only with buyer.candidates_from 'query_log'; set it, or remove query_log"
        if self.pricing == "item":
            if self.corpus.source != "files":
                yield ("buyer.pricing: 'item' needs prices from your files (a price column in buyer.corpus.documents "
                       "or the query log); use 'owner' with the built-in corpus")
            if costs_given(scenario.sellers):
                yield "sellers.costs: with buyer.pricing 'item' each document's price is its cost; remove sellers.costs"

    def data_files(self) -> dict[str, str]:
        files = super().data_files()
        if self.candidates_from == "query_log" and self.query_log:
            files["buyer.query_log"] = self.query_log
        return files

    # --- data -----------------------------------------------------------------------------

    def _corpus(self, n_sellers: int, seed: int):
        from dataprice.buyers.rag.corpus import build_corpus

        return build_corpus(self.corpus, n_sellers, seed, need_answers=self.needs_answers())

    def embeds_texts(self) -> bool:
        return self.candidates_from == "retriever"

    def problems_against(self, corpus: Any, scenario: Any) -> Iterable[str]:
        """Besides the replayed scores and vector files: the query log (ids, repeats,
        scores, prices), where prices come from and how sellers' costs go with them."""
        yield from super().problems_against(corpus, scenario)
        try:
            log = self._log(corpus) if self.candidates_from == "query_log" else None
            self.document_prices(corpus, log)
            self.seller_costs(scenario, corpus.seller_names)
        except DataError as exc:
            yield str(exc)

    def uses_relevance(self) -> bool:
        return self.scored_by() == "retrieval" and self.candidates_from != "query_log"

    def _log(self, corpus):
        assert self.query_log is not None  # the schema requires it for candidates_from 'query_log'
        path = Path(self.query_log)
        mtime = path.stat().st_mtime_ns if path.is_file() else 0
        return _query_log_cached(str(path), mtime, corpus)

    def document_prices(self, corpus, log) -> NDArray[np.float64] | None:
        """Each document's list price (``nan``: not priced), or ``None`` under owner pricing.

        Raises:
            DataError: prices given in both files, prices under ``pricing: owner``, or none
                under ``pricing: item``.
        """
        from_docs = corpus.prices
        from_log = None if log is None else log.doc_prices
        if from_docs is not None and from_log is not None:
            raise DataError(
                f"{self.query_log}: column 'price' gives prices that {self.corpus.documents} gives too "
                f"(column {self.corpus.price_column!r}); give each document's price in one file"
            )
        prices = from_docs if from_docs is not None else from_log
        where = self.corpus.documents if from_docs is not None else self.query_log
        column = self.corpus.price_column if from_docs is not None else "price"
        if prices is not None and self.pricing == "owner":
            raise DataError(
                f"{where}: column {column!r} gives per-document prices, but buyer.pricing is 'owner' (one price per "
                "owner); set buyer.pricing to 'item' (or 'auto'), or remove the column"
            )
        if prices is None and self.pricing == "item":
            raise DataError(
                f"{self.corpus.documents}: buyer.pricing 'item' needs a {self.corpus.price_column!r} column here "
                "(or a 'price' column in the query log)"
            )
        return None if self.pricing == "owner" else prices

    def seller_costs(self, scenario: Any, names: list[str]) -> NDArray[np.float64] | None:
        """Under per-item prices, each owner's cost is its mean list price ``u_o`` (in the
        order of ``names``); otherwise ``None`` (the scenario's ``sellers.costs``)."""
        if self.corpus.source != "files":
            return None
        corpus = self._corpus(scenario.sellers.count, scenario.seed)
        log = self._log(corpus) if self.candidates_from == "query_log" else None
        prices = self.document_prices(corpus, log)
        if prices is None:
            return None
        if costs_given(scenario.sellers):
            raise DataError(
                f"{self.corpus.documents}: the documents are priced (per-item pricing), and each document's price is "
                "its cost; remove sellers.costs, or set buyer.pricing to 'owner' and remove the price column"
            )
        unit = owner_unit_prices(prices, corpus.owners, corpus.n_sellers)
        index = {name: o for o, name in enumerate(corpus.seller_names)}
        return np.array([unit[index[name]] for name in names])

    # --- the market -----------------------------------------------------------------------

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.market.kinds import PerQueryMarket

        names = context.names
        corpus = self.checked_corpus(context)
        log = None
        notes: Any = ()
        if self.candidates_from == "query_log":
            log = self._log(corpus)
            doc, raw = log.docs, log.scores
        else:
            corpus, doc, raw, notes = self._retrieved(corpus, context)
        owners = np.where(doc >= 0, corpus.owners[np.maximum(doc, 0)], -1)
        values = np.where(doc >= 0, raw * self.value_per_quality, 0.0)
        weights = None
        prices = self.document_prices(corpus, log) if self.corpus.source == "files" else None
        contributions = corpus.describe_sellers().drop(columns="seller").assign(seller=names)
        if prices is not None:
            cell = np.where(doc >= 0, prices[np.maximum(doc, 0)], 0.0)
            unpriced = np.argwhere((doc >= 0) & np.isnan(cell))
            if unpriced.size:
                q, k = unpriced[0]
                raise DataError(
                    f"{self.query_log or self.corpus.documents}: document {corpus.doc_ids[doc[q, k]]!r} is a candidate "
                    f"for question {corpus.question_ids[q]!r} but has no price; price every candidate"
                )
            unit = owner_unit_prices(prices, corpus.owners, corpus.n_sellers)
            own_unit = unit[np.maximum(owners, 0)]
            weights = np.where((doc >= 0) & (own_unit > 0), cell / np.where(own_unit > 0, own_unit, 1.0), 1.0)
            contributions["mean_list_price"] = unit
        market = PerQueryMarket(values, owners, corpus.n_sellers, context.scenario.market.shapley_scope, weights)
        q_idx, k_idx = np.nonzero(owners >= 0)  # queries where each owner has a candidate
        pairs = np.unique(np.stack([q_idx, owners[q_idx, k_idx]], axis=1), axis=0).reshape(-1, 2)
        contributions["candidate_queries"] = np.bincount(pairs[:, 1], minlength=corpus.n_sellers)
        return BuiltTask(PerQueryValueGame(values, owners, names), contributions, market, notes=notes,
                         findings=market.findings())

    def _retrieved(self, corpus, context: BuildContext):
        """The retriever's candidates: per query, the best document (or chunk of a long
        document) of each of the ``candidates`` most similar owners, and each candidate's raw
        value; with the corpus whose rows the candidates index (chunked when documents were
        split) and the notes on how texts were read. A chunk is sold as its document: its
        price is the document's."""
        from dataprice.buyers.rag.corpus import embed, make_reader
        from dataprice.buyers.rag.game import ReplayScorer
        from dataprice.buyers.rag.retrieval import owner_candidates

        embedded = embed(corpus, self.embeddings, context.progress)
        corpus = embedded.corpus
        m = min(self.candidates, corpus.n_sellers)
        # most similar owners first (ties by owner index), each with its best document
        _, doc = owner_candidates(embedded.documents, corpus.owners, embedded.questions, corpus.n_sellers, m)
        q_index = np.arange(corpus.n_questions)[:, None]
        if self.scored_by() == "retrieval":
            raw = corpus.relevance_at(doc).astype(np.float64)  # the candidates' only, not Q x documents
        elif self.scored_by() == "replay":
            assert self.replay_file is not None  # the schema requires it for utility 'replay'
            raw = ReplayScorer.from_file(self.replay_file, corpus).scores[q_index, np.maximum(doc, 0)]
        else:
            reader = make_reader(self.reader, progress=context.progress)
            items = [
                (corpus.texts[d], corpus.questions[q], corpus.answers[q])
                for q in range(corpus.n_questions) for d in doc[q]
            ]
            raw = np.maximum(reader.gain(items).reshape(doc.shape), 0.0)
            return corpus, doc, raw, [*embedded.notes, *reader.notes()]
        return corpus, doc, raw, embedded.notes
