"""Reading scenarios: YAML through the input boundary, overrides, one-line errors.

:func:`load_scenario` reads a file (size, UTF-8, YAML depth, aliases and duplicate keys are
checked by :mod:`dataprice.inputs`), makes the buyer's data-file paths absolute from the
file's folder, validates it (:func:`parse_scenario`) and checks that the data files exist.
Errors are collected and reported one per line as ``field.path: what was wrong (got X)``,
so ``dataprice validate`` tells a user everything to fix in one go.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dataprice.buyers.base import BUYERS
from dataprice.errors import ScenarioError
from dataprice.inputs import (
    MAX_SCENARIO_BYTES,
    checked_file,
    dump_yaml,
    excerpt,
    load_yaml,
    max_data_bytes,
    path_problem,
    read_text,
    shorten,
)
from dataprice.scenario.schema import Scenario, scenario_model, union_tags


def _format_location(loc: tuple) -> str:
    parts = []
    tags = union_tags()
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in tags or "[" in str(item) or str(item) in {"float", "int", "str", "bool", "constrained-float", "constrained-int"}:
            continue  # union branch tags pydantic inserts
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


#: Most problems listed for one file (the rest are counted).
MAX_PROBLEMS = 25


def _prefixes(loc: str) -> set[str]:
    """Every proper prefix of a location that is a field path (``a``, ``a.b``, ``a.b[0]``)."""
    return {loc[:i] for i, ch in enumerate(loc) if ch in ".[" and i > 0}


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: ``field.path: message (got value)``, at most
    :data:`MAX_PROBLEMS` lines, each quoting at most a short excerpt of the input.

    For a union field, pydantic reports a type mismatch against every branch; a type error
    is dropped when a more specific error lies below the same field, and the branches' type
    errors at one field make one line naming every form allowed.
    """
    errors = error.errors()
    locs = [_format_location(e["loc"]) for e in errors]
    above = set().union(*map(_prefixes, locs)) if locs else set()
    type_errors: dict[str, list[Any]] = {}
    for e, loc in zip(errors, locs, strict=True):
        if e["type"].endswith("_type") and loc not in above:
            type_errors.setdefault(loc, []).append(e)
    # a branch whose type fits but whose value does not (a negative number) says it best
    matched = {loc for e, loc in zip(errors, locs, strict=True) if not e["type"].endswith("_type")}
    lines = []
    for e, loc in zip(errors, locs, strict=True):
        if (loc in above or loc in matched) and e["type"].endswith("_type"):
            continue
        branches = type_errors.get(loc, [])
        if len(branches) > 1 and e in branches:
            if e is branches[0]:
                forms = "; ".join(dict.fromkeys(b["msg"].removeprefix("Input should be ") for b in branches))
                lines.append(f"{loc}: {excerpt(e.get('input'))} is none of the forms allowed: {forms}")
            continue
        if e["type"] == "union_tag_invalid":  # an unknown buyer task: name the field and the choices
            ctx = e.get("ctx", {})
            tag = ctx.get("discriminator", "'task'").strip("'")
            lines.append(f"{loc}.{tag}: unknown value {excerpt(ctx.get('tag'))}; allowed: {ctx.get('expected_tags')}")
            continue
        msg = shorten(e["msg"].removeprefix("Value error, "), 240)
        if loc == "(top level)" and " | " in msg:
            lines.extend(msg.split(" | "))
            continue
        if msg.split(":", 1)[0].count(".") and loc == "(top level)":
            lines.append(msg)
            continue
        got = e.get("input")
        shown = "" if e["type"] in {"missing", "value_error"} or isinstance(got, dict | list) else f" (got {excerpt(got)})"
        lines.append(f"{loc}: {msg}{shown}")
    if len(lines) > MAX_PROBLEMS:
        lines = lines[:MAX_PROBLEMS] + [f"... and {len(lines) - MAX_PROBLEMS} more problems"]
    return lines


def parse_scenario(data: Any, source: str | None = None) -> Scenario:
    """Validate a mapping as a scenario; raise :class:`ScenarioError` listing every problem."""
    if not isinstance(data, dict):
        raise ScenarioError(f"a scenario must be a mapping of fields, got {type(data).__name__}", source)
    try:
        return scenario_model().model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc), source) from None


