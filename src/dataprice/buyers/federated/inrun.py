"""In-Run Data Shapley for the federated buyer: each round's step split among the clients.

The federated run is the buyer's one training: in round ``t`` the server moves the global
model by ``step_t = theta_{t+1} - theta_t``, made from the clients' size-weighted updates
``w_j Delta_{j,t}`` by its rule (:mod:`dataprice.buyers.federated.training`). Every rule's
step is a sum of per-client parts ``u_{j,t}`` (:func:`client_parts`):

* FedAvg, FedProx: ``u_{j,t} = eta_s w_j Delta_{j,t}``;
* FedAvgM: the velocity is linear in the updates, so each client keeps its own,
  ``v_{j,t} = gamma v_{j,t-1} + w_j Delta_{j,t}``, and ``u_{j,t} = eta_s v_{j,t}`` (a
  client's earlier updates still move the model through the momentum);
* FedAdam: the first moment likewise, ``m_{j,t} = b1 m_{j,t-1} + (1 - b1) w_j Delta_{j,t}``,
  through the round's preconditioner, ``u_{j,t} = eta m_{j,t} / (sqrt(v_t) + tau)`` with
  ``v_t`` the server's second moment (as In-Run Data Shapley treats Adam's preconditioner
  as given at each step);
* FedRandom: per rule, each with its own per-client state, as training keeps one server
  state per rule.

The parts add up to the server's actual step. The round's *local game* gives a set ``S`` of
clients the validation-utility change of their parts alone, ``v_t(S) = U(theta_t +
sum_{j in S} u_{j,t}) - U(theta_t)``, and as for minibatch SGD (:mod:`dataprice.valuation.
inrun`, Wang et al., "Data Shapley in One Training Run") its second-order expansion has
closed-form Shapley values,

    ``phi_{j,t} = grad U(theta_t) . u_{j,t} + (1/2) u_{j,t} . H_U (sum_k u_{k,t})``.

A client's value is the sum over rounds; the values add up to the run's utility change
``U(theta_T) - U(theta_0)`` up to the reported Taylor remainder (small when the server's
steps are; a round of large local updates leaves more). No client update is recomputed:
the stored updates are read. ``U`` is the mean validation log-likelihood of the softmax
regression (:class:`~dataprice.models.softmax.SoftmaxValidation`), not the accuracy the
buyer's reconstruction game measures.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from dataprice.data.shards import SellerShards
from dataprice.models.softmax import SoftmaxValidation, with_intercept
from dataprice.valuation.inrun import InRunTrace, descent_cosines, taylor_split


class StoredRun(Protocol):
    """What this module reads of a federated run's record
    (:class:`~dataprice.buyers.federated.training.FederatedRun`, which calls it)."""

    thetas: list[NDArray]  # theta_0 .. theta_T
    updates: NDArray  # (T, n, p)
    rules: list[str]
    sizes: NDArray[np.int64]
    config: Any  # FederatedConfig: server_lr, momentum, adam_lr, adam_betas, adam_tau
    server_states: list[tuple[NDArray, NDArray, NDArray]]


def client_parts(run: StoredRun) -> list[NDArray[np.float64]]:
    """``u[t]``, shape ``(n, p)``: each client's part of round ``t``'s server step (module
    docstring); ``u[t].sum(0) == theta_{t+1} - theta_t`` up to rounding."""
    c = run.config
    n, dim = run.updates.shape[1], run.updates.shape[2]
    weights = run.sizes / run.sizes.sum()
    carried = {rule: np.zeros((n, dim)) for rule in dict.fromkeys(run.rules)}  # per-client velocity / first moment
    out = []
    for t, rule in enumerate(run.rules):
        shares = weights[:, None] * run.updates[t]
        if rule in ("fedavg", "fedprox"):
            out.append(c.server_lr * shares)
        elif rule == "fedavgm":
            carried[rule] = c.momentum * carried[rule] + shares
            out.append(c.server_lr * carried[rule])
        else:  # fedadam
            b1, b2 = c.adam_betas
            carried[rule] = b1 * carried[rule] + (1 - b1) * shares
            v = b2 * run.server_states[t][2] + (1 - b2) * shares.sum(axis=0) ** 2
            out.append(c.adam_lr * carried[rule] / (np.sqrt(v) + c.adam_tau)[None, :])
    return out


def federated_inrun(shards: SellerShards, run: StoredRun, *, order: int = 2, validation_batch: int | None = None,
                    similarity: bool = False, seed: int = 0, validation_seed: int = 0) -> InRunTrace:
    """Per-client In-Run Shapley values of the stored federated ``run`` (one "example" per
    client; ``seed``: the run's, recorded). ``validation_batch``: validation points drawn per
    round (stream ``[validation_seed, 1]``; None: all); ``similarity``: also each client's
    mean ``cos(u_{j,t}, grad U)`` over rounds."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    started = time.perf_counter()
    model = SoftmaxValidation(with_intercept(shards.X_val), shards.y_val, shards.n_classes)
    shape = (model.X1_val.shape[1], shards.n_classes)
    n = shards.n_sellers
    total = int(shards.y_val.shape[0])
    drawn = int(validation_batch) if validation_batch is not None and validation_batch < total else 0
    rng = np.random.default_rng([validation_seed, 1])
    first, second, cosine = np.zeros(n), np.zeros(n), np.zeros(n)
    for t, parts in enumerate(client_parts(run)):
        theta = run.thetas[t].reshape(shape)
        on = model.subset(rng.choice(total, drawn, replace=False)) if drawn else model
        grad_u = on.utility_gradient(theta).reshape(-1)
        hessian_dots = None
        if order == 2:
            hessian_dots = parts @ on.utility_hvp(theta, parts.sum(axis=0).reshape(shape)).reshape(-1)
        # taylor_split's convention: phi = -s grad U . g + (s^2 / 2) g . H G with g = -u, s = 1
        f, q = taylor_split(1.0, -(parts @ grad_u), hessian_dots)
        first += f
        second += q
        if similarity:  # a part is a descent step already: cos(u, grad U) = cos(-(-u), grad U)
            cosine += descent_cosines(-parts, grad_u)
    rounds = len(run.rules)
    change = model.utility(run.thetas[-1].reshape(shape)) - model.utility(run.thetas[0].reshape(shape))
    return InRunTrace(first=first, second=second if order == 2 else np.zeros(n), owners=np.arange(n, dtype=np.int64),
                      n_sellers=n, utility_change=float(change), order=order, steps=rounds, seed=seed,
                      validation_points=drawn or total, similarity=cosine / max(rounds, 1) if similarity else None,
                      extra={"utility": "mean validation log-likelihood", "seconds": time.perf_counter() - started})
