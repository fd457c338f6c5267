"""In-Run Data Shapley: the value of each training example to *one* training run.

Wang, Mittal, Song & Jia, "Data Shapley in One Training Run" (ICLR 2025). A run updates
``theta_{t+1} = theta_t - s_t sum_{i in B_t} g_i`` with ``g_i = grad l_i(theta_t)`` (``s_t``
is the learning rate over the batch size). Step ``t``'s *local game* gives a coalition
``S`` of the batch the validation utility change it would have made alone,

    ``v_t(S) = U(theta_t - s_t sum_{i in S} g_i) - U(theta_t)``,

and an example's in-run value is the sum over steps of its Shapley value in those games.
A second-order Taylor expansion of ``U`` around ``theta_t`` makes each local game a
quadratic form in the batch's gradients, whose Shapley values are closed-form:

    ``phi_i^(1) = -s_t grad U . g_i``                   (first order: additive)
    ``phi_i^(2) = (s_t^2 / 2) g_i . H_U G_B``           (second order, ``G_B = sum_j g_j``:
                                                      each pair's interaction split evenly)

Summed over the batch, ``phi^(1) + phi^(2)`` is the second-order Taylor expansion of the
step's real change; the difference summed over the run (``remainder``) is reported, never
hidden. With ``U`` linear in ``theta`` the first-order values are the step's exact Shapley
values, with ``U`` quadratic the second-order ones are.

For models whose per-example gradient is an outer product ``g_i = x_i r_i^T`` (a linear
layer: softmax or linear regression, a LoRA factor's input and output gradients), the dot
products ``g_i . M = x_i^T M r_i`` need no per-example gradient (the "ghost" dot product):
one matrix product over the batch. :func:`linear_inrun` runs SGD with this on any model
that implements :class:`LinearFeatureModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from dataprice.progress import progress as progress_display


@dataclass
class InRunTrace:
    """Per-example in-run values of one training run, and what they add up to.

    Attributes:
        first: ``float[n_points]``, summed first-order values.
        second: ``float[n_points]``, summed second-order values (zeros for ``order=1``).
        owners: ``int[n_points]``, the seller owning each example.
        n_sellers: number of sellers (owners may be missing from the data).
        utility_change: ``U(theta_T) - U(theta_0)``, measured.
        order: 1 or 2: which terms :attr:`values` includes.
        steps: optimisation steps taken.
        seed: seed of the run (batch order, initialisation).
        validation_points: how many validation points ``U`` averages over per step.
    """

    first: NDArray[np.float64]
    second: NDArray[np.float64]
    owners: NDArray[np.int64]
    n_sellers: int
    utility_change: float
    order: int
    steps: int
    seed: int
    validation_points: int = 0
    extra: dict = field(default_factory=dict)
    #: ``float[n_points]``: each example's mean over its steps of ``cos(-g_i, grad U)`` (the
    #: gradient-similarity screening score, DVGS-style; None where not computed).
    similarity: NDArray[np.float64] | None = None

    @property
    def values(self) -> NDArray[np.float64]:
        """Each example's in-run value (first order, plus second order when ``order == 2``)."""
        return self.first + (self.second if self.order == 2 else 0.0)

    @property
    def remainder(self) -> float:
        """``U(theta_T) - U(theta_0) - sum_i values_i``: the Taylor remainder of the run."""
        return float(self.utility_change - self.values.sum())

    def seller_values(self) -> NDArray[np.float64]:
        """Each seller's value: the sum over its examples."""
        return np.bincount(self.owners, weights=self.values, minlength=self.n_sellers).astype(np.float64)


