"""Federated buyer's training: sellers train locally, the buyer aggregates updates; FedRandom.

Clients (sellers) hold shards of the classifier buyer's data (:mod:`dataprice.data.shards`,
non-IID by a Dirichlet parameter) and never hand them over; the model is softmax regression
(:mod:`dataprice.models.softmax`). Each round every client starts from the global model
``theta_t``, runs ``local_epochs`` of mini-batch SGD on its shard (with a proximal term
``(mu/2)||theta - theta_t||^2`` for FedProx) and sends its update ``Delta_{j,t}``; the server
aggregates the data-size-weighted mean update ``Delta_t = sum_j w_j Delta_{j,t}`` with its rule:

* FedAvg: ``theta_{t+1} = theta_t + eta_s Delta_t``;
* FedAvgM: ``v = gamma v + Delta_t``, ``theta_{t+1} = theta_t + eta_s v``;
* FedAdam (Reddi et al. 2021): ``m = b1 m + (1-b1) Delta_t``, ``v = b2 v + (1-b2) Delta_t^2``,
  ``theta_{t+1} = theta_t + eta m / (sqrt(v) + tau)``;
* FedProx (Li et al. 2020): FedAvg on the server, proximal clients;
* **FedRandom**: each round the rule is drawn at random from a pool (each rule keeps its own
  server state), so contributions are sampled across strategies instead of tied to one.

Every client update is stored, so coalition models can be **reconstructed** without
retraining (Song et al. 2019), with the coalition's aggregate ``Delta_{S,t} = sum_{j in S}
w_j^S Delta_{j,t}`` (``w_j^S = n_j / sum_{k in S} n_k``) put through the round's *server rule*,
as training did with the full aggregate:

* *one-round* reconstruction replays the whole run for the coalition: ``theta_{S,0} =
  theta_0``, ``theta_{S,t+1} = step_t(theta_{S,t}, Delta_{S,t})`` with round ``t``'s rule
  and the coalition's own server state (momentum, Adam moments; under FedRandom one state
  per rule, as in training);
* *multi-round* reconstruction asks, round by round, what the server would have made of
  the coalition's aggregate: ``theta_{S,t+1} = step_t(theta_t, Delta_{S,t})`` from the
  global model and the global server state before round ``t``, and values ``v(S) = sum_t
  [acc(theta_{S,t+1}) - acc(theta_t)]`` (the Shapley value is the sum of per-round values).

For the grand coalition both reproduce the trained global models (tested for every
aggregator). Before this, reconstruction added the raw aggregates (``theta_t +
Delta_{S,t}``), right only for FedAvg and FedProx with server rate 1: the reconstructed
grand-coalition model was far from the trained one under FedAvgM, FedAdam and FedRandom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix, Indices
from dataprice.data.shards import SellerShards
from dataprice.models.softmax import SoftmaxRegression, with_intercept
from dataprice.rng import Stream, child_rng
from dataprice.valuation.game import Game, size_weights

AGGREGATORS = ("fedavg", "fedavgm", "fedadam", "fedprox")


@dataclass(frozen=True)
class FederatedConfig:
    rounds: int = 20
    local_epochs: int = 1
    client_lr: float = 0.1
    batch_size: int = 16
    server_lr: float = 1.0
    momentum: float = 0.9
    adam_lr: float = 0.05
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_tau: float = 1e-3
    mu: float = 0.1  # FedProx proximal weight
    l2: float = 1e-3


class _Server:
    """One aggregation rule and its state."""

    def __init__(self, rule: str, config: FederatedConfig, dim: int) -> None:
        if rule not in AGGREGATORS:
            raise ValueError(f"unknown aggregator {rule!r}; choose one of {AGGREGATORS} or fedrandom")
        self.rule, self.config = rule, config
        self.velocity = np.zeros(dim)
        self.m, self.v = np.zeros(dim), np.zeros(dim)

    def state(self) -> tuple[NDArray, NDArray, NDArray]:
        """A copy of the server state (momentum, Adam moments), before a round."""
        return self.velocity.copy(), self.m.copy(), self.v.copy()

    @classmethod
    def from_state(cls, rule: str, config: FederatedConfig, state: tuple[NDArray, NDArray, NDArray]) -> _Server:
        """A server of ``rule`` in ``state`` (shared, not copied: :meth:`step` rebinds its
        arrays and never writes into them)."""
        server = cls.__new__(cls)
        server.rule, server.config = rule, config
        server.velocity, server.m, server.v = state
        return server

    def step(self, theta: NDArray, update: NDArray) -> NDArray:
        c = self.config
        if self.rule in ("fedavg", "fedprox"):
            return theta + c.server_lr * update
        if self.rule == "fedavgm":
            self.velocity = c.momentum * self.velocity + update
            return theta + c.server_lr * self.velocity
        b1, b2 = c.adam_betas
        self.m = b1 * self.m + (1 - b1) * update
        self.v = b2 * self.v + (1 - b2) * update**2
        return theta + c.adam_lr * self.m / (np.sqrt(self.v) + c.adam_tau)


@dataclass
class FederatedRun:
    """A training run's record: global models, client updates, rules used, weights."""

    thetas: list[NDArray]  # theta_0 .. theta_T
    updates: NDArray  # (T, n, p): Delta_{j,t}
    rules: list[str]
    sizes: NDArray[np.int64]
    local_models: NDArray = field(default_factory=lambda: np.zeros(0))  # (T, n, p): theta_t + Delta_{j,t}
    config: FederatedConfig = field(default_factory=FederatedConfig)
    #: the state of round t's rule before its step (momentum, Adam moments)
    server_states: list[tuple[NDArray, NDArray, NDArray]] = field(default_factory=list)

    def replay(self, aggregates: NDArray) -> list[NDArray]:
        """``theta_1..theta_T`` from ``theta_0`` with ``aggregates[t]`` put through round
        ``t``'s rule, each rule with its own fresh state (one-round reconstruction)."""
        dim = self.thetas[0].size
        servers = {r: _Server(r, self.config, dim) for r in dict.fromkeys(self.rules)}
        theta, out = self.thetas[0].copy(), []
        for t, rule in enumerate(self.rules):
            theta = servers[rule].step(theta, aggregates[t])
            out.append(theta)
        return out

    def round_steps(self, aggregates: NDArray) -> list[NDArray]:
        """``step_t(theta_t, aggregates[t])`` from each round's global model and server state
        (multi-round reconstruction)."""
        return [_Server.from_state(rule, self.config, self.server_states[t]).step(self.thetas[t], aggregates[t])
                for t, rule in enumerate(self.rules)]


