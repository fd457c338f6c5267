"""Long texts split into overlapping chunks of tokens, so that an embedder sees all of them.

A sentence embedder reads at most ``L`` tokens of a text (all-MiniLM-L6-v2: 256, two of them
its special tokens); anything after is cut without a word. :func:`plan_chunks` splits every
text longer than a window of ``w`` tokens into windows of ``w`` tokens that start every
``w - overlap`` tokens (the last window ends at the text's end), the usual sliding window of
retrieval pipelines. A chunk is a span of the original text, from the first character of its
first token to the last character of its last token (the tokenizer's offsets), so a chunk's
text is the document's own text, never a decoding of tokens. A text that fits is one chunk,
the whole text, unchanged.

Chunks keep their document: chunk -> document -> owner (:meth:`dataprice.data.corpus.Corpus.chunked`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class ChunkPlan:
    """Where each chunk of a list of texts starts and ends.

    Attributes:
        text_index: ``int64[m]``, the text each chunk comes from (texts in order, chunks of a
            text in order).
        starts, ends: ``int64[m]``, each chunk's span ``text[start:end]`` in characters.
        tokens: ``int64[n]``, tokens of each text (without special tokens).
        window: tokens per chunk.
        overlap: tokens two consecutive chunks of a text share.
    """

    text_index: NDArray[np.int64]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    tokens: NDArray[np.int64]
    window: int
    overlap: int

    @property
    def n_texts(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_chunks(self) -> int:
        return int(self.text_index.shape[0])

    def long_texts(self) -> NDArray[np.bool_]:
        """Texts longer than one window (split into more than one chunk)."""
        return self.tokens > self.window

    def chunks_per_text(self) -> NDArray[np.int64]:
        return np.bincount(self.text_index, minlength=self.n_texts)

    def texts(self, texts: Sequence[str]) -> list[str]:
        """The chunks' texts, cut from ``texts`` (the texts the plan was made from)."""
        return [texts[i][s:e] for i, s, e in zip(self.text_index.tolist(), self.starts.tolist(),
                                                 self.ends.tolist(), strict=True)]

    def to_arrays(self) -> dict[str, NDArray[np.int64]]:
        return {"text_index": self.text_index, "starts": self.starts, "ends": self.ends, "tokens": self.tokens,
                "settings": np.array([self.window, self.overlap], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays, n_texts: int) -> ChunkPlan | None:
        """The plan saved by :meth:`to_arrays`, or ``None`` if the arrays do not make one for
        ``n_texts`` texts (a damaged cache file)."""
        try:
            window, overlap = (int(v) for v in arrays["settings"])
            index, starts, ends, tokens = (np.asarray(arrays[k], dtype=np.int64)
                                           for k in ("text_index", "starts", "ends", "tokens"))
            plan = cls(index, starts, ends, tokens, window=window, overlap=overlap)
        except (KeyError, ValueError, TypeError):
            return None
        m = plan.n_chunks
        if plan.n_texts != n_texts or plan.starts.shape != (m,) or plan.ends.shape != (m,):
            return None
        if m and (plan.text_index.min() < 0 or plan.text_index.max() >= n_texts or (plan.ends < plan.starts).any()):
            return None
        return plan


def windows(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Token windows ``[a, b)`` covering ``n_tokens`` tokens: ``[0, w)``, ``[s, s + w)``,
    ``[2s, 2s + w)``, ... with stride ``s = w - overlap``, the last one ending at
    ``n_tokens`` (so it may overlap its neighbour by more than ``overlap``). One window
    ``[0, n)`` when the text fits (``n <= w``, including an empty text)."""
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got window={window}, overlap={overlap}")
    if n_tokens <= window:
        return [(0, n_tokens)]
    stride = window - overlap
    out = []
    start = 0
    while True:
        end = start + window
        if end >= n_tokens:
            out.append((max(n_tokens - window, 0), n_tokens))
            return out
        out.append((start, end))
        start += stride


def plan_chunks(offsets: Sequence[NDArray[np.int64]], texts: Sequence[str], window: int, overlap: int) -> ChunkPlan:
    """Split each text into token windows (:func:`windows`), as character spans.

    Args:
        offsets: per text, ``int[t, 2]``: each token's ``(start, end)`` character offsets in
            the text (a fast tokenizer's ``offset_mapping``, special tokens left out).
        texts: the texts (a text that fits is one chunk spanning all of it, even where its
            first or last characters are spaces no token covers).
        window: tokens per chunk.
        overlap: tokens shared by consecutive chunks.
    """
    index: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    tokens = np.fromiter((len(o) for o in offsets), dtype=np.int64, count=len(offsets))
    for i, (spans, text) in enumerate(zip(offsets, texts, strict=True)):
        spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        if spans.shape[0] <= window:
            index.append(i)
            starts.append(0)
            ends.append(len(text))
            continue
        for a, b in windows(spans.shape[0], window, overlap):
            index.append(i)
            starts.append(int(spans[a, 0]))
            ends.append(int(spans[b - 1, 1]))
    return ChunkPlan(np.asarray(index, dtype=np.int64), np.asarray(starts, dtype=np.int64),
                     np.asarray(ends, dtype=np.int64), tokens, int(window), int(overlap))