def taylor_split(step: float, grad_dots: NDArray[np.float64], hessian_dots: NDArray[np.float64] | None
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The local game's Shapley values from the gradient dot products of a batch.

    ``grad_dots[i] = grad U . g_i``, ``hessian_dots[i] = g_i . H_U G_B``; the step is
    ``theta - step * G_B``. Returns the first- and second-order values.
    """
    first = -step * np.asarray(grad_dots, dtype=np.float64)
    if hessian_dots is None:
        return first, np.zeros_like(first)
    return first, 0.5 * step**2 * np.asarray(hessian_dots, dtype=np.float64)


class LinearFeatureModel(Protocol):
    """A model whose per-example loss gradient is ``x_i r_i^T + c theta`` (a linear layer with
    the shared weight decay ``c``), and a differentiable validation utility ``U``.

    Parameters are a ``(d, k)`` matrix; ``X1`` rows are the features ``x_i``.
    """

    def residuals(self, theta: NDArray, X1: NDArray, y: NDArray) -> NDArray:
        """``r_i`` for each row: ``float[b, k]``."""
        ...

    def utility(self, theta: NDArray) -> float:
        """``U(theta)`` on the validation data (higher is better)."""
        ...

    def utility_gradient(self, theta: NDArray) -> NDArray:
        """``grad U(theta)``, ``float[d, k]``."""
        ...

    def utility_hvp(self, theta: NDArray, direction: NDArray) -> NDArray:
        """``H_U(theta) direction``, ``float[d, k]``."""
        ...

    def subset(self, rows: NDArray[np.int64]) -> LinearFeatureModel:
        """The model with ``U`` on validation rows ``rows`` only (for a validation batch)."""
        ...


def ghost_dots(X1: NDArray, R: NDArray, M: NDArray) -> NDArray:
    """``g_i . M = x_i^T M r_i`` for every row, without forming ``g_i = x_i r_i^T``."""
    return np.einsum("ik,ik->i", X1 @ M, R)


@dataclass(frozen=True)
class SGDConfig:
    """Plain minibatch SGD: ``theta <- theta - (learning_rate / |B|) sum_{i in B} g_i``."""

    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.5
    weight_decay: float = 0.0  # per-example loss gets (weight_decay / 2) ||theta||^2
    seed: int = 0


class CountSketch:
    """A random projection ``R^D -> R^k`` for gradients (count sketch: Charikar, Chen &
    Farach-Colton 2002), as LESS (Xia et al., 2024) projects LoRA gradients before comparing
    them: each coordinate ``c`` of a parameter block goes to bucket ``h(c)`` with sign
    ``s(c)``, so ``E <P x, P y> = <x, y>`` over the draw of ``h, s`` and the error shrinks like
    ``|x| |y| / sqrt(k)``. The map is fixed by ``seed`` and the block's index (one per trained
    parameter), so every step of a run projects the same way.
    """

    def __init__(self, dim: int, seed: int) -> None:
        if dim < 1:
            raise ValueError(f"projection dimension must be positive, got {dim}")
        self.dim, self.seed = int(dim), int(seed)
        self._maps: dict[tuple[int, int], object] = {}

    def __call__(self, block: int, X: NDArray) -> NDArray[np.float64]:
        """``X`` (rows of a block's flattened coordinates, ``(b, D)``) projected: ``(b, k)``."""
        from scipy.sparse import csr_matrix

        X = np.asarray(X, dtype=np.float64)
        D = X.shape[1]
        key = (block, D)
        if key not in self._maps:
            rng = np.random.default_rng([self.seed, block, D])
            buckets, signs = rng.integers(0, self.dim, D), rng.choice([-1.0, 1.0], D)
            self._maps[key] = csr_matrix((signs, (np.arange(D), buckets)), shape=(D, self.dim))
        return np.asarray(X @ self._maps[key])


def descent_cosines(examples: NDArray[np.float64], direction: NDArray[np.float64]) -> NDArray[np.float64]:
    """``cos(-x_i, d)`` of each row of ``examples`` (gradients, or their projections) with
    ``direction`` (the utility's gradient): the gradient-similarity score of one step, 0
    where a norm is 0."""
    scale = np.linalg.norm(examples, axis=1) * float(np.linalg.norm(direction))
    return np.divide(-(examples @ direction), scale, out=np.zeros(examples.shape[0]), where=scale > 0)


def linear_inrun(
    model: LinearFeatureModel, X1: NDArray, y: NDArray, owners: NDArray[np.int64], n_sellers: int,
    theta0: NDArray, config: SGDConfig, *, order: int = 2, value: bool = True, progress: bool = False,
    validation_batch: int | None = None, n_validation: int | None = None, validation_seed: int | None = None,
    similarity: bool = False, projection_dim: int | None = None,
) -> tuple[NDArray, InRunTrace | None]:
    """Train ``model`` by SGD from ``theta0``; with ``value``, record In-Run Shapley values.

    Returns the trained parameters and the trace (None when ``value`` is False: the plain
    run, for measuring the overhead). Per step the extra work is one validation gradient
    and, for ``order=2``, one validation Hessian-vector product, plus two matrix products
    over the batch: no per-example gradient is formed. With ``similarity``, also each
    example's mean ``cos(-g_i, grad U)`` (:attr:`InRunTrace.similarity`, from ghost norms;
    with ``projection_dim``, of the :class:`CountSketch` projections of ``g_i`` and
    ``grad U`` instead, which forms the batch's per-example gradients).

    With ``validation_batch`` (and the ``n_validation`` points ``model`` holds), each step's
    ``U`` is the mean over that many validation points drawn afresh, without replacement,
    from the stream ``[validation_seed, 1]`` (by default the run's seed; the training
    batches do not change). Each step's values are then unbiased estimates, at a cost that
    no longer grows with the validation set.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    n = X1.shape[0]
    rng = np.random.default_rng(config.seed)
    validation_rng = np.random.default_rng([config.seed if validation_seed is None else validation_seed, 1])
    total_validation = int(n_validation or 0)
    drawn = int(validation_batch) if validation_batch is not None and validation_batch < total_validation else 0
    theta = np.array(theta0, dtype=np.float64, copy=True)
    first, second = np.zeros(n), np.zeros(n)
    cosine_sum, visits = np.zeros(n), np.zeros(n)
    sketch = CountSketch(projection_dim, config.seed) if similarity and projection_dim else None
    start_utility = model.utility(theta) if value else 0.0
    c = config.weight_decay
    steps = 0

    def batches():
        for _ in range(config.epochs):
            permutation = rng.permutation(n)
            for start in range(0, n, config.batch_size):
                yield permutation[start:start + config.batch_size]

    total = config.epochs * -(-n // config.batch_size)
    for batch in progress_display(batches(), desc="in-run training", enabled=progress, total=total):
        Xb = X1[batch]
        R = model.residuals(theta, Xb, y[batch])
        G = Xb.T @ R + c * batch.size * theta  # sum of the batch's gradients
        s = config.learning_rate / batch.size
        if value:
            on = model.subset(validation_rng.choice(total_validation, drawn, replace=False)) if drawn else model
            grad_u = on.utility_gradient(theta)
            grad_dots = ghost_dots(Xb, R, grad_u) + c * float(np.sum(theta * grad_u))
            hess_dots = None
            if order == 2:
                hg = on.utility_hvp(theta, G)
                hess_dots = ghost_dots(Xb, R, hg) + c * float(np.sum(theta * hg))
            if sketch is not None:
                per_example = Xb[:, :, None] * R[:, None, :] + c * theta[None]  # g_i, (b, d, K)
                cosine_sum[batch] += descent_cosines(sketch(0, per_example.reshape(batch.size, -1)),
                                                       sketch(0, grad_u.reshape(1, -1))[0])
                visits[batch] += 1
            elif similarity:
                # ||g_i||^2 = ||x_i||^2 ||r_i||^2 + 2 c x_i^T theta r_i + c^2 ||theta||^2 (ghost norms)
                norms = (np.einsum("ij,ij->i", Xb, Xb) * np.einsum("ij,ij->i", R, R)
                         + 2 * c * ghost_dots(Xb, R, theta) + c * c * float(np.sum(theta * theta)))
                scale = np.sqrt(np.maximum(norms, 0.0)) * float(np.linalg.norm(grad_u))
                cosine_sum[batch] += np.divide(-grad_dots, scale, out=np.zeros_like(scale), where=scale > 0)
                visits[batch] += 1
            f, q = taylor_split(s, grad_dots, hess_dots)
            first[batch] += f  # a batch holds each example once
            second[batch] += q
        theta = theta - s * G
        steps += 1
    if not value:
        return theta, None
    trace = InRunTrace(first=first, second=second, owners=np.asarray(owners, dtype=np.int64), n_sellers=n_sellers,
                       utility_change=model.utility(theta) - start_utility, order=order, steps=steps,
                       seed=config.seed, validation_points=drawn or total_validation,
                       similarity=np.divide(cosine_sum, visits, out=np.zeros(n), where=visits > 0) if similarity else None)
    return theta, trace
