"""DPO training: the loss, a deterministic training loop on CPU, and the LoRA set-up.

Direct Preference Optimization (Rafailov et al., 2023) trains a policy ``pi`` against a
frozen reference ``pi_ref`` on pairs ``(x, y_w, y_l)`` by minimising

    ``L = -log sigma(beta [ (log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x)) ])``

and its *implicit reward* is ``r(x, y) = beta (log pi(y|x) - log pi_ref(y|x))``. The DPO
buyer trains one policy per owner (see :mod:`dataprice.buyers.dpo.game` for DPO Shapley);
trained policies are kept on disk by :class:`~dataprice.models.cache.PolicyCache`.

**Why not TRL's DPOTrainer.** Each owner's run is small and repeated ``n`` times (and once
per coalition when validating against retraining); the reference log-probabilities are
computed once and shared by every run; runs must be bit-for-bit reproducible from a seed and
cached by data hash. A 40-line loop over the DPO loss gives exactly that on CPU, while the
Trainer's dataset, accelerate and logging machinery is overhead here. LoRA comes from peft.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from dataprice.data.preferences import PreferenceSet
from dataprice.models.lm import sequence_logprobs


@dataclass(frozen=True)
class DPOConfig:
    """Training configuration shared by every owner (every field is part of the policy cache
    key, see :class:`~dataprice.models.cache.PolicyCache`, whose ``Training`` contract the
    three methods fulfil).

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

    def trainable(self, base):
        """A trainable copy of ``base`` (LoRA adapters or all parameters), initialised from
        ``seed`` without touching the global random state."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return _trainable(base, self)

    def train(self, base, tokenizer, pairs: PreferenceSet, reference=None):
        """The policy :func:`train_dpo` trains on ``pairs`` (its losses are dropped)."""
        return train_dpo(base, tokenizer, pairs, self, reference)[0]

    def is_trained(self, name: str) -> bool:
        """Whether parameter ``name`` is trained: every one in full fine-tuning, else the LoRA adapters."""
        return self.lora_r == 0 or "lora_" in name


def pair_logprobs(model, tokenizer, pairs: PreferenceSet, idx: list[int], config: DPOConfig, *, grad: bool = True):
    """``(log pi(chosen | prompt), log pi(rejected | prompt))`` for pairs ``idx``, one batch."""
    prompts = [pairs.prompts[i] for i in idx]
    return tuple(
        sequence_logprobs(model, tokenizer, prompts, [getattr(pairs, column)[i] for i in idx],
                          max_prompt_tokens=config.max_prompt_tokens, batch_size=len(idx), grad=grad)
        for column in ("chosen", "rejected")
    )


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
    model = config.trainable(base)
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
            pw, pl = pair_logprobs(model, tokenizer, pairs, idx, config)
            loss = dpo_loss(pw, pl, ref_w[idx], ref_l[idx], config.beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    model.eval()
    return model, losses
