"""The per-query documents buyer (the published RAG market): per query, the buyer takes the
one candidate document with the best value minus price.

Candidates: the best document of each of the ``candidates`` owners most similar to the
query. A document's value: ``retrieval`` (1 if it answers), ``lm_reader`` (an LM's
log-likelihood gain, floored at 0) or ``replay`` (recorded scores), times
``value_per_quality``. The market kind is ``per_query``; valuation methods see
``v(S) = sum_q max_{candidates d of q owned by S} v_qd`` (no prices).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from dataprice.buyers.base import BuildContext, BuiltTask, register_buyer
from dataprice.buyers.rag import CorpusBuyer
from dataprice.specs import PositiveFloat
from dataprice.valuation.game import Game


class PerQueryValueGame(Game):
    """``v(S) = sum_q max_{candidates d of q owned by S} v_qd``: the buyer's value of owners'
    documents over the query set, with no prices (the game valuation methods see)."""

    def __init__(self, values: NDArray[np.float64], owners: NDArray[np.int64], player_names: list[str]) -> None:
        super().__init__(len(player_names), player_names)
        self.values, self.owners = values, owners

    def value_function(self, coalitions):
        padded = np.concatenate([coalitions, np.zeros((coalitions.shape[0], 1), dtype=bool)], axis=1)
        member = padded[:, np.where(self.owners >= 0, self.owners, coalitions.shape[1])]  # (B, Q, m)
        return np.where(member, self.values[None], 0.0).max(axis=2).sum(axis=1)


@register_buyer
class DocumentsBuyer(CorpusBuyer):
    """Per query, the buyer takes the one candidate document with the best value minus price."""

    task: Literal["rag_single_document"]
    value_per_quality: PositiveFloat = 1.0
    candidates: Annotated[int, Field(ge=1, le=100)] = 10
    value_source: Literal["retrieval", "lm_reader", "replay"] = "retrieval"

    label: ClassVar[str] = "a RAG system that buys, per query, the one document with the best value minus price"
    market_kind: ClassVar[str] = "per_query"
    scored_by_field: ClassVar[str] = "value_source"

    def scored_by(self) -> str:
        return self.value_source

    def build(self, context: BuildContext) -> BuiltTask:
        from dataprice.buyers.rag.corpus import build_corpus, embeddings, make_reader
        from dataprice.buyers.rag.game import ReplayScorer
        from dataprice.buyers.rag.retrieval import SellerTopK
        from dataprice.market.kinds import PerQueryMarket

        names = context.names
        corpus = build_corpus(self.corpus, context.scenario.sellers.count, context.seed)
        docs, queries = embeddings(corpus, self.embeddings, context.progress)
        best = SellerTopK(docs, corpus.owners, queries, corpus.n_sellers, 1)  # each owner's best document
        m = min(self.candidates, corpus.n_sellers)
        similarity = best.scores[:, :, 0].astype(np.float64)
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :m]  # most similar owners first
        doc = np.take_along_axis(best.doc_ids[:, :, 0], order, axis=1)
        owners = np.where(doc >= 0, order, -1)
        q_index = np.arange(corpus.n_questions)[:, None]
        if self.scored_by() == "retrieval":
            raw = corpus.relevance()[q_index, np.maximum(doc, 0)].astype(np.float64)
        elif self.scored_by() == "replay":
            assert self.replay_file is not None  # the schema requires it for utility 'replay'
            raw = ReplayScorer.from_file(self.replay_file, corpus).scores[q_index, np.maximum(doc, 0)]
        else:
            reader = make_reader(self.reader)
            items = [
                (corpus.texts[d], corpus.questions[q], corpus.answers[q])
                for q in range(corpus.n_questions) for d in doc[q]
            ]
            raw = np.maximum(reader.gain(items).reshape(doc.shape), 0.0)
        values = np.where(doc >= 0, raw * self.value_per_quality, 0.0)
        market = PerQueryMarket(values, owners, corpus.n_sellers, context.scenario.market.shapley_scope)
        contributions = corpus.describe_sellers().drop(columns="seller").assign(seller=names)
        contributions["candidate_queries"] = np.bincount(owners[owners >= 0], minlength=corpus.n_sellers)
        return BuiltTask(PerQueryValueGame(values, owners, names), contributions, market)
