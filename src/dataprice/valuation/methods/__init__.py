"""Valuation methods, one file each, registered by the name scenario files use.

Each method owns its scenario settings (``Spec``) and how it is built from them
(``from_spec``); :data:`METHODS` is the registry (see :mod:`.base` to add one).
"""

from __future__ import annotations

from dataprice.valuation.methods._montecarlo import MonteCarloMethod, MonteCarloSpec
from dataprice.valuation.methods.asymmetric import (
    AsymmetricPermutationShapley,
    ExactAsymmetricShapley,
)
from dataprice.valuation.methods.auto import AutoShapley
from dataprice.valuation.methods.banzhaf import MSRBanzhaf
from dataprice.valuation.methods.base import METHODS, MethodSpec, ValuationMethod, register_method
from dataprice.valuation.methods.exact import ExactBanzhaf, ExactShapley
from dataprice.valuation.methods.inrun import InRunShapley
from dataprice.valuation.methods.kernel import KernelShapley
from dataprice.valuation.methods.knn_shapley import KNNShapley
from dataprice.valuation.methods.loo import LeaveOneOut
from dataprice.valuation.methods.permutation import PermutationShapley
from dataprice.valuation.methods.similarity import GradientSimilarity
from dataprice.valuation.methods.stratified import StratifiedShapley
from dataprice.valuation.methods.unlearning import UnlearningShapley

#: The built-in methods, in the order scenario messages list them (registration follows
#: import order, which is alphabetical here).
BUILT_IN = ("loo", "shapley", "exact_shapley", "exact_banzhaf", "tmc_shapley", "stratified_shapley", "kernel_shapley",
            "msr_banzhaf", "knn_shapley",
            "exact_asymmetric_shapley", "asymmetric_shapley", "unlearning_shapley", "inrun_shapley",
            "gradient_similarity")
for _name in BUILT_IN:
    METHODS[_name] = METHODS.pop(_name)

__all__ = [
    "METHODS",
    "AsymmetricPermutationShapley",
    "AutoShapley",
    "ExactAsymmetricShapley",
    "ExactBanzhaf",
    "ExactShapley",
    "GradientSimilarity",
    "InRunShapley",
    "KNNShapley",
    "KernelShapley",
    "LeaveOneOut",
    "MSRBanzhaf",
    "MethodSpec",
    "MonteCarloMethod",
    "MonteCarloSpec",
    "PermutationShapley",
    "StratifiedShapley",
    "UnlearningShapley",
    "ValuationMethod",
    "register_method",
]
