"""DPO buyer: owners' preference data, one DPO policy per owner, and DPO Shapley by arithmetic.

Direct Preference Optimization (Rafailov et al., 2023) trains a policy ``pi`` against a
frozen reference ``pi_ref`` on pairs ``(x, y_w, y_l)`` by minimising

    ``L = -log sigma(beta [ (log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x)) ])``

and its *implicit reward* is ``r(x, y) = beta (log pi(y|x) - log pi_ref(y|x))``.

**DPO Shapley.** Train one policy ``pi_j`` per owner, all with the same reference and beta.
A coalition's policy is the size-weighted log-probability arithmetic of its owners' policies
around the reference,

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

**Why not TRL's DPOTrainer.** Each owner's run is small and repeated ``n`` times (and once
per coalition when validating against retraining); the reference log-probabilities are
computed once and shared by every run; runs must be bit-for-bit reproducible from a seed and
cached by data hash. A 40-line loop over the DPO loss gives exactly that on CPU, while the
Trainer's dataset, accelerate and logging machinery is overhead here. LoRA comes from peft.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from dataprice._typing import CoalitionMatrix
from dataprice.data.preferences import PreferenceSet
from dataprice.valuation.game import Game, size_weights
from dataprice.valuation.utilities.retrieval import cache_dir


@dataclass(frozen=True)
class DPOConfig:
    """Training configuration shared by every owner (part of the checkpoint cache key).

    ``lora_r = 0`` means full fine-tuning (used for the tiny test model).
    """

    beta: float = 0.1
    learning_rate: float = 5e-4
    epochs: int = 2
    batch_size: int = 8
    lora_r: int = 8
    lora_alpha: int = 16
    max_prompt_tokens: int = 96
    seed: int = 0


# --- log-probabilities --------------------------------------------------------------------------


def _encode(tokenizer, prompts: Sequence[str], completions: Sequence[str], max_prompt_tokens: int):
    items = []
    for prompt, completion in zip(prompts, completions, strict=True):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_prompt_tokens:]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if not c:
            raise ValueError(f"completion {completion!r} has no tokens")
        if not p:  # a prompt must predict the first completion token
            p = [tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0]
        items.append((p, c))
    return items


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def sequence_logprobs(
    model, tokenizer, prompts: Sequence[str], completions: Sequence[str], *,
    max_prompt_tokens: int = 96, batch_size: int = 16, grad: bool = False,
) -> torch.Tensor:
    """``log pi(completion | prompt) = sum_t log pi(c_t | prompt, c_<t)`` for each pair.

    Prompt and completion are tokenised separately (no special tokens) and joined; prompts
    are cut from the left to ``max_prompt_tokens``. Right padding with an attention mask, so
    results do not depend on the batch. With ``grad=False`` runs under inference mode.
    """
    items = _encode(tokenizer, prompts, completions, max_prompt_tokens)
    pad = _pad_id(tokenizer)
    device = next(model.parameters()).device
    out = []
    context = torch.enable_grad() if grad else torch.inference_mode()
    with context:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (p, c) in enumerate(chunk):
                ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                mask[i, : len(p) + len(c)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for i, (p, c) in enumerate(chunk):
                positions = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=device)
                target = torch.tensor(c, device=device)
                out.append(logp[i, positions, target].sum())
    return torch.stack(out) if out else torch.zeros(0)


# --- training -----------------------------------------------------------------------------------


def dpo_loss(policy_w, policy_l, ref_w, ref_l, beta: float) -> torch.Tensor:
    """Mean DPO loss ``-log sigma(beta [(pi_w - ref_w) - (pi_l - ref_l)])`` (log-probs)."""
    return -torch.nn.functional.logsigmoid(beta * ((policy_w - ref_w) - (policy_l - ref_l))).mean()


def _trainable(base, config: DPOConfig):
    """A trainable copy of ``base``: LoRA adapters (peft) or all parameters."""
    model = copy.deepcopy(base)
    if config.lora_r > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
            target_modules=["q_proj", "v_proj"], bias="none",
        )
        with warnings.catch_warnings():  # peft calls a transformers API deprecated for v6
            warnings.filterwarnings("ignore", category=FutureWarning)
            model = get_peft_model(model, lora)
    for p in model.parameters():
        p.requires_grad_(config.lora_r == 0 or p.requires_grad)
    return model


def train_dpo(
    base, tokenizer, pairs: PreferenceSet, config: DPOConfig,
    reference: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """DPO-train a copy of ``base`` on ``pairs``; returns ``(model, losses per step)``.

    Deterministic: parameter initialisation (LoRA) and batch order come from ``config.seed``
    without touching the global random state. ``reference`` may pass the reference
    log-probabilities of (chosen, rejected), computed once and shared across owners.
    """
    if len(pairs) == 0:
        raise ValueError("cannot DPO-train on an empty preference set")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = _trainable(base, config)
    if reference is None:
        reference = (
            sequence_logprobs(base, tokenizer, pairs.prompts, pairs.chosen, max_prompt_tokens=config.max_prompt_tokens),
            sequence_logprobs(base, tokenizer, pairs.prompts, pairs.rejected, max_prompt_tokens=config.max_prompt_tokens),
        )
    ref_w, ref_l = (r.detach() for r in reference)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)
    losses = []
    model.train()
    for _ in range(config.epochs):
        order = rng.permutation(len(pairs))
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size].tolist()
            prompts = [pairs.prompts[i] for i in idx]
            pw = sequence_logprobs(model, tokenizer, prompts, [pairs.chosen[i] for i in idx],
                                   max_prompt_tokens=config.max_prompt_tokens, batch_size=len(idx), grad=True)
            pl = sequence_logprobs(model, tokenizer, prompts, [pairs.rejected[i] for i in idx],
                                   max_prompt_tokens=config.max_prompt_tokens, batch_size=len(idx), grad=True)
            loss = dpo_loss(pw, pl, ref_w[idx], ref_l[idx], config.beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    model.eval()
    return model, losses


class PolicyCache:
    """Trained policies on disk, keyed by sha256 of (base model id, data, config).

    Only the trained parameters are stored (LoRA adapters, or the full state for tiny
    models), in ``$DATAPRICE_CACHE/dpo/<key>.pt``.
    """

    def __init__(self, base_id: str, folder: Path | None = None) -> None:
        self.base_id = base_id
        self.folder = folder or cache_dir() / "dpo"
        self.hits = 0
        self.trainings = 0

    def key(self, pairs: PreferenceSet, config: DPOConfig) -> str:
        payload = json.dumps([self.base_id, pairs.fingerprint(), asdict(config)], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def policy(self, base, tokenizer, pairs: PreferenceSet, config: DPOConfig, reference=None):
        """The trained policy for ``pairs`` (from the cache when it was trained before)."""
        path = self.folder / f"{self.key(pairs, config)}.pt"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = _trainable(base, config)
        if path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=False)
            model.eval()
            self.hits += 1
            return model
        model, _ = train_dpo(base, tokenizer, pairs, config, reference)
        self.trainings += 1
        trained = {k: v.detach().cpu() for k, v in model.state_dict().items() if _is_trained(k, config)}
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(trained, tmp)
        tmp.replace(path)
        return model


def _is_trained(name: str, config: DPOConfig) -> bool:
    return config.lora_r == 0 or "lora_" in name


# --- owner margins and the game ------------------------------------------------------------------


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
    """

    def __init__(
        self, margins: NDArray[np.float64], sizes: NDArray[np.int64], *,
        utility: str = "accuracy", value_per_quality: float = 1.0, player_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(margins.shape[0], player_names)
        self.margins = np.asarray(margins, dtype=np.float64)
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

    def coalition_margins(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        return composition_weights(coalitions, self.sizes) @ self.margins

    def value_function(self, coalitions: CoalitionMatrix) -> NDArray[np.float64]:
        quality = preference_utility(self.coalition_margins(coalitions), self.utility)
        return self.value_per_quality * (quality - self.baseline)


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
        (p, c), = _encode(tokenizer, [prompt], [completion], max_prompt_tokens)
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

    from tqdm.auto import tqdm

    coalitions = np.asarray(coalitions, dtype=bool)
    ref_w = sequence_logprobs(base, tokenizer, heldout.prompts, heldout.chosen, max_prompt_tokens=config.max_prompt_tokens).double().numpy()
    ref_l = sequence_logprobs(base, tokenizer, heldout.prompts, heldout.rejected, max_prompt_tokens=config.max_prompt_tokens).double().numpy()
    retrained = np.zeros(len(coalitions))
    before = cache.trainings
    started = time.perf_counter()
    for i, row in enumerate(tqdm(coalitions, desc="retraining coalitions", disable=not progress)):
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
        targets = np.arange(sold.n_sellers) if targets is None else np.asarray(list(targets), dtype=np.int64)
        super().__init__(len(targets), player_names)
        self.context, self.targets = context, targets
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
                p.requires_grad_(_is_trained(name, c.config))
            params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=c.config.learning_rate, weight_decay=0.0)
        index = np.flatnonzero(removed)
        rng = np.random.default_rng(c.config.seed)
        ref_w, ref_l = (r.detach() for r in self._ref_sold)
        sold = c.sold
        policy.train()
        for _ in range(self.max_steps):
            batch = rng.choice(index, size=min(c.config.batch_size, index.size), replace=False).tolist()
            prompts = [sold.prompts[i] for i in batch]
            pw = sequence_logprobs(policy, c.tokenizer, prompts, [sold.chosen[i] for i in batch],
                                   max_prompt_tokens=c.config.max_prompt_tokens, batch_size=len(batch), grad=True)
            pl = sequence_logprobs(policy, c.tokenizer, prompts, [sold.rejected[i] for i in batch],
                                   max_prompt_tokens=c.config.max_prompt_tokens, batch_size=len(batch), grad=True)
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
