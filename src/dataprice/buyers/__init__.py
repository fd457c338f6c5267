"""Buyers: one folder per buyer, each registered by its ``task`` (see :mod:`.base`).

Importing this package registers the built-in buyers (their modules are light: heavy
libraries are imported when a buyer builds its game). Installed packages add buyers through
the entry-point group ``dataprice.buyers`` (:mod:`dataprice.plugins`).
"""

from __future__ import annotations

import importlib

from dataprice.buyers.base import (
    BUYERS,
    BuildContext,
    BuiltTask,
    Buyer,
    buyer_offering,
    register_buyer,
)

#: The built-in buyers, in the order scenario messages list them.
BUILT_IN = ("classifier", "mean_estimation", "single_winner", "rag", "documents", "dpo", "federated", "coverage")
for _module in BUILT_IN:
    importlib.import_module(f"dataprice.buyers.{_module}")  # each registers its buyer


def dpo_base_model(name: str):
    """``(model, tokenizer, cache id)`` of the DPO base model (see :mod:`.dpo`)."""
    from dataprice.buyers.dpo import dpo_base_model as base

    return base(name)


__all__ = ["BUILT_IN", "BUYERS", "BuildContext", "BuiltTask", "Buyer", "buyer_offering", "dpo_base_model",
           "register_buyer"]
