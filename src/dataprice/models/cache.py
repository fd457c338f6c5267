"""Where dataprice keeps what it computes once and reuses across runs.

Everything lives under :func:`cache_dir` (``$DATAPRICE_CACHE``, default
``~/.cache/dataprice``): ``embeddings/`` (sentence embeddings, see
:class:`~dataprice.models.embedder.Embedder`), ``dpo/`` (trained policies, see
:class:`PolicyCache`) and ``coalitions.sqlite`` (coalition values, see
:class:`~dataprice.valuation.store.CoalitionStore`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Protocol


def cache_dir() -> Path:
    """Where dataprice caches what it computes (``$DATAPRICE_CACHE`` or ``~/.cache/dataprice``)."""
    return Path(os.environ.get("DATAPRICE_CACHE", Path.home() / ".cache" / "dataprice"))


class TrainingData(Protocol):
    """Training data that names its content (e.g. :class:`~dataprice.data.preferences.PreferenceSet`)."""

    def fingerprint(self) -> str:
        """A hash of the content: equal data, equal fingerprint."""


class Training(Protocol):
    """How a policy is trained (e.g. :class:`~dataprice.buyers.dpo.training.DPOConfig`).

    A dataclass: every field is part of the cache key.
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def trainable(self, base: Any) -> Any:
        """A fresh trainable copy of ``base``, initialised from the configuration's seed
        (what a cached policy's parameters are loaded into)."""

    def train(self, base: Any, tokenizer: Any, data: Any, reference: Any = None) -> Any:
        """A copy of ``base`` trained on ``data`` (in eval mode)."""

    def is_trained(self, name: str) -> bool:
        """Whether parameter ``name`` is trained (only those are stored)."""


class PolicyCache:
    """Trained policies on disk, keyed by sha256 of (base model id, data, config).

    Only the trained parameters are stored (LoRA adapters, or the full state for tiny
    models), in ``$DATAPRICE_CACHE/dpo/<key>.pt``.

    Attributes:
        hits: Policies loaded from disk so far.
        trainings: Policies trained (and stored) so far.
    """

    def __init__(self, base_id: str, folder: Path | None = None) -> None:
        self.base_id = base_id
        self.folder = folder or cache_dir() / "dpo"
        self.hits = 0
        self.trainings = 0

    def key(self, data: TrainingData, config: Training) -> str:
        """sha256 of the JSON list ``[base_id, data.fingerprint(), asdict(config)]`` (keys sorted)."""
        payload = json.dumps([self.base_id, data.fingerprint(), asdict(config)], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def policy(self, base, tokenizer, data: TrainingData, config: Training, reference=None):
        """The policy ``config`` trains from ``base`` on ``data`` (from the cache when it was
        trained before). ``reference`` is passed on to :meth:`Training.train`."""
        import torch

        path = self.folder / f"{self.key(data, config)}.pt"
        if path.is_file():
            model = config.trainable(base)
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=False)
            model.eval()
            self.hits += 1
            return model
        model = config.train(base, tokenizer, data, reference)
        self.trainings += 1
        trained = {k: v.detach().cpu() for k, v in model.state_dict().items() if config.is_trained(k)}
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(trained, tmp)
        tmp.replace(path)
        return model
