"""pyDVL's side of ``benchmarks/pydvl_tmc.py``; runs in its own virtual environment.

pyDVL 0.10 pins ``numpy<2`` while dataprice uses numpy 2, so this script is run with
``.venv-pydvl/bin/python`` (``make bench-pydvl`` builds it) and does not import dataprice.
It reads the benchmark's data, values the sellers' groups with pyDVL's TMC-Shapley
(``TMCShapleyValuation``), and writes the estimate after every batch together with the
number of utility evaluations and the time spent.

    python benchmarks/_pydvl_worker.py DATA.npz OUT.json
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
from pydvl.utils.status import Status
from pydvl.valuation import (
    Dataset,
    GroupedDataset,
    ModelUtility,
    SupervisedScorer,
    TMCShapleyValuation,
)
from pydvl.valuation.samplers.truncation import NoTruncation, RelativeTruncation
from pydvl.valuation.stopping import StoppingCriterion
from pydvl.valuation.types import Sample
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

warnings.simplefilter("ignore", FutureWarning)  # pyDVL's own deprecation notices

CALLS = [0]


class SafeLogistic(ClassifierMixin, BaseEstimator):
    """dataprice's classifier utility: L2 logistic regression (lbfgs); data with one class
    predicts that class."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.model_ = None
        if self.classes_.size > 1:
            self.model_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
        return self

    def predict(self, X):
        if self.model_ is None:
            return np.full(X.shape[0], self.classes_[0])
        return self.model_.predict(X)


class Recorder(StoppingCriterion):
    """Records the estimate after every batch; stops after ``max_calls`` utility calls."""

    def __init__(self, max_calls: int) -> None:
        super().__init__(modify_result=False)
        self.max_calls = max_calls
        self.started = time.perf_counter()
        self.trace: list[dict] = []

    def _check(self, result) -> Status:
        names = [int(k) for k in result.names]
        order = np.argsort(names)
        self.trace.append({
            "evaluations": CALLS[0],
            "seconds": time.perf_counter() - self.started,
            "values": np.asarray(result.values)[order].tolist(),
        })
        self._converged = np.full(len(result), False)
        return Status.Converged if CALLS[0] >= self.max_calls else Status.Pending

    def completion(self) -> float:
        return min(1.0, CALLS[0] / self.max_calls)


def main() -> None:
    data = np.load(sys.argv[1])
    n_classes = int(data["n_classes"])
    original_call = ModelUtility.__call__

    def counted(self, sample):
        CALLS[0] += 1
        return original_call(self, sample)

    ModelUtility.__call__ = counted
    train = GroupedDataset(data["X_train"], data["y_train"], data_groups=data["owners"])
    test = Dataset(data["X_val"], data["y_val"])
    scorer = SupervisedScorer("accuracy", test, default=1.0 / n_classes, range=(0.0, 1.0))
    utility = ModelUtility(SafeLogistic(C=float(data["C"])), scorer, catch_errors=False, show_warnings=False)

    # check the utility against dataprice's on the coalitions it sent
    masks = data["check_coalitions"]
    mine = []
    for row in masks:
        members = np.flatnonzero(row)
        u = utility.with_dataset(train)
        mine.append(float(u(Sample(None, np.asarray(members, dtype=int)))))
    runs = []
    for seed in data["seeds"].tolist():
        CALLS[0] = 0
        rtol = float(data["truncation_rtol"])
        truncation = RelativeTruncation(rtol=rtol) if rtol > 0 else NoTruncation()
        recorder = Recorder(int(data["max_evaluations"]))
        valuation = TMCShapleyValuation(
            utility, truncation=truncation, is_done=recorder, seed=int(seed), progress=False
        )
        valuation.fit(train)
        runs.append(recorder.trace)
    json.dump({"check_values": mine, "runs": runs}, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
