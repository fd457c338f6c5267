"""scikit-learn classifiers a scenario may name, from a fixed allow-list, with typed parameters.

A scenario's classifier buyer may train one of the estimators in :data:`ESTIMATORS` instead
of the project's own softmax regression or soft-KNN utility::

    buyer:
      task: classifier
      estimator: {name: random_forest, params: {n_estimators: 50, max_depth: 4}}

Only the names listed here can be chosen, and only the parameters listed for each, with
their types and bounds checked when the scenario is read (:class:`EstimatorSpec`): a
scenario file never names a module or a class, so it cannot make dataprice import anything
else. Parameters not given keep scikit-learn's defaults. An estimator that takes a
``random_state`` gets one from the replicate's seed (:attr:`dataprice.rng.Stream.ESTIMATOR`),
the same for every coalition, so that coalitions differ by their data only.

This module imports scikit-learn only when an estimator is built.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, ValidationError, create_model, model_validator

from dataprice.inputs import excerpt
from dataprice.specs import StrictModel

_Positive = Annotated[float, Field(gt=0.0, le=1e9)]
_NonNegative = Annotated[float, Field(ge=0.0, le=1e9)]
_Fraction = Annotated[float, Field(gt=0.0, le=1.0)]
_Rate = Annotated[float, Field(gt=0.0, le=100.0)]
_Count = Annotated[int, Field(ge=1, le=100_000)]
_Iterations = Annotated[int, Field(ge=1, le=1_000_000)]
_Depth = Annotated[int, Field(ge=1, le=1000)] | None
_Split = Annotated[int, Field(ge=2, le=1_000_000)]
_Leaf = Annotated[int, Field(ge=1, le=1_000_000)]
_ClassWeight = Literal["balanced"] | None
_MaxFeatures = Literal["sqrt", "log2"] | _Fraction | None

_TREE = {
    "max_depth": _Depth, "min_samples_split": _Split, "min_samples_leaf": _Leaf,
    "criterion": Literal["gini", "entropy", "log_loss"], "max_features": _MaxFeatures,
    "class_weight": _ClassWeight,
}
_FOREST = {
    **_TREE, "n_estimators": Annotated[int, Field(ge=1, le=10_000)], "bootstrap": bool,
    "class_weight": Literal["balanced", "balanced_subsample"] | None,
}


@dataclass(frozen=True)
class Estimator:
    """One allowed estimator: the scikit-learn class (module and name, fixed here) and the
    parameters a scenario may set, each with its type."""

    module: str
    cls: str
    params: dict[str, Any] = field(default_factory=dict)


#: The estimators a scenario may name, and the parameters of each it may set.
ESTIMATORS: dict[str, Estimator] = {
    "logistic_regression": Estimator("linear_model", "LogisticRegression", {
        "C": _Positive, "max_iter": _Iterations, "tol": _Positive, "fit_intercept": bool,
        "class_weight": _ClassWeight,
    }),
    "ridge": Estimator("linear_model", "RidgeClassifier", {
        "alpha": _NonNegative, "fit_intercept": bool, "class_weight": _ClassWeight,
    }),
    "linear_svc": Estimator("svm", "LinearSVC", {
        "C": _Positive, "loss": Literal["hinge", "squared_hinge"], "max_iter": _Iterations, "tol": _Positive,
        "fit_intercept": bool, "class_weight": _ClassWeight,
    }),
    "svc": Estimator("svm", "SVC", {
        "C": _Positive, "kernel": Literal["linear", "poly", "rbf", "sigmoid"],
        "gamma": Literal["scale", "auto"] | _Positive, "degree": Annotated[int, Field(ge=1, le=10)],
        "class_weight": _ClassWeight,
    }),
    "knn": Estimator("neighbors", "KNeighborsClassifier", {
        "n_neighbors": Annotated[int, Field(ge=1, le=10_000)], "weights": Literal["uniform", "distance"],
        "p": Annotated[int, Field(ge=1, le=10)],
    }),
    "naive_bayes": Estimator("naive_bayes", "GaussianNB", {"var_smoothing": _Positive}),
    "decision_tree": Estimator("tree", "DecisionTreeClassifier", dict(_TREE)),
    "random_forest": Estimator("ensemble", "RandomForestClassifier", dict(_FOREST)),
    "extra_trees": Estimator("ensemble", "ExtraTreesClassifier", dict(_FOREST)),
    "gradient_boosting": Estimator("ensemble", "GradientBoostingClassifier", {
        "n_estimators": Annotated[int, Field(ge=1, le=10_000)], "learning_rate": _Rate,
        "max_depth": _Depth, "subsample": _Fraction, "min_samples_leaf": _Leaf, "max_features": _MaxFeatures,
    }),
    "hist_gradient_boosting": Estimator("ensemble", "HistGradientBoostingClassifier", {
        "max_iter": Annotated[int, Field(ge=1, le=10_000)], "learning_rate": _Rate, "max_depth": _Depth,
        "max_leaf_nodes": Annotated[int, Field(ge=2, le=100_000)] | None, "min_samples_leaf": _Leaf,
        "l2_regularization": _NonNegative, "class_weight": _ClassWeight,
    }),
    "mlp": Estimator("neural_network", "MLPClassifier", {
        "hidden_layer_sizes": Annotated[list[_Count], Field(min_length=1, max_length=10)],
        "activation": Literal["identity", "logistic", "tanh", "relu"], "alpha": _NonNegative,
        "learning_rate_init": _Rate, "max_iter": _Iterations,
    }),
}


@cache
def _params_model(name: str) -> type[StrictModel]:
    """A strict model of ``name``'s parameters (every field optional; unset ones are not passed)."""
    fields: Any = {param: (kind, None) for param, kind in ESTIMATORS[name].params.items()}
    return create_model(f"{name}_params", __base__=StrictModel, **fields)


