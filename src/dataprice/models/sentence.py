"""What a sentence-transformers folder asks to load, checked by its files before anything loads.

A sentence-transformers model folder lists its modules in ``modules.json``, each as a class
path and a subfolder, e.g. ``sentence_transformers.models.Transformer`` at ``""`` and
``sentence_transformers.models.Pooling`` at ``1_Pooling``. ``SentenceTransformer(folder)``
imports each class it names and calls its ``load``, so a folder one received chooses which
code runs. sentence-transformers 6 asks for ``trust_remote_code=True`` before it imports a
class outside its own package; dataprice goes further and loads only the modules a sentence
embedding needs, checked here from the files (no import of torch or sentence-transformers,
so ``dataprice validate`` stays fast):

* **Transformer** (first, at the folder itself), **Pooling**, **Dense** and **Normalize**,
  under the class paths sentence-transformers 2 to 6 write (:data:`ALLOWED_MODULES`);
* every module's subfolder inside the folder (no ``..``, no absolute path, no link out);
* a Dense layer's weights in an intact safetensors file (``model.safetensors``), never a
  pickle, and its activation a ``torch.nn`` class (any other would be replaced by Tanh).

A folder with no ``modules.json`` is a plain transformers encoder (sentence-transformers
mean-pools it). :func:`prompt_for` reads the folder's prompts
(``config_sentence_transformers.json``: ``prompts`` and ``default_prompt_name``), which
models such as E5 or BGE prepend to queries and documents.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dataprice.inputs import excerpt
from dataprice.models.folder import safetensors_problem

#: Class paths a ``modules.json`` may name, by module (sentence-transformers 2-5 wrote
#: ``sentence_transformers.models.X``; 6 writes the classes' own modules).
ALLOWED_MODULES: dict[str, tuple[str, ...]] = {
    "Transformer": ("sentence_transformers.models.Transformer",
                    "sentence_transformers.base.modules.transformer.Transformer"),
    "Pooling": ("sentence_transformers.models.Pooling",
                "sentence_transformers.sentence_transformer.modules.pooling.Pooling"),
    "Dense": ("sentence_transformers.models.Dense", "sentence_transformers.base.modules.dense.Dense"),
    "Normalize": ("sentence_transformers.models.Normalize",
                  "sentence_transformers.base.modules.normalize.Normalize"),
}
_KIND = {path: kind for kind, paths in ALLOWED_MODULES.items() for path in paths}
#: Largest ``modules.json`` or ``config_sentence_transformers.json`` read.
MAX_JSON_BYTES = 2**20
#: Most modules a folder may list.
MAX_MODULES = 16
#: A Dense layer's ``activation_function``: a class path under ``torch.nn``.
_TORCH_NN = re.compile(r"torch\.nn(\.[A-Za-z_][A-Za-z0-9_]*)+")


def _read_json(path: Path) -> Any:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES // 2**20} MiB")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _optional_object(path: Path) -> tuple[dict, str | None]:
    """The JSON object in ``path`` and None, ``{}`` and None when there is no such file, or
    ``{}`` and a one-line problem naming the file."""
    if not path.is_file():
        return {}, None
    try:
        data = _read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, f"{path}: not readable JSON ({excerpt(str(exc), 80)})"
    return (data, None) if isinstance(data, dict) else ({}, f"{path}: not a JSON object")


def module_kinds(folder: str | Path) -> list[str]:
    """The kinds of the folder's modules, in order (``["Transformer", "Pooling", ...]``);
    ``[]`` when it has no ``modules.json``. Assumes :func:`modules_problem` found none."""
    path = Path(folder) / "modules.json"
    if not path.is_file():
        return []
    return [_KIND[entry["type"]] for entry in _read_json(path)]


def modules_problem(folder: str | Path) -> str | None:
    """What makes the folder's ``modules.json`` unsafe or unusable (one line, without the
    field), or None; see the module docstring for what is allowed."""
    root = Path(folder)
    path = root / "modules.json"
    if not path.exists():
        return None
    try:
        entries = _read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{path}: not a readable modules.json ({excerpt(str(exc), 80)})"
    if not isinstance(entries, list) or not entries or len(entries) > MAX_MODULES:
        return f"{path}: not a list of 1 to {MAX_MODULES} modules"
    allowed = ", ".join(ALLOWED_MODULES)
    for i, entry in enumerate(entries):
        where = f"{path}: module {i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not isinstance(
                entry.get("path", ""), str):
            return f"{where}: needs a 'type' and a 'path' (strings)"
        kind = _KIND.get(entry["type"])
        if kind is None:
            return (f"{where}: {excerpt(entry['type'], 80)} is not a module dataprice loads (loading it would run "
                    f"code the folder chooses); allowed: sentence-transformers' {allowed}")
        sub = entry.get("path", "")
        if (i == 0) != (kind == "Transformer") or (kind == "Transformer" and sub != ""):
            return f"{where}: {kind}; the first module, and only it, must be the Transformer at the folder itself"
        target = (root / sub).resolve()
        inside = not Path(sub).is_absolute() and target.is_relative_to(root.resolve())
        if not inside or not (target.is_dir() or kind == "Normalize"):  # Normalize reads no file
            return f"{where}: its path {excerpt(sub, 80)!s} is not a subfolder of the model folder"
        if kind == "Dense":
            problem = _dense_problem(where, target, sub)
            if problem:
                return problem
    return prompts_problem(root)


def _dense_problem(where: str, target: Path, sub: str) -> str | None:
    """A Dense layer's weights must be an intact ``model.safetensors``, and its activation a
    ``torch.nn`` module: sentence-transformers without ``trust_remote_code`` puts Tanh in
    place of any other, which would change the vectors without a word."""
    weights = target / "model.safetensors"
    if not weights.is_file():
        return (f"{where}: the Dense layer in {excerpt(sub, 80)} has no model.safetensors (a pickle would be read "
                "instead, and unpickling can run code); save the model again with sentence-transformers 3 or later")
    config, problem = _optional_object(target / "config.json")
    if problem:
        return problem
    activation = config.get("activation_function")
    if activation is not None and not (isinstance(activation, str) and _TORCH_NN.fullmatch(activation)):
        return (f"{target / 'config.json'}: activation_function {excerpt(activation, 80)} is not a torch.nn module class such as "
                "'torch.nn.modules.activation.Tanh' (sentence-transformers would use Tanh in its place)")
    return safetensors_problem(weights)


def encoder_problem(path: str | Path) -> str | None:
    """What makes a model path (already passed by
    :func:`~dataprice.models.folder.folder_problem`) unusable as a sentence encoder: a GGUF
    file (a causal LM), or :func:`modules_problem`; None when it is usable."""
    if Path(path).suffix.lower() == ".gguf":
        return f"{path}: a GGUF file is a causal LM; give a sentence-embedding model folder"
    return modules_problem(path) or sentence_config_problem(path)


def sentence_config_problem(folder: str | Path) -> str | None:
    """What makes ``sentence_bert_config.json`` unusable (one line), or None: when present it
    is a JSON object whose ``max_seq_length``, if given, is a whole number of tokens from 1 to
    the model's ``max_position_embeddings`` (``config.json``). A longer limit would let
    texts through that the model cannot read; dataprice cuts documents to this limit."""
    path = Path(folder) / "sentence_bert_config.json"
    config, problem = _optional_object(path)
    length = config.get("max_seq_length")
    if problem or length is None:
        return problem
    positions = _optional_object(Path(folder) / "config.json")[0].get("max_position_embeddings")
    top = positions if isinstance(positions, int) and not isinstance(positions, bool) and positions > 0 else None
    if not isinstance(length, int) or isinstance(length, bool) or length < 1 or (top is not None and length > top):
        allowed = f"1 to {top} (the model's max_position_embeddings)" if top else "a whole number from 1"
        return f"{path}: max_seq_length {excerpt(length, 40)} is not allowed; allowed: {allowed}"
    return None


def _prompts(folder: Path) -> tuple[dict[str, str], str | None]:
    path = folder / "config_sentence_transformers.json"
    if not path.is_file():
        return {}, None
    config = _read_json(path)
    if not isinstance(config, dict):
        raise ValueError("not a JSON object")
    prompts = config.get("prompts") or {}
    default = config.get("default_prompt_name")
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str | None)
                                                for k, v in prompts.items()):
        raise ValueError("'prompts' is not a mapping of names to strings")
    if default is not None and not isinstance(default, str):
        raise ValueError("'default_prompt_name' is not a string")
    return {k: v for k, v in prompts.items() if v is not None}, default


def prompts_problem(folder: str | Path) -> str | None:
    """What makes ``config_sentence_transformers.json`` unreadable (one line), or None."""
    try:
        _prompts(Path(folder))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{Path(folder) / 'config_sentence_transformers.json'}: {excerpt(str(exc), 100)}"
    return None


#: Prompt names sentence-transformers tries, in order, for each role.
ROLE_PROMPTS = {"query": ("query",), "document": ("document", "passage", "corpus")}


def prompt_for(folder: str | Path | None, role: str | None) -> str:
    """The text the model prepends to a ``role`` (``query`` or ``document``) text, as
    sentence-transformers' ``encode_query``/``encode_document`` choose it: the first prompt
    named for the role (:data:`ROLE_PROMPTS`), else the folder's default prompt, else none
    (``""``). MiniLM (``folder`` None) has none."""
    if folder is None:
        return ""
    prompts, default = _prompts(Path(folder))
    for name in ROLE_PROMPTS.get(role or "", ()):
        if name in prompts:
            return prompts[name]
    return prompts.get(default, "") if default is not None else ""


__all__ = ["ALLOWED_MODULES", "ROLE_PROMPTS", "encoder_problem", "module_kinds", "modules_problem", "prompt_for", "prompts_problem"]
