"""In-Run Data Shapley for the DPO buyer: per-pair values from one SGD run of the LoRA policy.

The run is plain minibatch SGD on the DPO loss of the LoRA adapters (``theta <- theta -
(lr / |B|) sum_{i in B} g_i``), the setting In-Run Data Shapley is defined for (Wang et al.,
"Data Shapley in One Training Run"); the buyer's usual AdamW run is not the one valued. The
utility is the held-out pairs' mean ``log sigma(beta margin)`` (minus their DPO loss), whose
gradient is one backward pass per step. A pair's first-order value at a step is
``-(lr / |B|) grad U . g_i`` (:func:`dataprice.valuation.inrun.taylor_split`).

The dot products ``grad U . g_i`` are "ghost" products: every trained parameter is the
weight of a linear layer (the LoRA factors ``A`` and ``B``), whose per-pair gradient is
``sum_t delta_{i,t}^T a_{i,t}`` (output gradient times input, over the pair's tokens of its
chosen and rejected sequences). With the layer's inputs and output gradients recorded in the
batch's one backward pass, ``g_i . M = sum_t delta_{i,t} . (M a_{i,t})``: no per-pair
gradient is formed. Full fine-tuning (``lora_r: 0``: embeddings and norms are trained too)
is refused. Second order (``order=2``) adds each pair's share of the batch's interactions,
``(s^2 / 2) g_i . H_U G_B``: the held-out Hessian-vector product ``H_U G_B`` comes from central
differences of the held-out gradient (two more held-out passes per step), and its dot
product with each pair's gradient is a ghost product again.

Gradient similarity (:mod:`dataprice.valuation.methods.similarity`) needs each pair's
gradient norm: a LoRA factor's per-pair gradient is small (``r x d``), so it is formed per
layer from the same recorded inputs and output gradients, and optionally count-sketched to
a few coordinates (LESS's random projection of LoRA gradients).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from dataprice.buyers.dpo.training import DPOConfig, dpo_loss, pair_logprobs
from dataprice.data.preferences import PreferenceSet
from dataprice.valuation.inrun import CountSketch, InRunTrace, descent_cosines, taylor_split


class LinearTaps:
    """Inputs and output gradients of the trained linear layers of ``model``, per forward call.

    ``record`` switches recording on for the forward passes that follow; every trained
    parameter must be the weight of an ``nn.Linear`` without a trained bias.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.layers: list[torch.nn.Linear] = []
        covered = set()
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.weight.requires_grad:
                if module.bias is not None and module.bias.requires_grad:
                    raise ValueError("in-run ghost products need linear layers without a trained bias")
                self.layers.append(module)
                covered.add(id(module.weight))
        others = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
        if others:
            raise ValueError(
                f"in-run Shapley for the DPO buyer needs LoRA (lora_r > 0): parameter {others[0]!r} is trained "
                "and is not a linear layer's weight"
            )
        self.inputs: dict[int, list[torch.Tensor]] = {id(m): [] for m in self.layers}
        self.grads: dict[int, list[torch.Tensor | None]] = {id(m): [] for m in self.layers}
        self.recording = False
        self._handles = [m.register_forward_hook(self._forward) for m in self.layers]

    def _forward(self, module, args, output) -> None:
        if not self.recording:
            return
        key = id(module)
        slot = len(self.grads[key])
        self.inputs[key].append(args[0].detach())
        self.grads[key].append(None)

        def keep(grad: torch.Tensor, key: int = key, slot: int = slot) -> None:
            self.grads[key][slot] = grad.detach()

        output.register_hook(keep)

    def clear(self) -> None:
        for key in self.inputs:
            self.inputs[key].clear()
            self.grads[key].clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def dots(self, directions: dict[int, torch.Tensor], rows: int) -> torch.Tensor:
        """``g_i . M`` for each of the ``rows`` pairs of the recorded calls (each call's row
        ``i`` belongs to pair ``i``), with ``M`` the weight-shaped ``directions`` per layer."""
        total = torch.zeros(rows, dtype=torch.float64)
        for layer in self.layers:
            key = id(layer)
            M = directions[key]
            for a, delta in zip(self.inputs[key], self.grads[key], strict=True):
                if delta is None:
                    continue
                total += torch.einsum("bto,bto->b", delta.double(), (a.double() @ M.double().T))
        return total


    def example_blocks(self, rows: int) -> list[torch.Tensor]:
        """Each pair's gradient per trained layer, ``(rows, out * in)`` per layer:
        ``sum_t delta_{i,t}^T a_{i,t}`` over the recorded calls (for gradient similarity;
        a LoRA factor's block is small, ``r x d``)."""
        blocks = []
        for layer in self.layers:
            key = id(layer)
            total = torch.zeros((rows, *layer.weight.shape), dtype=torch.float64)
            for a, delta in zip(self.inputs[key], self.grads[key], strict=True):
                if delta is not None:
                    total += torch.einsum("bto,bti->boi", delta.double(), a.double())
            blocks.append(total.reshape(rows, -1))
        return blocks


