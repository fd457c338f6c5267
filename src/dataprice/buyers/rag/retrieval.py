"""Dense retrieval for the RAG buyers: faiss search and per-seller top-k lists merged per coalition.

* :func:`flat_search` is exact inner-product search with faiss (on unit-norm embeddings from
  :class:`~dataprice.models.embedder.Embedder`, the cosine similarity).
* :func:`owner_candidates` is the per-query buyer's candidate list: per query, the best
  document of each of the ``m`` owners most similar to it, in memory that does not grow
  with the number of owners times queries.
* :class:`SellerTopK` precomputes, for every question and seller, the seller's own top-k
  documents (one faiss inner-product index per seller). The top-k of a coalition is a
  subset of the union of its members' top-k lists, so it is a *merge* of those lists:
  :meth:`SellerTopK.retrieve` does it for a whole batch of coalitions at once with array
  operations, with no index rebuilt.

Ties are broken by document index (lower first) everywhere, so merged and fresh searches
agree exactly. Searches run on one thread, so scores do not depend on the machine's core
count or the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray


@contextmanager
def _one_thread(faiss: Any) -> Iterator[None]:
    """faiss searches on one thread, the thread count restored after. On its BLAS path (from
    ``queries x dimension >= faiss.cvar.distance_compute_blas_threshold``) the float32 inner
    products depend on how many threads split the matrix product, which would make near-ties,
    hence candidates and payments, depend on the machine and the engine (Dask workers run
    one thread each); one thread gives the same numbers everywhere."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def flat_search(
    doc_embeddings: NDArray[np.float32], query_embeddings: NDArray[np.float32], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Exact inner-product search with faiss; ties by lower document index.

    Returns ``(scores, ids)`` of shape ``(n_queries, k)``; rows are padded with ``-inf``
    and ``-1`` when there are fewer than ``k`` documents.
    """
    import faiss

    n_docs = doc_embeddings.shape[0]
    n_q = query_embeddings.shape[0]
    scores = np.full((n_q, k), -np.inf, dtype=np.float32)
    ids = np.full((n_q, k), -1, dtype=np.int64)
    if n_docs == 0 or n_q == 0:
        return scores, ids
    index = faiss.IndexFlatIP(doc_embeddings.shape[1])
    index.add(np.ascontiguousarray(doc_embeddings, dtype=np.float32))
    # ask for a few more than k so that ties at the boundary can be ordered by index
    extra = min(n_docs, k + 8)
    with _one_thread(faiss):
        found_scores, found_ids = index.search(np.ascontiguousarray(query_embeddings, dtype=np.float32), extra)
    # per row: valid results by (-score, id), invalid ones (-1) last
    valid = found_ids >= 0
    order = np.lexsort((np.where(valid, found_ids, np.iinfo(np.int64).max),
                        np.where(valid, -found_scores, np.float32(0)), ~valid), axis=1)[:, :k]
    kept = np.take_along_axis(valid, order, axis=1)
    width = order.shape[1]
    scores[:, :width] = np.where(kept, np.take_along_axis(found_scores, order, axis=1), -np.inf)
    ids[:, :width] = np.where(kept, np.take_along_axis(found_ids, order, axis=1), -1)
    return scores, ids


def _members_by_owner(owners: NDArray[np.int64], n_owners: int) -> list[NDArray[np.int64]]:
    """The document indices of each owner ``0..n_owners-1``, ascending (one pass over ``owners``)."""
    owners = np.asarray(owners, dtype=np.int64)
    order = np.argsort(owners, kind="stable")
    bounds = np.searchsorted(owners[order], np.arange(n_owners + 1))
    return [order[bounds[o]:bounds[o + 1]] for o in range(n_owners)]


def owner_candidates(
    doc_embeddings: NDArray[np.float32],
    owners: NDArray[np.int64],
    query_embeddings: NDArray[np.float32],
    n_owners: int,
    m: int,
    *,
    owner_block: int = 256,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Per query, the best document of each of the ``m`` owners most similar to it.

    Owners are ranked per query by their best document's score (inner product), ties by
    lower owner index; an owner's best document is its highest-scoring one, ties by lower
    document index. Owners without documents rank last (``-inf``, document ``-1``), and
    rows are padded with ``-inf`` / ``-1`` when ``m`` exceeds the number of owners.

    The scores are exactly those of :class:`SellerTopK` with ``k = 1`` (one faiss search
    over each owner's documents, all queries at once): the float32 inner products faiss
    returns depend on the shape of the search (its BLAS kernel for a block of database rows),
    so a single search over all documents can differ in the last bits and reorder ties. What
    changes is the memory: owners are folded in blocks of ``owner_block`` into a running
    top-``m``, so no ``(queries, owners)`` array is built; memory is
    ``O(queries x (m + owner_block))``.

    Returns:
        ``(scores, doc_ids)``, each ``(n_queries, m)``: the owners' best scores and their
        global document indices, most similar owner first.
    """
    n_q = query_embeddings.shape[0]
    best_scores = np.empty((n_q, 0), dtype=np.float32)
    best_owner = np.empty((n_q, 0), dtype=np.int64)
    best_doc = np.empty((n_q, 0), dtype=np.int64)
    members = _members_by_owner(owners, n_owners)
    for start in range(0, n_owners, owner_block):
        stop = min(start + owner_block, n_owners)
        scores = np.full((n_q, stop - start), -np.inf, dtype=np.float32)
        docs = np.full((n_q, stop - start), -1, dtype=np.int64)
        for column, owner in enumerate(range(start, stop)):
            mine = members[owner]
            if mine.size == 0:
                continue
            s, local = flat_search(doc_embeddings[mine], query_embeddings, 1)
            scores[:, column] = s[:, 0]
            docs[:, column] = np.where(local[:, 0] >= 0, mine[np.maximum(local[:, 0], 0)], -1)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_owner = np.concatenate([best_owner, np.broadcast_to(np.arange(start, stop), (n_q, stop - start))], axis=1)
        all_doc = np.concatenate([best_doc, docs], axis=1)
        keep = np.lexsort((all_owner, -all_scores.astype(np.float64)), axis=1)[:, :m]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_owner = np.take_along_axis(all_owner, keep, axis=1)
        best_doc = np.take_along_axis(all_doc, keep, axis=1)
    width = best_scores.shape[1]
    if width < m:
        best_scores = np.concatenate([best_scores, np.full((n_q, m - width), -np.inf, dtype=np.float32)], axis=1)
        best_doc = np.concatenate([best_doc, np.full((n_q, m - width), -1, dtype=np.int64)], axis=1)
    return best_scores, best_doc


