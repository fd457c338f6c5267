"""Valuation methods, by the name used in scenario files."""

from __future__ import annotations

from dataprice.valuation.methods.asymmetric import (
    AsymmetricPermutationShapley,
    ExactAsymmetricShapley,
)
from dataprice.valuation.methods.banzhaf import MSRBanzhaf
from dataprice.valuation.methods.base import ValuationMethod
from dataprice.valuation.methods.exact import ExactBanzhaf, ExactShapley
from dataprice.valuation.methods.knn_shapley import KNNShapley
from dataprice.valuation.methods.loo import LeaveOneOut
from dataprice.valuation.methods.permutation import PermutationShapley
from dataprice.valuation.methods.unlearning import UnlearningShapley

METHODS: dict[str, type[ValuationMethod]] = {
    cls.name: cls
    for cls in (
        LeaveOneOut, ExactShapley, ExactBanzhaf, PermutationShapley, MSRBanzhaf, KNNShapley,
        ExactAsymmetricShapley, AsymmetricPermutationShapley, UnlearningShapley,
    )
}

__all__ = [
    "METHODS",
    "AsymmetricPermutationShapley",
    "ExactAsymmetricShapley",
    "ExactBanzhaf",
    "ExactShapley",
    "KNNShapley",
    "LeaveOneOut",
    "MSRBanzhaf",
    "PermutationShapley",
    "UnlearningShapley",
    "ValuationMethod",
]