def similarity_scores(blocks: list[torch.Tensor], directions: list[torch.Tensor],
                      sketch: CountSketch | None) -> np.ndarray:
    """``cos(-g_i, grad U)`` of each pair from its per-layer gradient ``blocks`` and the
    held-out gradient's (``directions``, same layers), exact or of their ``sketch``."""
    if sketch is None:
        examples = torch.cat(blocks, dim=1).numpy()
        direction = torch.cat([d.reshape(-1).double() for d in directions]).numpy()
    else:
        examples = np.sum([sketch(k, b.numpy()) for k, b in enumerate(blocks)], axis=0)
        direction = np.sum([sketch(k, d.reshape(1, -1).double().numpy())[0] for k, d in enumerate(directions)], axis=0)
    return descent_cosines(examples, direction)


#: Central-difference step of :func:`heldout_hvp`, relative to the trained weights' norm.
HVP_STEP = 1e-3


def heldout_hvp(layers: list[torch.nn.Linear], direction: dict[int, torch.Tensor], gradient) -> dict[int, torch.Tensor]:
    """``H_U v`` for the trained ``layers``' weights by central differences of the held-out
    gradient: ``[grad U(theta + h u) - grad U(theta - h u)] |v| / (2 h)`` with ``u = v / |v|``
    and ``h = HVP_STEP * max(1, |theta|)``. ``gradient()`` leaves ``grad U`` in the weights'
    ``.grad``; the weights are restored exactly (the same tensors are added and taken away
    in float64 and copied back)."""
    norm = float(torch.stack([(direction[id(m)].double() ** 2).sum() for m in layers]).sum().sqrt())
    if norm == 0.0:
        return {id(m): torch.zeros_like(m.weight) for m in layers}
    size = float(torch.stack([(m.weight.detach().double() ** 2).sum() for m in layers]).sum().sqrt())
    h = HVP_STEP * max(1.0, size)
    saved = {id(m): m.weight.detach().clone() for m in layers}
    grads = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for m in layers:
                m.weight.copy_((saved[id(m)].double() + sign * h / norm * direction[id(m)].double()).to(m.weight.dtype))
        gradient()
        grads.append({id(m): _grad_of(m.weight).double() for m in layers})
    with torch.no_grad():
        for m in layers:
            m.weight.copy_(saved[id(m)])
    return {key: ((grads[0][key] - grads[1][key]) * (norm / (2 * h))).to(saved[key].dtype) for key in saved}


