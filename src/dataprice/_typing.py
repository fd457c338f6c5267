"""Documented type aliases shared across the package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

#: Boolean matrix of shape ``(m, n)``: row ``k`` is a coalition, ``True`` where player is in it.
CoalitionMatrix: TypeAlias = NDArray[np.bool_]
#: Integer bitmasks of coalitions: bit ``j`` set iff player ``j`` is a member (n <= 62).
Masks: TypeAlias = NDArray[np.int64]
#: One float per player.
PlayerValues: TypeAlias = NDArray[np.float64]
#: Anything :func:`dataprice.rng.as_seed_sequence` accepts.
Seed: TypeAlias = "int | np.random.SeedSequence | None"
#: Player or row indices: a list of ints or an integer array.
Indices: TypeAlias = "Sequence[int] | NDArray[np.integer]"
