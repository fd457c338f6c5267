"""Models a user brings: a local Hugging Face folder (or a GGUF file), named in a scenario.

A scenario names its own model with ``{path: ...}`` (:class:`ModelFolder`) where a preset
name (``smollm2``, ``tiny``, ``minilm``) would go; the path is taken relative to the
scenario file's folder. This module only looks at the files (no torch, no transformers),
so ``dataprice validate`` can check a folder in milliseconds:

* a **Hugging Face folder** holds ``config.json`` (with a ``model_type``), weights in
  safetensors format (``model.safetensors`` or shards named by
  ``model.safetensors.index.json``) and a tokenizer (``tokenizer.json``,
  ``tokenizer.model``, ``vocab.txt`` or ``vocab.json``);
* a **GGUF file** (``*.gguf``) holds weights, configuration and tokenizer in one file.

Nothing in a folder is ever executed: models are loaded with ``trust_remote_code=False``
and ``local_files_only=True``, from safetensors or GGUF only. A folder whose weights are
only pickle-based (``pytorch_model.bin``, ``*.pt``, ``*.pkl``) is refused, because unpickling
a file one received can run code; convert it once, where you trust it, with
``model.save_pretrained(folder, safe_serialization=True)``. Whether transformers knows the
architecture is checked when the model is loaded (:mod:`dataprice.models.lm`,
:mod:`dataprice.models.embedder`), before any work of the run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dataprice.inputs import excerpt
from dataprice.specs import FilePath, StrictModel

#: Files that hold safetensors weights (a single file, or the index of shards).
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
#: Weight files that are pickles (refused: unpickling runs code).
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pkl", "model.ckpt")
#: Files any of which makes a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json")
#: Largest ``config.json`` read (a configuration is a few KiB).
MAX_CONFIG_BYTES = 4 * 2**20

CONVERT_HINT = (
    "convert it where you trust it with model.save_pretrained(folder, safe_serialization=True)"
)


class ModelFolder(StrictModel):
    """A local model: ``path`` is a Hugging Face model folder or a ``.gguf`` file (relative
    paths are taken from the scenario file's folder)."""

    path: FilePath

    def is_gguf(self) -> bool:
        return Path(self.path).suffix.lower() == ".gguf"


def _show(path: str | Path) -> str:
    """``path`` as printed in an error: itself when short and printable, else an excerpt."""
    text = str(path)
    return text if len(text) <= 200 and text.isprintable() else excerpt(text, 200)


def read_config(folder: Path) -> dict:
    """``config.json`` of a model folder, as a mapping (checked by :func:`folder_problem`)."""
    with open(folder / "config.json", encoding="utf-8") as handle:
        config = json.load(handle)
    if not isinstance(config, dict):
        raise ValueError("config.json is not a JSON object")
    return config


def folder_problem(path: str, *, tokenizer: bool = True) -> str | None:
    """What makes ``path`` unusable as a model (one line, without the field), or None.

    Checks the files only: a ``.gguf`` file exists; else a folder with a readable
    ``config.json`` naming a ``model_type``, safetensors weights (pickle-only weights are
    refused) and, if ``tokenizer``, tokenizer files.
    """
    p = Path(path)
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            return f"GGUF file not found: {_show(p)}"
        return None
    if not p.exists():
        return f"model folder not found: {_show(p)}"
    if not p.is_dir():
        return f"{_show(p)} is not a folder; give a Hugging Face model folder or a .gguf file"
    config = p / "config.json"
    if not config.is_file():
        return f"{_show(p)} has no config.json; a model folder holds config.json, weights and a tokenizer"
    if config.stat().st_size > MAX_CONFIG_BYTES:
        return f"{_show(config)} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; not a model configuration"
    try:
        data = read_config(p)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{_show(config)}: not a JSON object ({excerpt(str(exc), 80)})"
    if not isinstance(data.get("model_type"), str):
        return f"{_show(config)}: no 'model_type'; the folder must be saved with transformers' save_pretrained"
    if not any((p / name).is_file() for name in SAFETENSORS):
        pickles = [name for name in PICKLE_WEIGHTS if (p / name).is_file()]
        if pickles:
            return (f"{_show(p)} holds only pickle weights ({pickles[0]}), which can run code when loaded; "
                    f"{CONVERT_HINT}")
        return f"{_show(p)} has no model.safetensors; {CONVERT_HINT}"
    if tokenizer and not any((p / name).is_file() for name in TOKENIZER_FILES):
        return f"{_show(p)} has no tokenizer ({', '.join(TOKENIZER_FILES)}); save it with tokenizer.save_pretrained(folder)"
    return weights_problem(p)


#: Largest safetensors header read (a header lists the tensors: a few KiB to a few MiB).
MAX_HEADER_BYTES = 100 * 2**20


def safetensors_problem(path: Path) -> str | None:
    """What makes a safetensors file unreadable, from its header alone (no tensor is read),
    or None: the file is an 8-byte little-endian header length, a JSON header giving each
    tensor's ``data_offsets``, then the tensors' bytes, which must end where the file ends.
    A truncated copy or another kind of file is named here instead of failing in the loader."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= length <= min(size - 8, MAX_HEADER_BYTES):
                return f"{_show(path)} is not a safetensors file or is cut short ({size:,} bytes); copy it again"
            header = json.loads(handle.read(length))
    except OSError as exc:
        return f"{_show(path)}: cannot be read ({excerpt(str(exc), 80)})"
    except (UnicodeDecodeError, ValueError):
        return f"{_show(path)}: its safetensors header is not JSON; the file is damaged, copy it again"
    if not isinstance(header, dict):
        return f"{_show(path)}: its safetensors header is not a JSON object; the file is damaged"
    offsets = [entry.get("data_offsets") for name, entry in header.items()
               if name != "__metadata__" and isinstance(entry, dict)]
    ends = [o[1] for o in offsets if isinstance(o, list) and len(o) == 2 and isinstance(o[1], int)]
    expected = 8 + length + max(ends, default=0)
    if expected != size:
        return (f"{_show(path)} holds {size:,} bytes but its header describes {expected:,}; the file is damaged or "
                "cut short, copy it again")
    return None


def weights_problem(folder: Path) -> str | None:
    """:func:`safetensors_problem` of a folder's ``model.safetensors``, or of every shard its
    ``model.safetensors.index.json`` names (which must be files of the folder), or None."""
    single = folder / "model.safetensors"
    if single.is_file():
        return safetensors_problem(single)
    index = folder / "model.safetensors.index.json"
    try:
        with open(index, encoding="utf-8") as handle:
            weight_map = json.load(handle).get("weight_map")
        shards = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError):
        return f"{_show(index)}: not a safetensors index (a JSON object with a 'weight_map')"
    for shard in shards:
        path = folder / str(shard)
        if Path(str(shard)).name != str(shard) or not path.is_file():
            return f"{_show(index)} names the shard {excerpt(shard, 80)}, which is not a file of the folder"
        problem = safetensors_problem(path)
        if problem:
            return problem
    return None


#: What a model folder must be, by use: the transformers mapping of the architectures it
#: loads without code from the folder, and examples for the message.
KINDS = {
    "causal": ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "a causal language model", "llama, qwen2, gpt2, ..."),
    "encoder": ("MODEL_MAPPING_NAMES", "a model", "bert, roberta, xlm-roberta, mpnet, ..."),
}


def architecture_problem(path: str, kind: str) -> str | None:
    """Whether transformers has a class for the folder's ``model_type`` as ``kind``
    (``causal`` or ``encoder``) without running code from the folder (one line, without the
    field), or None. Reads ``config.json`` and transformers' tables of names (no torch, no
    weights); a GGUF file or a folder :func:`folder_problem` refuses is not looked at."""
    if Path(path).suffix.lower() == ".gguf" or folder_problem(path, tokenizer=False):
        return None
    import importlib

    table, what, examples = KINDS[kind]
    names = getattr(importlib.import_module("transformers.models.auto.modeling_auto"), table)
    model_type = read_config(Path(path))["model_type"]
    if model_type in names:
        return None
    return (f"{_show(path)}: architecture {excerpt(model_type, 60)} is not {what} transformers can load "
            f"without running code from the folder; use {examples}")


def content_id(path: str) -> str:
    """``folder-<sha256>`` of a model's files (names and bytes, sorted by name; a GGUF
    file's bytes): equal files, equal id. Trained policies are cached under it."""
    p = Path(path)
    digest = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        digest.update(str(f.relative_to(p) if f != p else f.name).encode() + b"\0")
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        digest.update(b"\0")
    return f"folder-{digest.hexdigest()}"


__all__ = [
    "MAX_HEADER_BYTES",
    "ModelFolder",
    "architecture_problem",
    "content_id",
    "folder_problem",
    "read_config",
    "safetensors_problem",
    "weights_problem",
]
