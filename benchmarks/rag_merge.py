"""Coalitions evaluated per second: rank-ordered scan vs the previous top-k merge vs a faiss index per coalition.

All paths compute the same RAG utility (hit@k over the questions, retrieval restricted to
the coalition's documents) on the built-in ICD-10-CM corpus with real MiniLM embeddings:

* faiss per coalition: a fresh faiss index over each coalition's documents, searched;
* merge (the previous :meth:`SellerTopK.retrieve`, kept here as :func:`merge_retrieve`):
  every candidate of every seller masked by membership, the k smallest ranks selected by
  ``argpartition`` and sorted, then the scorer on the documents;
* scan (:class:`RAGGame` now): the candidates ranked once per question, the first k whose
  owner is in the coalition found by bit masks, the scorer's table read at their positions.

Prints the three rates and the ratios (measured in the same process), checks that the scan
and the merge give equal values (``np.array_equal``) for every retrieval metric and replay
aggregate, on all timed coalitions plus random ones and the empty coalition; then times
both on batches of a single coalition size (0, 1, 2, sqrt(n), ..., n), the scan's slowest
cases; and times exact Shapley over all 2^n coalitions (n <= 20).

    python benchmarks/rag_merge.py [--sellers 16] [--questions 200] [--k 3] [--baseline 64] [--batch 8192] [--per-size 1024]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.typing import NDArray

from dataprice.buyers.rag.game import RAGGame, ReplayScorer, RetrievalScorer
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


def merge_ranks(topk: SellerTopK) -> NDArray[np.int32]:
    """``(Q, n, k)`` rank of each candidate among all of a question's candidates (by score,
    then document index; padding last): the previous ``SellerTopK.ranks``."""
    n_q, n, k = topk.scores.shape
    flat_scores = topk.scores.reshape(n_q, -1)
    flat_ids = np.where(topk.doc_ids.reshape(n_q, -1) >= 0, topk.doc_ids.reshape(n_q, -1), np.iinfo(np.int64).max)
    order = np.lexsort((flat_ids, -flat_scores.astype(np.float64)), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    return ranks.reshape(n_q, n, k).astype(np.int32)


def merge_retrieve(topk: SellerTopK, ranks: NDArray[np.int32], coalitions: NDArray[np.bool_]) -> NDArray[np.int64]:
    """The previous ``SellerTopK.retrieve``: ``int64[B, Q, k]`` top-k documents of each
    coalition, by selecting the k smallest ranks available to it (``-1``: none)."""
    coalitions = np.asarray(coalitions, dtype=bool)
    b = coalitions.shape[0]
    q, n, k = ranks.shape
    big = np.int32(n * k + 1)
    masked = np.where(coalitions[:, None, :, None], ranks[None], big).reshape(b, q, n * k)
    ids = np.broadcast_to(topk.doc_ids.reshape(1, q, n * k), masked.shape)
    if n * k > k:
        part = np.argpartition(masked, k - 1, axis=2)[..., :k]
    else:
        part = np.broadcast_to(np.arange(n * k), (b, q, n * k))
    chosen_ranks = np.take_along_axis(masked, part, axis=2)
    order = np.argsort(chosen_ranks, axis=2, kind="stable")
    chosen = np.take_along_axis(part, order, axis=2)
    out = np.take_along_axis(ids, chosen, axis=2)
    return np.where(np.take_along_axis(chosen_ranks, order, axis=2) >= big, -1, out)


def merge_values(topk: SellerTopK, ranks: NDArray[np.int32], scorer, coalitions: NDArray[np.bool_],
                 batch_size: int) -> NDArray[np.float64]:
    """``v(S) = mean_q score(q, merged top-k)`` in chunks of ``batch_size`` (the previous RAGGame)."""
    points = np.concatenate([scorer(merge_retrieve(topk, ranks, coalitions[s : s + batch_size]))
                             for s in range(0, len(coalitions), batch_size)])
    return points.mean(axis=1)


def best_rate(run, count: int, repeats: int) -> float:
    """Coalitions per second of the fastest of ``repeats`` runs of ``run()`` over ``count`` coalitions."""
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=16)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--categories", type=int, default=800)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=64, help="coalitions timed on the faiss-per-coalition path")
    parser.add_argument("--batch", type=int, default=8192,
                        help="coalitions timed on the merge and the scan: all 2^n if at most this, else random ones")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of merge and scan (best kept)")
    parser.add_argument("--per-size", type=int, default=1024, help="coalitions timed per coalition size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    corpus = icd10_corpus(args.sellers, n_categories=args.categories, n_questions=args.questions, seed=args.seed)
    embedder = Embedder()
    started = time.perf_counter()
    docs, queries = embedder.encode(corpus.texts), embedder.encode(corpus.questions)
    print(f"corpus: {corpus.n_documents} documents, {corpus.n_questions} questions, {args.sellers} sellers, "
          f"k = {args.k} (embeddings {time.perf_counter() - started:.1f} s, {embedder.n_encoded} texts encoded, "
          "rest from cache)")
    relevance = corpus.relevance()

    n = args.sellers
    rng = np.random.default_rng(args.seed)
    def draw(size: int) -> NDArray[np.bool_]:
        """``size`` uniform random coalitions (each seller in with probability 1/2)."""
        return rng.random((size, n)) < 0.5

    sample = draw(args.baseline)
    started = time.perf_counter()
    slow = baseline_values(sample, docs, corpus.owners, queries, relevance, args.k)
    slow_rate = args.baseline / (time.perf_counter() - started)

    started = time.perf_counter()
    topk = SellerTopK(docs, corpus.owners, queries, n, args.k)
    setup = time.perf_counter() - started
    ranks = merge_ranks(topk)
    batch_size = 512
    game = RAGGame(topk, RetrievalScorer(relevance), value_per_quality=1.0, batch_size=batch_size)
    assert np.allclose(game(sample), slow), "the scan and a faiss index per coalition disagree"

    # every coalition when there are at most --batch, else uniform random ones
    batch = masks_to_coalitions(np.arange(2**n), n) if 2**n <= args.batch else draw(args.batch)
    checked = np.concatenate([batch, draw(2048), np.zeros((1, n), dtype=bool), np.ones((1, n), dtype=bool)])
    replay = rng.uniform(0.0, 1.0, relevance.shape) * (rng.random(relevance.shape) < 0.3)
    for scorer in [RetrievalScorer(relevance, "hit"), RetrievalScorer(relevance, "mrr"),
                   *(ReplayScorer(replay, aggregate) for aggregate in ("max", "top1", "mean"))]:
        scan = RAGGame(topk, scorer, value_per_quality=1.0, batch_size=batch_size).question_scores(checked)
        merged = np.concatenate([scorer(merge_retrieve(topk, ranks, checked[s : s + batch_size]))
                                 for s in range(0, len(checked), batch_size)])
        assert np.array_equal(scan, merged), f"scan and merge disagree ({type(scorer).__name__})"
    assert np.array_equal(topk.retrieve(checked), merge_retrieve(topk, ranks, checked)), "retrieved lists differ"
    print(f"scan == merge bit for bit on {len(checked)} coalitions (hit, mrr, replay max/top1/mean)")

    scorer = RetrievalScorer(relevance)
    merge_rate = best_rate(lambda: merge_values(topk, ranks, scorer, batch, batch_size), len(batch), args.repeats)
    scan_rate = best_rate(lambda: game(batch), len(batch), args.repeats)
    retrieve_merge = best_rate(lambda: [merge_retrieve(topk, ranks, batch[s : s + batch_size])
                                        for s in range(0, len(batch), batch_size)], len(batch), args.repeats)
    retrieve_scan = best_rate(lambda: [topk.retrieve(batch[s : s + batch_size])
                                       for s in range(0, len(batch), batch_size)], len(batch), args.repeats)

    print(f"faiss index per coalition:            {slow_rate:10.1f} coalitions/s ({args.baseline} coalitions)")
    print(f"merge of per-seller top-k (previous): {merge_rate:10.1f} coalitions/s ({len(batch)} coalitions)")
    print(f"rank-ordered scan (RAGGame):          {scan_rate:10.1f} coalitions/s (setup {setup:.2f} s)")
    print(f"documents only, merge vs scan:        {retrieve_merge:10.1f} vs {retrieve_scan:.1f} coalitions/s "
          f"({retrieve_scan / retrieve_merge:.1f}x)")
    print(f"ratio scan / merge: {scan_rate / merge_rate:.1f}x; scan / faiss per coalition: {scan_rate / slow_rate:.0f}x; "
          f"merge / faiss per coalition: {merge_rate / slow_rate:.0f}x")

    # batches of one coalition size: the scan's slow paths (pairs short of k in the first 52
    # ranks: small coalitions by their members' candidates, larger ones by a count)
    sizes = sorted({0, 1, 2, int(np.sqrt(n)), int(np.sqrt(n)) + 1, n // 4, n // 2, n - 1, n} & set(range(n + 1)))
    worst = np.inf
    for size in sizes:
        fixed = np.array([rng.permutation(n) < size for _ in range(args.per_size)])
        merged = merge_values(topk, ranks, scorer, fixed, batch_size)
        assert np.array_equal(game(fixed), merged), f"scan and merge disagree (coalitions of {size})"
        merge_size = best_rate(lambda fixed=fixed: merge_values(topk, ranks, scorer, fixed, batch_size), len(fixed), 1)
        scan_size = best_rate(lambda fixed=fixed: game(fixed), len(fixed), 1)
        worst = min(worst, scan_size / merge_size)
        print(f"  coalitions of {size:3d} sellers: merge {merge_size:10.1f}/s, scan {scan_size:10.1f}/s "
              f"({scan_size / merge_size:.1f}x)")
    print(f"slowest size, scan / merge: {worst:.1f}x")

    if n <= 20:
        started = time.perf_counter()
        fresh = RAGGame(topk, RetrievalScorer(relevance), value_per_quality=1.0, batch_size=batch_size)
        values = ExactShapley().fit(tabulate(fresh)).result.values
        print(f"exact Shapley over all 2^{n} = {2**n} coalitions: {time.perf_counter() - started:.1f} s "
              f"(values sum to v(N) = {values.sum():.3f})")


if __name__ == "__main__":
    main()