class SellerTopK:
    """Per-question, per-seller top-k lists, and their merge for batches of coalitions.

    Attributes:
        scores: ``(Q, n, k)`` similarity of each seller's k best documents per question.
        doc_ids: ``(Q, n, k)`` their global document indices (``-1`` padding).
        ranks: ``(Q, n, k)`` rank of each candidate among all of a question's candidates
            (by score, then document index; padding ranks last), so a merge is a selection
            of the k smallest ranks available to the coalition.
    """

    def __init__(
        self,
        doc_embeddings: NDArray[np.float32],
        owners: NDArray[np.int64],
        query_embeddings: NDArray[np.float32],
        n_sellers: int,
        k: int,
    ) -> None:
        self.k = int(k)
        self.n_sellers = int(n_sellers)
        n_q = query_embeddings.shape[0]
        self.scores = np.full((n_q, n_sellers, k), -np.inf, dtype=np.float32)
        self.doc_ids = np.full((n_q, n_sellers, k), -1, dtype=np.int64)
        for seller, members in enumerate(_members_by_owner(owners, n_sellers)):
            if members.size == 0:  # a seller without documents: padding only
                continue
            s, local = flat_search(doc_embeddings[members], query_embeddings, k)
            self.scores[:, seller] = s
            self.doc_ids[:, seller] = np.where(local >= 0, members[np.maximum(local, 0)], -1)
        flat_scores = self.scores.reshape(n_q, -1)
        flat_ids = np.where(self.doc_ids.reshape(n_q, -1) >= 0, self.doc_ids.reshape(n_q, -1), np.iinfo(np.int64).max)
        order = np.lexsort((flat_ids, -flat_scores.astype(np.float64)), axis=1)
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
        self.ranks = ranks.reshape(n_q, n_sellers, k).astype(np.int32)

    @property
    def n_questions(self) -> int:
        return self.scores.shape[0]

    def retrieve(self, coalitions: NDArray[np.bool_]) -> NDArray[np.int64]:
        """Top-k document indices for every coalition and question, best first.

        Args:
            coalitions: ``bool[B, n]``.

        Returns:
            ``int64[B, Q, k]``; ``-1`` where the coalition has fewer than k documents.
        """
        coalitions = np.asarray(coalitions, dtype=bool)
        b = coalitions.shape[0]
        q, n, k = self.ranks.shape
        big = np.int32(n * k + 1)
        ranks = np.where(coalitions[:, None, :, None], self.ranks[None], big).reshape(b, q, n * k)
        ids = np.broadcast_to(self.doc_ids.reshape(1, q, n * k), ranks.shape)
        if n * k > k:
            part = np.argpartition(ranks, k - 1, axis=2)[..., :k]
        else:
            part = np.broadcast_to(np.arange(n * k), (b, q, n * k))
        chosen_ranks = np.take_along_axis(ranks, part, axis=2)
        order = np.argsort(chosen_ranks, axis=2, kind="stable")
        chosen = np.take_along_axis(part, order, axis=2)
        out = np.take_along_axis(ids, chosen, axis=2)
        return np.where(np.take_along_axis(chosen_ranks, order, axis=2) >= big, -1, out)