def merge_overrides(data: dict, overrides: dict) -> dict:
    """``data`` with ``overrides``: top-level keys are replaced, except that a dict
    overriding a dict section is merged into it."""
    return {
        **data,
        **{
            key: {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
            for key, value in overrides.items()
        },
    }


def load_scenario(path: str | Path, overrides: dict | None = None) -> Scenario:
    """Read and validate a YAML scenario file, and check the data files it names.

    ``overrides`` replace top-level keys, except that a dict overriding a dict section is
    merged into it (``{"engine": {"workers": 4}}`` keeps the file's other engine settings).
    """
    text = read_text(path, "scenario file", limit=MAX_SCENARIO_BYTES, error=ScenarioError)
    source = str(path)
    data = load_yaml(text, source, error=ScenarioError)
    if data is None:
        raise ScenarioError("the file is empty; a scenario needs at least name, sellers and buyer", source)
    if overrides and isinstance(data, dict):
        data = merge_overrides(data, overrides)
    if isinstance(data, dict):
        data = absolute_paths(data, Path(path).resolve().parent)
    scenario = parse_scenario(data, source)
    check_data_files(scenario, source)
    return scenario


def check_data_files(scenario: Scenario, source: str | None = None) -> None:
    """Every data file the buyer uses exists, is a readable regular file and is within the
    size limit (:func:`dataprice.inputs.max_data_bytes`); then what the buyer finds by
    reading them (:meth:`~dataprice.buyers.base.Buyer.data_problems`; buyers that do not
    read them here check their content when they load them). Raises one
    :class:`ScenarioError` listing every problem."""
    problems = []
    for field, path in scenario.buyer.data_files().items():
        try:
            checked_file(path, "file", error=ScenarioError, limit=max_data_bytes())
        except ScenarioError as exc:
            problems.append(f"{field}: {exc}")
    if not problems:
        problems.extend(scenario.buyer.data_problems(scenario))
    if problems:
        raise ScenarioError(problems, source)


def absolute_paths(data: dict, base: Path) -> dict:
    """The buyer's data-file and model paths (its ``path_fields`` and ``model_path_fields``)
    made absolute from ``base``, the
    scenario's folder (a value that is not a usable path is left for the schema to reject)."""
    buyer = data.get("buyer")
    task = buyer.get("task") if isinstance(buyer, dict) else None
    cls = BUYERS.get(task) if isinstance(task, str) else None
    if cls is None or not isinstance(buyer, dict):
        return data

    def resolve(node: Any, parts: list[str]) -> Any:
        if not isinstance(node, dict) or parts[0] not in node:
            return node
        value = node[parts[0]]
        if len(parts) > 1:
            return {**node, parts[0]: resolve(value, parts[1:])}
        if isinstance(value, str) and not path_problem(value):
            return {**node, parts[0]: str((base / value).resolve())}
        return node

    for dotted in (*cls.path_fields, *cls.model_path_fields):
        buyer = resolve(buyer, dotted.split("."))
    return {**data, "buyer": buyer}


_REQUIRED = object()


def _shown(value: Any) -> str:
    """A field's value in one short line (JSON for lists and mappings)."""
    def plain(v: Any) -> Any:  # a section in a list shows only what it sets
        if isinstance(v, BaseModel):
            return v.model_dump(mode="json", exclude_defaults=True)
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    value = plain(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


def changed_fields(model: BaseModel, base: Any = None, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted field, value)`` of every field of ``model`` that differs from its default
    (required fields always), walking into sections: what a scenario sets, read from the
    resolved scenario alone (so a saved run says the same as the file it came from).

    ``base``: the default of ``model`` itself when its parent's default gives one (its
    fields are compared with that instance's, not with the class defaults)."""
    out: list[tuple[str, str]] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if base is not None:
            default = getattr(base, name, _REQUIRED)
        elif field.is_required():
            default = _REQUIRED
        else:
            default = field.get_default(call_default_factory=True)
        if isinstance(value, BaseModel) and (default is _REQUIRED or type(default) is type(value)):
            if default is _REQUIRED or value != default:
                out += changed_fields(value, None if default is _REQUIRED else default, f"{prefix}{name}.")
            continue
        if default is _REQUIRED or value != default:
            out.append((f"{prefix}{name}", _shown(value)))
    return out


def scenario_to_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario (every default filled in), as YAML that
    :func:`load_scenario` reads back to the same scenario."""
    return dump_yaml(scenario.model_dump(mode="json"))
