"""The classifier buyer's in-run training: minibatch SGD on its softmax regression.

One run of SGD on the shards' pooled points, recording each example's In-Run Shapley
value (:func:`dataprice.valuation.inrun.linear_inrun`, ghost dot products: no per-example
gradient is formed). The utility is the mean validation log-likelihood; the L2 penalty of
the buyer's model (``lambda = 1 / regularization`` on the summed loss) is shared evenly by
the examples as weight decay ``lambda / N``.
"""

from __future__ import annotations

import numpy as np

from dataprice.data.shards import SellerShards
from dataprice.models.softmax import SoftmaxValidation, with_intercept
from dataprice.valuation.inrun import InRunTrace, SGDConfig, linear_inrun

#: The buyer's own SGD settings when a scenario gives none.
DEFAULT_SGD = SGDConfig(epochs=5, batch_size=32, learning_rate=0.1)


def sgd_config(shards: SellerShards, regularization: float, seed: int, epochs: int | None = None,
               batch_size: int | None = None, learning_rate: float | None = None) -> SGDConfig:
    n = shards.X_train.shape[0]
    return SGDConfig(
        epochs=epochs or DEFAULT_SGD.epochs, batch_size=batch_size or DEFAULT_SGD.batch_size,
        learning_rate=learning_rate or DEFAULT_SGD.learning_rate, weight_decay=1.0 / regularization / n, seed=seed,
    )


def softmax_inrun(shards: SellerShards, config: SGDConfig, *, order: int = 2, value: bool = True,
                  validation_batch: int | None = None, similarity: bool = False, projection_dim: int | None = None,
                  progress: bool = False) -> tuple[np.ndarray, InRunTrace | None]:
    """Train softmax regression by SGD from zero on every seller's points; with ``value``,
    the run's In-Run Shapley trace (None otherwise: the plain run). ``validation_batch``:
    validation points drawn per step (None: all)."""
    model = SoftmaxValidation(with_intercept(shards.X_val), shards.y_val, shards.n_classes)
    X1 = with_intercept(shards.X_train)
    theta0 = np.zeros((X1.shape[1], shards.n_classes))
    theta, trace = linear_inrun(model, X1, shards.y_train, shards.owners, shards.n_sellers, theta0, config,
                                order=order, value=value, progress=progress, validation_batch=validation_batch,
                                n_validation=int(shards.y_val.shape[0]), similarity=similarity,
                                projection_dim=projection_dim)
    if trace is not None:
        trace.extra.update(utility="mean validation log-likelihood", validation_accuracy=model.accuracy(theta))
    return theta, trace
