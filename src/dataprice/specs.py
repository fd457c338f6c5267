"""The building blocks of every scenario section: a strict pydantic model and bounded types.

Buyers, valuation methods and the scenario schema all describe their settings with these,
so every section of a scenario file is checked the same way: unknown keys are named with
the keys allowed, types are strict (``count: true`` or ``count: "8"`` is an error, not 1 or
8), numbers are finite and bounded, names cannot start with ``.``, and paths cannot hold a
NUL byte. This module imports nothing of dataprice but the input boundary, so any layer may
use it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from dataprice.inputs import excerpt, path_problem

#: Largest amount of money or value scale a scenario may state (costs, values, budgets).
MAX_AMOUNT = 1e9

# Numbers in a scenario are finite and bounded: a cost of 1e308 or a value shock of 1e300
# is never meant, and would overflow into NaN payments long after the file was accepted.
NonNegativeFloat = Annotated[float, Field(ge=0.0, le=MAX_AMOUNT)]
PositiveFloat = Annotated[float, Field(gt=0.0, le=MAX_AMOUNT)]
Index = Annotated[int, Field(ge=0, le=100_000)]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("use 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value


#: A name used in file names and reports: letters, digits, ``_ . -``, not starting with ``.``.
Name = Annotated[str, AfterValidator(_name)]


def _plain_path(value: str) -> str:
    problem = path_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def relative_folder(value: str) -> str:
    _plain_path(value)
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or path.name in {"", "."}:
        raise ValueError(
            "a scenario file may only name a folder below the current one (no absolute path, no '..'); "
            "use --out to write anywhere else"
        )
    return value


#: A data file named in a scenario (relative paths are taken from the scenario's folder).
FilePath = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_plain_path)]
#: A column of a user's table.
Column = Annotated[str, Field(min_length=1, max_length=200)]


def within(low: int, high: int) -> Any:
    """The bounds of an integer field, ``Annotated[int, within(low, high)]``: in ``[low, high]``.

    A ``Field`` in the annotation's metadata rather than a function returning a type, so a
    type checker reads the field as ``int``.
    """
    return Field(ge=low, le=high)


class StrictModel(BaseModel):
    """A model that rejects unknown keys, naming the keys it accepts.

    Types are strict: ``count: true`` or ``count: "8"`` is an error, not 1 or 8 (an integer
    field takes an integer; a number field takes an integer or a decimal); numbers are
    finite; strings are at most 20,000 characters.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False, str_max_length=20_000)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            unknown = [k for k in data if k not in known]
            if unknown:
                raise ValueError(
                    f"unknown field {excerpt(unknown[0])}; allowed fields: {', '.join(sorted(known))}"
                )
        return data


class CostDistribution(StrictModel):
    """Costs drawn once per scenario (the sellers are the same people in every replicate)."""

    distribution: Literal["uniform", "lognormal", "constant"] = "uniform"
    low: NonNegativeFloat = 0.0
    high: NonNegativeFloat = 1.0
    mean: Annotated[float, Field(ge=-20.0, le=20.0)] = 0.0  # of log-cost, for lognormal
    sigma: Annotated[float, Field(ge=0.0, le=5.0)] = 0.5  # of log-cost, for lognormal
    value: NonNegativeFloat = 0.0  # for constant

    @model_validator(mode="after")
    def _check_range(self) -> CostDistribution:
        if self.distribution == "uniform" and self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.distribution == "uniform":
            return rng.uniform(self.low, self.high, size=n)
        if self.distribution == "lognormal":
            return rng.lognormal(self.mean, self.sigma, size=n)
        return np.full(n, self.value)


__all__ = [
    "MAX_AMOUNT", "Column", "CostDistribution", "FilePath", "Index", "Name", "NonNegativeFloat", "PositiveFloat",
    "StrictModel", "relative_folder", "within",
]