def _shown(value: Any) -> str:
    return excerpt(value, 40)


class EstimatorSpec(StrictModel):
    """A scikit-learn estimator by name (one of :data:`ESTIMATORS`) and its parameters.

    Checked once, when the scenario is read: an unknown name or parameter, or a value of
    the wrong type or out of bounds, is one line naming the allowed names or parameters.
    """

    name: Annotated[str, Field(min_length=1, max_length=100)]
    params: dict[Annotated[str, Field(max_length=100)], Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _allowed(self) -> EstimatorSpec:
        if self.name not in ESTIMATORS:
            raise ValueError(f"unknown estimator {_shown(self.name)}; allowed: {', '.join(ESTIMATORS)}")
        allowed = ESTIMATORS[self.name].params
        for param in self.params:
            if param not in allowed:
                raise ValueError(
                    f"unknown parameter {_shown(param)} for estimator {self.name!r}; allowed: {', '.join(allowed)}"
                )
        try:
            _params_model(self.name).model_validate(self.params)
        except ValidationError as exc:
            errors = exc.errors()
            param = str(errors[0]["loc"][0]) if errors[0]["loc"] else "?"
            # a parameter of several types (gamma: 'scale', 'auto' or a number) fails each
            said = " or ".join(dict.fromkeys(e["msg"] for e in errors if e["loc"] and str(e["loc"][0]) == param))
            got = self.params.get(param)
            raise ValueError(f"parameter {param!r} of estimator {self.name!r}: {said} (got {_shown(got)})") from None
        return self

    def keyword_arguments(self) -> dict[str, Any]:
        """The parameters as scikit-learn takes them (lists of layer sizes as tuples)."""
        checked = _params_model(self.name).model_validate(self.params).model_dump(exclude_unset=True)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in checked.items()}


#: ``--small`` (a smoke test) caps an estimator's size parameters at these values.
SMALL_CAPS = {"n_estimators": 10, "max_iter": 50}


def small_estimator(section: Any) -> Any:
    """An estimator section (``{name, params}``) at smoke-test size: ``n_estimators`` and
    ``max_iter`` capped (:data:`SMALL_CAPS`), hidden layers at 16 units; anything else, and a
    section that is not a mapping, unchanged (the schema judges it)."""
    if not isinstance(section, dict) or not isinstance(section.get("params"), dict):
        return section
    params = dict(section["params"])
    for name, cap in SMALL_CAPS.items():
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            params[name] = cap
    layers = params.get("hidden_layer_sizes")
    if isinstance(layers, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in layers):
        params["hidden_layer_sizes"] = [min(n, 16) for n in layers]
    return {**section, "params": params}


def make_estimator(spec: EstimatorSpec, random_state: int) -> Any:
    """A fresh, unfitted scikit-learn estimator for ``spec`` (``random_state`` set where the
    estimator takes one)."""
    entry = ESTIMATORS[spec.name]
    cls = getattr(importlib.import_module(f"sklearn.{entry.module}"), entry.cls)
    estimator = cls(**spec.keyword_arguments())
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=int(random_state) % 2**31)
    return estimator


def estimator_accuracy(
    spec: EstimatorSpec, random_state: int, X_train: NDArray[np.float64], y_train: NDArray[np.int64],
    X_val: NDArray[np.float64], y_val: NDArray[np.int64],
) -> float:
    """Validation accuracy of ``spec`` fitted on ``(X_train, y_train)``.

    Training data with one class predicts that class (most estimators refuse to fit it);
    ``knn`` with fewer training points than ``n_neighbors`` uses all of them. Convergence
    warnings are silenced: the scenario chose the iteration budget.
    """
    return float(np.mean(estimator_correct(spec, random_state, X_train, y_train, X_val, y_val)))


def estimator_correct(
    spec: EstimatorSpec, random_state: int, X_train: NDArray[np.float64], y_train: NDArray[np.int64],
    X_val: NDArray[np.float64], y_val: NDArray[np.int64],
) -> NDArray[np.bool_]:
    """Whether each validation point is classified right (:func:`estimator_accuracy` is its mean)."""
    classes = np.unique(y_train)
    if classes.size == 1:
        return np.asarray(y_val == classes[0])
    estimator = make_estimator(spec, random_state)
    if spec.name == "knn":
        estimator.set_params(n_neighbors=min(estimator.get_params()["n_neighbors"], len(y_train)))
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X_train, y_train)
    return np.asarray(estimator.predict(X_val) == y_val)


__all__ = ["ESTIMATORS", "Estimator", "EstimatorSpec", "estimator_accuracy", "estimator_correct", "make_estimator"]