def _grad_of(weight: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(weight) if weight.grad is None else weight.grad.detach().clone()


def dpo_inrun(
    base, tokenizer, sold: PreferenceSet, heldout: PreferenceSet, config: DPOConfig, *, learning_rate: float,
    epochs: int | None = None, batch_size: int | None = None, value: bool = True,
    validation_batch: int | None = None, similarity: bool = False, projection_dim: int | None = None,
    order: int = 1, progress: bool = False,
) -> tuple[torch.nn.Module, InRunTrace | None]:
    """One SGD run of ``config``'s LoRA policy on ``sold``; with ``value``, the first-order
    In-Run Shapley value of every pair (None otherwise: the plain run, same steps).
    ``validation_batch``: held-out pairs drawn afresh per step for the utility's gradient
    (stream ``[seed, 1]``; None: all of them), so a step costs a bounded extra pass.
    ``similarity``: also each pair's mean ``cos(-g_i, grad U)`` over its steps, from its
    per-layer LoRA gradients (exact, or of their :class:`CountSketch` to ``projection_dim``
    coordinates, LESS-style). ``order=2``: also each pair's share of the batch's interaction
    terms, ``(s^2 / 2) g_i . H_U G_B``, with the held-out Hessian-vector product ``H_U G_B`` by
    central differences of the held-out gradient (:func:`heldout_hvp`: two more held-out
    passes per step, on the step's held-out pairs)."""
    from dataprice.progress import progress as progress_display

    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    if config.lora_r <= 0:
        raise ValueError("in-run Shapley for the DPO buyer trains LoRA adapters; set buyer.training.lora_r > 0")
    epochs = epochs or config.epochs
    batch_size = batch_size or config.batch_size
    model = config.trainable(base)
    params = [p for p in model.parameters() if p.requires_grad]
    taps = LinearTaps(model) if value else None
    all_idx = list(range(len(sold)))
    ref_sold = pair_logprobs(base, tokenizer, sold, all_idx, config, grad=False)
    # (the plain run needs no held-out pass: its time is the training's alone)
    ref_held = pair_logprobs(base, tokenizer, heldout, list(range(len(heldout))), config, grad=False) if value \
        else None

    validation_rng = np.random.default_rng([config.seed, 1])
    drawn = validation_batch if validation_batch is not None and validation_batch < len(heldout) else 0

    every_row = list(range(len(heldout)))

    def held_utility(with_grad: bool, rows: list[int] = every_row) -> float:
        assert ref_held is not None
        pw, pl = pair_logprobs(model, tokenizer, heldout, rows, config, grad=with_grad)
        utility = -dpo_loss(pw, pl, ref_held[0][rows], ref_held[1][rows], config.beta)
        if with_grad:
            model.zero_grad()
            utility.backward()
        return float(utility.detach())

    rng = np.random.default_rng(config.seed)
    first, second = np.zeros(len(sold)), np.zeros(len(sold))
    cosine_sum, visits = np.zeros(len(sold)), np.zeros(len(sold))
    sketch = CountSketch(projection_dim, config.seed) if similarity and projection_dim else None
    steps, started = 0, time.perf_counter()
    model.train()
    start_utility = held_utility(False) if value else 0.0
    batches = [rng.permutation(len(sold)) for _ in range(epochs)]
    flat = [order[s:s + batch_size].tolist() for order in batches for s in range(0, len(order), batch_size)]
    for idx in progress_display(flat, desc="in-run DPO", enabled=progress):
        directions, rows = None, every_row
        if taps is not None:
            if drawn:  # this step's held-out pairs (the plain run draws none)
                rows = sorted(validation_rng.choice(len(heldout), drawn, replace=False).tolist())
            held_utility(True, rows)
            directions = {id(layer): _grad_of(layer.weight) for layer in taps.layers}
            taps.clear()
            taps.recording = True
        pw, pl = pair_logprobs(model, tokenizer, sold, idx, config, grad=True)
        if taps is not None:
            taps.recording = False
        # the sum of the pairs' losses: each pair's output gradients are its own
        loss = dpo_loss(pw, pl, ref_sold[0][idx], ref_sold[1][idx], config.beta) * len(idx)
        model.zero_grad()
        loss.backward()
        step = learning_rate / len(idx)
        if taps is not None and directions is not None:
            hessian_dots = None
            if order == 2:
                batch_grad = {id(layer): _grad_of(layer.weight) for layer in taps.layers}  # G_B
                hvp = heldout_hvp(taps.layers, batch_grad, lambda step_rows=rows: held_utility(True, step_rows))
                hessian_dots = taps.dots(hvp, len(idx)).numpy()
                for layer in taps.layers:  # the step uses G_B: put it back where the HVP's passes left theirs
                    layer.weight.grad = batch_grad[id(layer)]
            f, q = taylor_split(step, taps.dots(directions, len(idx)).numpy(), hessian_dots)
            first[idx] += f
            second[idx] += q
            if similarity:
                cosine_sum[idx] += similarity_scores(taps.example_blocks(len(idx)),
                                                     [directions[id(layer)] for layer in taps.layers], sketch)
                visits[idx] += 1
        with torch.no_grad():
            for p in params:
                p -= step * p.grad
        steps += 1
    model.eval()
    if taps is None:
        return model, None
    taps.remove()
    trace = InRunTrace(first=first, second=second, owners=np.asarray(sold.owners, dtype=np.int64),
                       n_sellers=sold.n_sellers, utility_change=held_utility(False) - start_utility, order=order,
                       steps=steps, seed=config.seed, validation_points=drawn or len(heldout),
                       similarity=np.divide(cosine_sum, visits, out=np.zeros(len(sold)), where=visits > 0)
                       if similarity else None,
                       extra={"utility": "held-out mean log sigma(beta margin)", "seconds": time.perf_counter() - started})
    return model, trace
