"""Coalitions evaluated per second: vectorised top-k merge vs a faiss index per coalition.

Both paths compute the same RAG utility (hit@k over the questions, retrieval restricted to
the coalition's documents) on the built-in ICD-10-CM corpus with real MiniLM embeddings.
The baseline builds a fresh faiss index over each coalition's documents and searches it;
the fast path merges precomputed per-seller top-k lists for a whole batch of coalitions.
Prints both rates and their ratio (measured in the same process), checks that both give
the same values, and times exact Shapley over all 2^n coalitions.

    python benchmarks/rag_merge.py [--sellers 16] [--questions 200] [--baseline 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dataprice.buyers.rag.game import RAGGame, RetrievalScorer
from dataprice.buyers.rag.retrieval import SellerTopK, flat_search
from dataprice.data.corpus import icd10_corpus
from dataprice.models.embedder import Embedder
from dataprice.valuation.game import masks_to_coalitions, tabulate
from dataprice.valuation.methods import ExactShapley


def baseline_values(coalitions, docs, owners, queries, relevance, k):
    """v(S) by rebuilding a faiss index over S's documents for every coalition."""
    out = np.empty(len(coalitions))
    for i, row in enumerate(coalitions):
        members = np.flatnonzero(np.isin(owners, np.flatnonzero(row)))
        if members.size == 0:
            out[i] = 0.0
            continue
        _, local = flat_search(docs[members], queries, k)
        ids = np.where(local >= 0, members[np.maximum(local, 0)], -1)
        hits = [relevance[q, ids[q][ids[q] >= 0]].any() for q in range(len(ids))]
        out[i] = np.mean(hits)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=16)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--categories", type=int, default=800)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=64, help="coalitions timed on the baseline path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    corpus = icd10_corpus(args.sellers, n_categories=args.categories, n_questions=args.questions, seed=args.seed)
    embedder = Embedder()
    started = time.perf_counter()
    docs, queries = embedder.encode(corpus.texts), embedder.encode(corpus.questions)
    print(f"corpus: {corpus.n_documents} documents, {corpus.n_questions} questions, {args.sellers} sellers "
          f"(embeddings {time.perf_counter() - started:.1f} s, {embedder.n_encoded} texts encoded, rest from cache)")
    relevance = corpus.relevance()

    n = args.sellers
    rng = np.random.default_rng(args.seed)
    sample = masks_to_coalitions(rng.integers(0, 2**n, size=args.baseline), n)

    started = time.perf_counter()
    slow = baseline_values(sample, docs, corpus.owners, queries, relevance, args.k)
    slow_rate = args.baseline / (time.perf_counter() - started)

    started = time.perf_counter()
    topk = SellerTopK(docs, corpus.owners, queries, n, args.k)
    setup = time.perf_counter() - started
    game = RAGGame(topk, RetrievalScorer(relevance), value_per_quality=1.0, batch_size=512)
    assert np.allclose(game(sample), slow), "the two paths disagree"
    batch = masks_to_coalitions(np.arange(min(2**n, 8192)), n)
    started = time.perf_counter()
    game(batch)
    fast_rate = len(batch) / (time.perf_counter() - started)

    print(f"baseline (faiss index per coalition): {slow_rate:10.1f} coalitions/s")
    print(f"vectorised merge of per-seller top-k: {fast_rate:10.1f} coalitions/s (setup {setup:.2f} s)")
    print(f"ratio: {fast_rate / slow_rate:.0f}x")

    started = time.perf_counter()
    fresh = RAGGame(topk, RetrievalScorer(relevance), value_per_quality=1.0, batch_size=512)
    values = ExactShapley().fit(tabulate(fresh)).result.values
    print(f"exact Shapley over all 2^{n} = {2**n} coalitions: {time.perf_counter() - started:.1f} s "
          f"(values sum to v(N) = {values.sum():.3f})")


if __name__ == "__main__":
    main()