def train_federated(
    shards: SellerShards, aggregator: str, config: FederatedConfig, *,
    pool: Sequence[str] = AGGREGATORS, clients: Indices | None = None,
    seed: int | np.random.SeedSequence | None = 0,
) -> FederatedRun:
    """Federated training over ``clients`` (default all) with ``aggregator`` or ``fedrandom``.

    Client ``j``'s SGD in round ``t`` draws its batches from stream ``(seed, t, j)`` and
    FedRandom's choice from stream ``(seed, 10_000 + t)``: a coalition retrained with the
    same seed sees the same randomness for its members.
    """
    members = np.arange(shards.n_sellers) if clients is None else np.asarray(list(clients), dtype=np.int64)
    model = SoftmaxRegression(shards.X_train.shape[1], shards.n_classes, config.l2)
    X1 = with_intercept(shards.X_train)
    dim = model.d * model.k
    rules = list(pool) if aggregator == "fedrandom" else [aggregator]
    servers = {r: _Server(r, config, dim) for r in rules}
    sizes = np.bincount(shards.owners, minlength=shards.n_sellers)
    weights = sizes[members] / sizes[members].sum()
    theta = np.zeros(dim)
    thetas, updates, used, locals_, states = [theta.copy()], [], [], [], []
    for t in range(config.rounds):
        rule = rules[int(child_rng(seed, Stream.FEDRANDOM + t).integers(len(rules)))] if aggregator == "fedrandom" else aggregator
        mu = config.mu if rule == "fedprox" else 0.0
        round_updates = np.zeros((shards.n_sellers, dim))
        for j in members:
            local = _local_sgd(model, X1[shards.owners == j], shards.y_train[shards.owners == j], theta,
                               config, mu, child_rng(seed, t, int(j)))
            round_updates[j] = local - theta
        step = (weights[:, None] * round_updates[members]).sum(axis=0)
        locals_.append(theta[None, :] + round_updates)
        states.append(servers[rule].state())
        theta = servers[rule].step(theta, step)
        thetas.append(theta.copy())
        updates.append(round_updates)
        used.append(rule)
    return FederatedRun(thetas, np.array(updates), used, sizes, np.array(locals_), config, states)


def _local_sgd(model: SoftmaxRegression, X1, y, theta_global, config: FederatedConfig, mu: float, rng) -> NDArray:
    theta = theta_global.copy()
    n = len(y)
    for _ in range(config.local_epochs):
        order = rng.permutation(n)
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            grad = model.data_gradient(theta, X1[idx], y[idx]) / len(idx) + config.l2 * theta
            grad += mu * (theta - theta_global)
            theta -= config.client_lr * grad
    return theta


