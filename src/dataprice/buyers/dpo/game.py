"""The DPO buyer's games: DPO Shapley by arithmetic on owner margins, generation, unlearning.

Each owner's policy ``pi_j`` is DPO-trained (:mod:`dataprice.buyers.dpo.training`) with the
same reference ``pi_ref`` and ``beta``; its *implicit reward* is
``r_j(x, y) = beta (log pi_j(y|x) - log pi_ref(y|x))`` and its reward *margin* on a
held-out pair ``(x, y_w, y_l)`` is ``m_j = r_j(x, y_w) - r_j(x, y_l)``.

**DPO Shapley.** A coalition's policy is the size-weighted log-probability arithmetic of its
owners' policies around the reference,

    ``log pi_S(y|x) = log pi_ref(y|x) + sum_{j in S} w_j^S (log pi_j(y|x) - log pi_ref(y|x))``,
    ``w_j^S = n_j / sum_{k in S} n_k``,

so its implicit reward is ``r_S = sum_j w_j^S r_j`` and the reward *margin* on a held-out
pair is the same weighted sum of owner margins, ``m_S = sum_j w_j^S m_j``. With the owners'
margins from ``n + 1`` scoring passes (the reference and each owner) every coalition's
held-out utility (preference accuracy, or mean ``log sigma(m)``) is arithmetic, and exact
Shapley over ``2^n`` coalitions costs no model call. The empty coalition is the reference
(margin 0). (Sequence-level arithmetic on log-probabilities is what the margin utility
needs; to *generate* from ``pi_S`` the same arithmetic is applied to next-token
log-probabilities and renormalised, see :class:`ComposedPolicy`.)

:class:`DPOGenerationGame` values coalitions by the composed policy's greedy answers (model
calls per coalition, small ``n``); :class:`DPOUnlearningGame` by unlearning the removed
owners' pairs from one policy trained on every pair (Unlearning Shapley);
:func:`retrain_coalitions` checks the arithmetic against policies retrained per coalition.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.buyers.dpo.training import DPOConfig, dpo_loss, pair_logprobs
from dataprice.data.preferences import PreferenceSet
from dataprice.models.cache import PolicyCache
from dataprice.models.lm import encode_pairs, sequence_logprobs
from dataprice.valuation.game import Game, size_weights


@dataclass
class OwnerScores:
    """Held-out log-probabilities: ``ref_*`` shape ``(P,)``, ``owner_*`` shape ``(n, P)``."""

    ref_chosen: NDArray[np.float64]
    ref_rejected: NDArray[np.float64]
    owner_chosen: NDArray[np.float64]
    owner_rejected: NDArray[np.float64]
    beta: float

    def margins(self) -> NDArray[np.float64]:
        """``m_j = beta [(lp_j(y_w) - ref(y_w)) - (lp_j(y_l) - ref(y_l))]``, shape ``(n, P)``."""
        return self.beta * (
            (self.owner_chosen - self.ref_chosen) - (self.owner_rejected - self.ref_rejected)
        )


def score_owners(base, tokenizer, policies: Sequence, heldout: PreferenceSet, config: DPOConfig) -> OwnerScores:
    """The ``n + 1`` scoring passes: the reference and each owner's policy on held-out pairs."""

    def lp(model, completions):
        return sequence_logprobs(model, tokenizer, heldout.prompts, completions,
                                 max_prompt_tokens=config.max_prompt_tokens).double().numpy()

    return OwnerScores(
        ref_chosen=lp(base, heldout.chosen),
        ref_rejected=lp(base, heldout.rejected),
        owner_chosen=np.array([lp(m, heldout.chosen) for m in policies]),
        owner_rejected=np.array([lp(m, heldout.rejected) for m in policies]),
        beta=config.beta,
    )


#: ``w_j^S = n_j / sum_{k in S} n_k``: the size weights of a coalition's composed policy.
composition_weights = size_weights


def composed_logprob(ref: NDArray, owners: NDArray, weights: NDArray) -> NDArray:
    """``log pi_S = log pi_ref + sum_j w_j (log pi_j - log pi_ref)`` (any trailing shape)."""
    return ref + np.tensordot(weights, owners - ref[None], axes=(0, 0))


