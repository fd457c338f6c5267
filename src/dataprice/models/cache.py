"""Where dataprice keeps what it computes once and reuses across runs.

Everything lives under :func:`cache_dir` (``$DATAPRICE_CACHE``, default
``~/.cache/dataprice``): ``embeddings/`` (sentence embeddings, see
:class:`~dataprice.models.embedder.Embedder`) and ``coalitions.sqlite`` (coalition values,
see :class:`~dataprice.valuation.store.CoalitionStore`).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where dataprice caches what it computes (``$DATAPRICE_CACHE`` or ``~/.cache/dataprice``)."""
    return Path(os.environ.get("DATAPRICE_CACHE", Path.home() / ".cache" / "dataprice"))