class FederatedGame(Game):
    """Reconstructed coalition values from one federated run (no retraining).

    ``reconstruction="one_round"``: ``v(S) = kappa [acc(theta_{S,T}) - acc(theta_0)]`` with the
    run replayed on the coalition's aggregates; ``"multi_round"``: ``v(S) = kappa sum_t
    [acc(step_t(theta_t, Delta_{S,t})) - acc(theta_t)]`` (module docstring). Both give
    ``v(empty) = 0``.
    """

    def __init__(
        self, shards: SellerShards, run: FederatedRun, *, reconstruction: str = "multi_round",
        value_per_quality: float = 1.0, player_names: Sequence[str] | None = None, seed: int = 0,
    ) -> None:
        super().__init__(shards.n_sellers, player_names)
        self.shards, self.run, self.seed = shards, run, int(seed)  # seed: the run's
        self.reconstruction = reconstruction
        self.value_per_quality = float(value_per_quality)
        self.model = SoftmaxRegression(shards.X_train.shape[1], shards.n_classes, 0.0)
        self.X1_val = with_intercept(shards.X_val)
        self._acc_global = np.array([self._accuracy(th) for th in run.thetas])

    def _accuracy(self, theta: NDArray) -> float:
        return self.model.accuracy(theta, self.X1_val, self.shards.y_val)

    def inrun_trace(self, *, order: int, seed: int, epochs: int | None = None, batch_size: int | None = None,
                    learning_rate: float | None = None, validation_batch: int | None = None,
                    similarity: bool = False, projection_dim: int | None = None, progress: bool = False):
        """Per-client In-Run Shapley values of the stored run, round by round
        (:mod:`dataprice.buyers.federated.inrun`): nothing is trained again, so the run's
        settings are the buyer's (``rounds``, ``client_lr``, ...), not the method's."""
        from dataprice.buyers.federated.inrun import federated_inrun

        given = [name for name, v in (("epochs", epochs), ("batch_size", batch_size), ("learning_rate", learning_rate),
                                      ("projection_dim", projection_dim)) if v is not None]
        if given:
            raise ValueError(f"the federated buyer values its own stored run: remove {given[0]!r} from the method "
                             "(the run's settings are buyer.rounds, buyer.client_lr, buyer.batch_size, ...)")
        return federated_inrun(self.shards, self.run, order=order, validation_batch=validation_batch,
                               similarity=similarity, seed=self.seed, validation_seed=seed)

    def reconstruct(self, coalition: NDArray[np.bool_]) -> list[NDArray]:
        """The coalition's model after each round (one-round: from ``theta_0``; multi-round:
        from each round's global model)."""
        w = size_weights(coalition[None], self.run.sizes)[0]
        per_round = np.einsum("j,tjp->tp", w, self.run.updates)
        if self.reconstruction == "one_round":
            return self.run.replay(per_round)
        return self.run.round_steps(per_round)

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        out = np.zeros(coalitions.shape[0])
        for row, members in enumerate(coalitions):
            if not members.any():
                continue
            models = self.reconstruct(members)
            if self.reconstruction == "one_round":
                out[row] = self._accuracy(models[-1]) - self._acc_global[0]
            else:
                out[row] = sum(self._accuracy(m) - self._acc_global[t] for t, m in enumerate(models))
        return self.value_per_quality * out


class FederatedRetrainingGame(Game):
    """Ground truth: ``v(S) = kappa [acc(federated training on S's clients only) - acc(theta_0)]``
    (same aggregator, configuration and seed); one full federated run per coalition."""

    def __init__(self, shards: SellerShards, aggregator: str, config: FederatedConfig, *,
                 pool: Sequence[str] = AGGREGATORS, seed=0, value_per_quality: float = 1.0,
                 player_names: Sequence[str] | None = None) -> None:
        super().__init__(shards.n_sellers, player_names)
        self.shards, self.aggregator, self.config, self.pool, self.seed = shards, aggregator, config, pool, seed
        self.value_per_quality = float(value_per_quality)
        self.model = SoftmaxRegression(shards.X_train.shape[1], shards.n_classes, 0.0)
        self.X1_val = with_intercept(shards.X_val)
        self.base = self.model.accuracy(np.zeros(self.model.d * self.model.k), self.X1_val, shards.y_val)
        self.n_trainings = 0

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        out = np.zeros(coalitions.shape[0])
        for row, members in enumerate(coalitions):
            if not members.any():
                continue
            self.n_trainings += 1
            run = train_federated(self.shards, self.aggregator, self.config, pool=self.pool,
                                  clients=np.flatnonzero(members), seed=self.seed)
            out[row] = self.model.accuracy(run.thetas[-1], self.X1_val, self.shards.y_val) - self.base
        return self.value_per_quality * out


def data_size_baseline(sizes: NDArray, total_value: float) -> NDArray[np.float64]:
    """The FedRandom study's baseline: each client's share of the data times ``v(N)``."""
    sizes = np.asarray(sizes, dtype=np.float64)
    return total_value * sizes / sizes.sum()