def preference_utility(margins: NDArray[np.float64], kind: str) -> NDArray[np.float64]:
    """Held-out quality from margins ``(..., P)``: ``accuracy`` (ties count 1/2) or
    ``logsigmoid`` (mean ``log sigma(m)``, the negative DPO loss at ``beta = 1``)."""
    if kind == "accuracy":
        return ((margins > 0) + 0.5 * (margins == 0)).mean(axis=-1)
    return (-np.logaddexp(0.0, -margins)).mean(axis=-1)


class DPOShapleyGame(Game):
    """``v(S) = kappa [U(sum_{j in S} w_j^S m_j) - U(0)]``: arithmetic on owner margins.

    ``U`` is :func:`preference_utility`; the empty coalition is the reference (margin 0),
    so ``v(empty) = 0``. Vectorised over coalitions: one matrix product per batch.

    ``margins=None``: no owner policy was trained (a run that only reads the in-run training,
    :attr:`Scenario.needs_coalition_values`); ``v(empty) = 0`` still, and any other
    coalition's value is refused.
    """

    def __init__(
        self, margins: NDArray[np.float64] | None, sizes: NDArray[np.int64], *,
        utility: str = "accuracy", value_per_quality: float = 1.0, player_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(len(sizes), player_names)
        self.trained = margins is not None
        self.margins = np.zeros((len(sizes), 1)) if margins is None else np.asarray(margins, dtype=np.float64)
        self.sizes = np.asarray(sizes)
        self.utility = utility
        self.value_per_quality = float(value_per_quality)
        self.baseline = float(preference_utility(np.zeros(self.margins.shape[1]), utility))
        self.context: DPOContext | None = None  # set by the buyer builder: enables unlearning

    def unlearning_game(self, targets=None, method: str = "gradient_ascent") -> Game:
        """The :class:`DPOUnlearningGame` of this buyer (gradient ascent is its only rule)."""
        if self.context is None:
            raise TypeError("this DPO game was built without its training context; unlearning needs it")
        if method != "gradient_ascent":
            raise ValueError("the DPO buyer unlearns by gradient ascent; use unlearning: gradient_ascent")
        names = self.player_names if targets is None else [self.player_names[t] for t in targets]
        return DPOUnlearningGame(self.context, targets=targets, utility=self.utility,
                                 value_per_quality=self.value_per_quality, player_names=names)

    def inrun_trace(self, *, order: int, seed: int, epochs: int | None = None, batch_size: int | None = None,
                    learning_rate: float | None = None, validation_batch: int | None = None,
                    similarity: bool = False, projection_dim: int | None = None, progress: bool = False):
        """One SGD run of the LoRA policy on every owner's pairs with In-Run Shapley values
        per pair (order 1 or 2) (:mod:`dataprice.buyers.dpo.inrun`), and with ``similarity``
        each pair's gradient-similarity score; the learning rate defaults to the buyer's (an
        AdamW rate: SGD usually wants a larger one)."""
        from dataclasses import replace

        from dataprice.buyers.dpo.inrun import dpo_inrun

        if self.context is None:
            raise TypeError("this DPO game was built without its training context; in-run Shapley needs it")
        c = self.context
        config = replace(c.config, seed=seed % (2**31))
        return dpo_inrun(c.base, c.tokenizer, c.sold, c.heldout, config,
                         learning_rate=learning_rate or c.config.learning_rate, epochs=epochs,
                         batch_size=batch_size, validation_batch=validation_batch, similarity=similarity,
                         projection_dim=projection_dim, order=order, progress=progress)[1]

    def utility_variants(self) -> dict[str, Game]:
        """This game under each margin utility (``accuracy``, ``logsigmoid``), the declared one
        first: the same owner margins, so each costs no model call (empty without margins)."""
        if not self.trained:
            return {}
        out: dict[str, Game] = {self.utility: self}
        for utility in ("accuracy", "logsigmoid"):
            if utility != self.utility:
                out[utility] = DPOShapleyGame(self.margins, self.sizes, utility=utility,
                                              value_per_quality=self.value_per_quality, player_names=self.player_names)
        return out

    def coalition_margins(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return composition_weights(coalitions, self.sizes) @ self.margins

    @property
    def n_points(self) -> int:
        """Held-out preference pairs the value averages over (what a bootstrap resamples)."""
        return int(self.margins.shape[1])

    def point_values(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        """``float[m, P]``: each held-out pair's utility (:func:`preference_utility` before the mean)."""
        margins = self.coalition_margins(coalitions)
        if self.utility == "accuracy":
            return (margins > 0) + 0.5 * (margins == 0)
        return -np.logaddexp(0.0, -margins)

    def from_points(self, points: NDArray[np.float64], weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        """``kappa [U - U(0)]`` with ``U`` the (weighted) mean over pairs."""
        quality = points.mean(axis=-1) if weights is None else points @ weights
        return self.value_per_quality * (quality - self.baseline)

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        if not self.trained and np.asarray(coalitions).any():
            raise TypeError("this DPO run trained no policy per owner (it pays on in-run values only); a "
                            "coalition's value needs them: add a method that reads coalitions")
        return self.from_points(self.point_values(coalitions))


class ComposedPolicy:
    """Next-token arithmetic over owner policies, for generation from ``pi_S``.

    ``log pi_S(t | prefix) = log_softmax( log pi_ref(t|prefix) + sum_j w_j (log pi_j(t|prefix) - log pi_ref(t|prefix)) )``
    """

    def __init__(self, reference, policies: Sequence, weights: Sequence[float]) -> None:
        self.reference = reference
        self.policies = [p for p, w in zip(policies, weights, strict=True) if w > 0]
        self.weights = [float(w) for w in weights if w > 0]

    @torch.inference_mode()
    def mixed_logprobs(self, input_ids: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """``(B, T, V)`` composed log-probabilities at every position; without ``normalize``
        the plain arithmetic (whose sums over a completion are the sequence-level formula)."""
        ref = torch.log_softmax(self.reference(input_ids=input_ids).logits.double(), dim=-1)
        mixed = ref.clone()
        for model, w in zip(self.policies, self.weights, strict=True):
            own = torch.log_softmax(model(input_ids=input_ids).logits.double(), dim=-1)
            mixed += w * (own - ref)
        return torch.log_softmax(mixed, dim=-1) if normalize else mixed

    def next_token_logprobs(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.mixed_logprobs(input_ids)[:, -1]

    def sequence_logprob(self, tokenizer, prompt: str, completion: str, *, normalize: bool = False,
                         max_prompt_tokens: int = 96) -> float:
        """``sum_t log pi_S(c_t | prompt, c_<t)`` under the composed policy."""
        (p, c), = encode_pairs(tokenizer, [prompt], [completion], max_prompt_tokens)
        logp = self.mixed_logprobs(torch.tensor([p + c]), normalize=normalize)[0]
        positions = torch.arange(len(p) - 1, len(p) + len(c) - 1)
        return float(logp[positions, torch.tensor(c)].sum())

    def greedy(self, tokenizer, prompt: str, max_new_tokens: int = 8) -> str:
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        new = []
        for _ in range(max_new_tokens):
            token = int(self.next_token_logprobs(ids).argmax(-1))
            if tokenizer.eos_token_id is not None and token == tokenizer.eos_token_id:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        return tokenizer.decode(new)


def training_cost(n_owners: int) -> dict[str, float]:
    """Model trainings: DPO Shapley (``n``) against exact retraining Shapley (``2^n - 1``)."""
    return {"dpo_shapley_trainings": n_owners, "dpo_shapley_scoring_passes": n_owners + 1,
            "retraining_trainings": float(2**n_owners - 1), "ratio": (2**n_owners - 1) / max(n_owners, 1),
            "log2_retraining": math.log2(max(2**n_owners - 1, 1))}


# --- utilities that need model calls per coalition (small n) -------------------------------------


class DPOGenerationGame(Game):
    """``v(S) = kappa [G(pi_S) - G(pi_ref)]`` where ``G`` is the fraction of held-out prompts
    whose greedy answer from the composed policy ``pi_S`` (next-token arithmetic, see
    :class:`ComposedPolicy`) starts with the category of the right code (its first three
    characters). Every coalition costs ``(|S| + 1)`` model calls per generated token, so this
    is for small ``n``; answers are cached per coalition.
    """

    def __init__(
        self, base, tokenizer, policies: Sequence, sizes: NDArray[np.int64], heldout: PreferenceSet, *,
        value_per_quality: float = 1.0, max_new_tokens: int = 6, player_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(len(policies), player_names)
        self.base, self.tokenizer, self.policies = base, tokenizer, list(policies)
        self.sizes = np.asarray(sizes)
        self.heldout = heldout
        self.value_per_quality = float(value_per_quality)
        self.max_new_tokens = max_new_tokens
        self.answers: dict[tuple[bool, ...], list[str]] = {}
        self.baseline = self._quality(np.zeros(len(policies), dtype=bool))

    def _quality(self, coalition: NDArray[np.bool_]) -> float:
        key = tuple(bool(b) for b in coalition)
        if key not in self.answers:
            weights = composition_weights(coalition[None], self.sizes)[0]
            composed = ComposedPolicy(self.base, self.policies, weights)
            self.answers[key] = [
                composed.greedy(self.tokenizer, prompt, self.max_new_tokens) for prompt in self.heldout.prompts
            ]
        right = [c.strip()[:3] for c in self.heldout.chosen]
        return float(np.mean([a.strip()[:3] == r for a, r in zip(self.answers[key], right, strict=True)]))

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return np.array([self.value_per_quality * (self._quality(row) - self.baseline) for row in coalitions])


@dataclass
class RetrainingComparison:
    """Arithmetic (DPO Shapley) values against values from policies retrained per coalition."""

    coalitions: NDArray[np.bool_]
    arithmetic: NDArray[np.float64]
    retrained: NDArray[np.float64]
    trainings: int
    seconds_per_training: float

    def rank_correlation(self) -> float:
        from scipy.stats import spearmanr

        return float(spearmanr(self.arithmetic, self.retrained).statistic)

    def mean_absolute_error(self) -> float:
        return float(np.mean(np.abs(self.arithmetic - self.retrained)))


def retrain_coalitions(
    base, tokenizer, sold: PreferenceSet, heldout: PreferenceSet, config: DPOConfig,
    coalitions: CoalitionMatrix, game: DPOShapleyGame, cache: PolicyCache, *, progress: bool = False,
) -> RetrainingComparison:
    """Retrain one DPO policy on each coalition's pooled data and measure ``v(S)`` with it.

    The retrained value uses the same held-out utility and value scale as ``game``, so the
    two columns are directly comparable. Trainings go through ``cache`` (a coalition of one
    owner is that owner's policy).
    """
    import time

    from dataprice.progress import progress as progress_display

    coalitions = np.asarray(coalitions, dtype=bool)
    ref_w = sequence_logprobs(base, tokenizer, heldout.prompts, heldout.chosen, max_prompt_tokens=config.max_prompt_tokens).double().numpy()
    ref_l = sequence_logprobs(base, tokenizer, heldout.prompts, heldout.rejected, max_prompt_tokens=config.max_prompt_tokens).double().numpy()
    retrained = np.zeros(len(coalitions))
    before = cache.trainings
    started = time.perf_counter()
    for i, row in enumerate(progress_display(coalitions, desc="retraining coalitions", enabled=progress)):
        if not row.any():
            continue
        policy = cache.policy(base, tokenizer, sold.of_owners(np.flatnonzero(row)), config)
        lw = sequence_logprobs(policy, tokenizer, heldout.prompts, heldout.chosen, max_prompt_tokens=config.max_prompt_tokens).double().numpy()
        ll = sequence_logprobs(policy, tokenizer, heldout.prompts, heldout.rejected, max_prompt_tokens=config.max_prompt_tokens).double().numpy()
        margin = config.beta * ((lw - ref_w) - (ll - ref_l))
        retrained[i] = game.value_per_quality * (preference_utility(margin, game.utility) - game.baseline)
    trainings = cache.trainings - before
    return RetrainingComparison(
        coalitions=coalitions,
        arithmetic=game(coalitions),
        retrained=retrained,
        trainings=trainings,
        seconds_per_training=(time.perf_counter() - started) / max(trainings, 1),
    )


# --- unlearning (Unlearning Shapley on the LM buyer) -------------------------------------------


@dataclass
class DPOContext:
    """What a DPO game needs to build its unlearning counterpart."""

    base: object
    tokenizer: object
    sold: PreferenceSet
    heldout: PreferenceSet
    config: DPOConfig
    cache: PolicyCache


class DPOUnlearningGame(Game):
    """``v(S) = kappa [U(pi_{N minus R}) - U(pi_ref)]``, ``R`` = pairs of the targets outside S.

    One DPO policy is trained on every owner's pairs. A coalition is measured by *unlearning*
    the removed pairs from it: gradient ascent on their DPO loss (same optimiser settings as
    training) until their mean implicit-reward margin is back to the reference level
    (``<= 0``) or ``max_steps`` -- then scoring the held-out pairs. Never retrains; with
    ``targets`` only those owners are valued and the other owners' pairs are never used
    after the one training run.
    """

    def __init__(
        self, context: DPOContext, *, targets: Sequence[int] | None = None, utility: str = "accuracy",
        value_per_quality: float = 1.0, max_steps: int = 30, player_names: Sequence[str] | None = None,
    ) -> None:
        sold = context.sold
        chosen: NDArray[np.int64] = (
            np.arange(sold.n_sellers) if targets is None else np.asarray(list(targets), dtype=np.int64)
        )
        super().__init__(len(chosen), player_names)
        self.context, self.targets = context, chosen
        self.utility, self.value_per_quality, self.max_steps = utility, float(value_per_quality), max_steps
        c = context
        self.full = c.cache.policy(c.base, c.tokenizer, sold, c.config)  # the one training run
        lp = lambda model, pairs, column: sequence_logprobs(  # noqa: E731
            model, c.tokenizer, pairs.prompts, getattr(pairs, column), max_prompt_tokens=c.config.max_prompt_tokens
        )
        self._ref_held = (lp(c.base, c.heldout, "chosen").double().numpy(), lp(c.base, c.heldout, "rejected").double().numpy())
        self._ref_sold = (lp(c.base, sold, "chosen"), lp(c.base, sold, "rejected"))
        self.baseline = float(preference_utility(np.zeros(len(c.heldout)), utility))
        self.n_unlearning_runs = 0
        self.n_unlearning_steps = 0

    def _quality(self, policy) -> float:
        c = self.context
        lw = sequence_logprobs(policy, c.tokenizer, c.heldout.prompts, c.heldout.chosen, max_prompt_tokens=c.config.max_prompt_tokens).double().numpy()
        ll = sequence_logprobs(policy, c.tokenizer, c.heldout.prompts, c.heldout.rejected, max_prompt_tokens=c.config.max_prompt_tokens).double().numpy()
        margin = c.config.beta * ((lw - self._ref_held[0]) - (ll - self._ref_held[1]))
        return float(preference_utility(margin, self.utility))

    def unlearn(self, removed: NDArray[np.bool_]):
        """A copy of the full policy with the pairs ``removed`` (mask over sold pairs) unlearnt."""
        c = self.context
        if not removed.any():
            return self.full
        self.n_unlearning_runs += 1
        policy = copy.deepcopy(self.full)
        params = [p for p in policy.parameters() if p.requires_grad]
        if not params:  # a cached full policy loaded for inference: make its trained part trainable
            for name, p in policy.named_parameters():
                p.requires_grad_(c.config.is_trained(name))
            params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=c.config.learning_rate, weight_decay=0.0)
        index = np.flatnonzero(removed)
        rng = np.random.default_rng(c.config.seed)
        ref_w, ref_l = (r.detach() for r in self._ref_sold)
        sold = c.sold
        policy.train()
        for _ in range(self.max_steps):
            batch = rng.choice(index, size=min(c.config.batch_size, index.size), replace=False).tolist()
            pw, pl = pair_logprobs(policy, c.tokenizer, sold, batch, c.config)
            margin = c.config.beta * ((pw - ref_w[batch]) - (pl - ref_l[batch]))
            if float(margin.detach().mean()) <= 0.0:  # the removed pairs look no better than to the reference
                break
            loss = -dpo_loss(pw, pl, ref_w[batch], ref_l[batch], c.config.beta)  # ascent on their loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            self.n_unlearning_steps += 1
        policy.eval()
        return policy

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        out = np.empty(coalitions.shape[0])
        owners = self.context.sold.owners
        for row, members in enumerate(coalitions):
            if not members.any() and len(self.targets) == self.context.sold.n_sellers:
                out[row] = 0.0  # nobody's data: the reference model
                continue
            removed = np.isin(owners, self.targets[~members])
            out[row] = self.value_per_quality * (self._quality(self.unlearn(removed)) - self.baseline)
        return out
