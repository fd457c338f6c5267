"""In-Run Data Shapley on the DPO buyer (tiny LM with LoRA): ghost products and values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dataprice.buyers.dpo.inrun import LinearTaps, dpo_inrun, similarity_scores
from dataprice.buyers.dpo.training import DPOConfig, dpo_loss, pair_logprobs
from dataprice.data.preferences import medical_preferences
from dataprice.models.lm import tiny_causal_lm
from dataprice.valuation.inrun import CountSketch

CONFIG = DPOConfig(lora_r=8, lora_alpha=16, learning_rate=3e-3, epochs=2, batch_size=8, beta=0.5, seed=0)


@pytest.fixture(scope="module")
def data():
    sold, held = medical_preferences([16, 16, 16, 16], flipped_sellers=[3], n_heldout=24, n_categories=6, seed=1)
    base, tokenizer = tiny_causal_lm()
    return sold, held, base, tokenizer


def test_ghost_products_equal_per_pair_gradients(data):
    """``g_i . M`` from the recorded inputs and output gradients of one batch equals the dot
    product with the pair's own gradient (one backward pass per pair)."""
    sold, _, base, tokenizer = data
    model = CONFIG.trainable(base)
    with torch.no_grad():  # move B off zero so that both LoRA factors have gradients
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    taps = LinearTaps(model)
    idx = [0, 5, 17, 40, 63]
    ref = pair_logprobs(base, tokenizer, sold, idx, CONFIG, grad=False)
    gen = torch.Generator().manual_seed(1)
    directions = {id(layer): torch.randn(layer.weight.shape, generator=gen) for layer in taps.layers}
    taps.recording = True
    pw, pl = pair_logprobs(model, tokenizer, sold, idx, CONFIG, grad=True)
    taps.recording = False
    (dpo_loss(pw, pl, ref[0], ref[1], CONFIG.beta) * len(idx)).backward()
    ghost = taps.dots(directions, len(idx))
    blocks = taps.example_blocks(len(idx))
    ordered = [directions[id(layer)] for layer in taps.layers]
    exact = similarity_scores(blocks, ordered, None)
    for row, i in enumerate(idx):
        model.zero_grad()
        one_ref = pair_logprobs(base, tokenizer, sold, [i], CONFIG, grad=False)
        w, lo = pair_logprobs(model, tokenizer, sold, [i], CONFIG, grad=True)
        dpo_loss(w, lo, one_ref[0], one_ref[1], CONFIG.beta).backward()
        explicit = sum(float((layer.weight.grad.double() * directions[id(layer)].double()).sum()) for layer in taps.layers)
        assert float(ghost[row]) == pytest.approx(explicit, rel=1e-4, abs=1e-8)
        # the per-pair blocks are the pair's own gradients, and the similarity their cosine
        own = torch.cat([layer.weight.grad.double().reshape(-1) for layer in taps.layers])
        for k, layer in enumerate(taps.layers):
            grad = layer.weight.grad.double().reshape(-1)  # (float32 sums: to 1e-4 of the block's largest entry)
            torch.testing.assert_close(blocks[k][row], grad, rtol=1e-4, atol=1e-4 * float(grad.abs().max()))
        direction = torch.cat([d.double().reshape(-1) for d in ordered])
        cosine = -float(own @ direction) / float(own.norm() * direction.norm())
        assert float(exact[row]) == pytest.approx(cosine, rel=1e-4, abs=1e-7)
    # a count sketch of many coordinates keeps the cosines; a few keep their order roughly
    wide = similarity_scores(blocks, ordered, CountSketch(4096, seed=0))
    np.testing.assert_allclose(wide, exact, atol=0.05)
    assert np.array_equal(similarity_scores(blocks, ordered, CountSketch(64, seed=3)),
                          similarity_scores(blocks, ordered, CountSketch(64, seed=3)))


def test_valuing_does_not_change_the_run(data):
    """The valued run (with a held-out batch drawn per step) ends at the plain run's adapters."""
    sold, held, base, tokenizer = data
    one_epoch = DPOConfig(**{**CONFIG.__dict__, "epochs": 1})
    model, trace = dpo_inrun(base, tokenizer, sold, held, one_epoch, learning_rate=0.005, validation_batch=4)
    plain, none = dpo_inrun(base, tokenizer, sold, held, one_epoch, learning_rate=0.005, value=False)
    assert none is None and trace.validation_points == 4 and trace.steps == 8
    for a, b in zip(model.parameters(), plain.parameters(), strict=True):
        if a.requires_grad:
            torch.testing.assert_close(a, b)


def test_full_fine_tuning_is_refused(data):
    sold, held, base, tokenizer = data
    with pytest.raises(ValueError, match="LoRA"):
        dpo_inrun(base, tokenizer, sold, held, DPOConfig(lora_r=0), learning_rate=0.1)


def test_one_run_values_pairs_and_owners_and_the_plain_run_is_the_same_run(data):
    """16 SGD steps at learning rate 0.005. Measured: the flipped owner is the only negative
    one, pair-level AUC 0.76 for flipped pairs, and the first-order values miss 17% of the
    run's utility change (5% at learning rate 0.002, 100% at 0.02: the second-order terms
    matter at larger steps; with them, 0.5% and 15%)."""
    sold, held, base, tokenizer = data
    model, trace = dpo_inrun(base, tokenizer, sold, held, CONFIG, learning_rate=0.005, similarity=True)
    assert trace.steps == 2 * 8 and trace.order == 1 and trace.utility_change > 0
    owners = trace.seller_values()
    assert int(np.argmin(owners)) == 3 and owners[3] < 0 < owners[:3].min()
    flipped = np.asarray(sold.owners) == 3
    assert roc_auc_score(flipped, -trace.values) > 0.7
    assert abs(trace.remainder) < 0.25 * trace.utility_change
    # gradient similarity from the same run (same values: computing it changes nothing)
    assert np.all(np.abs(trace.similarity) <= 1.0) and roc_auc_score(flipped, -trace.similarity) > 0.7
    _, plain = dpo_inrun(base, tokenizer, sold, held, CONFIG, learning_rate=0.005)
    np.testing.assert_array_equal(plain.values, trace.values)


def test_a_users_pairs_through_the_cli_with_inrun_shapley(tmp_path, monkeypatch, capsys):
    """The user's pairs file and held-out file, the tiny LM with LoRA: ``inrun_shapley`` order
    1 runs through ``dataprice run`` and records its run; with full fine-tuning it is refused
    at validation in one line naming the field."""
    import json

    import yaml

    from dataprice.cli import main

    from ..conftest import run_cli

    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))
    sold, held = medical_preferences([6, 6, 6], flipped_sellers=[2], n_heldout=8, n_categories=6, seed=3)
    rows = [{"prompt": p, "chosen": c, "rejected": r, "owner": f"lab_{o}"}
            for p, c, r, o in zip(sold.prompts, sold.chosen, sold.rejected, sold.owners, strict=True)]
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    pd.DataFrame({"prompt": held.prompts, "chosen": held.chosen, "rejected": held.rejected}).to_csv(
        tmp_path / "heldout.csv", index=False)
    data = {
        "name": "inrun_pairs", "seed": 3, "sellers": {"count": 3, "costs": [1.0, 1.0, 1.0]},
        "buyer": {"task": "dpo", "model": "tiny", "training": {"epochs": 1, "lora_r": 8, "beta": 0.5},
                  "preferences": {"source": "files", "file": "pairs.csv", "heldout_file": "heldout.csv"}},
        "valuation": [{"method": "exact_shapley"}, {"method": "inrun_shapley", "order": 1, "learning_rate": 0.005},
                      {"method": "gradient_similarity", "projection_dim": 256, "learning_rate": 0.005}],
        "market": {"payment_rules": ["shapley", "vcg"]}, "audit": {"grid_points": 3},
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    assert run_cli(path, tmp_path / "out") == 0
    sellers = pd.read_csv(tmp_path / "out" / "sellers.csv").set_index("seller")
    assert np.isfinite(sellers["value[inrun_shapley]"]).all()
    assert (sellers["value[gradient_similarity]"].abs() <= 1.0).all()
    recorded = json.dumps(json.loads((tmp_path / "out" / "valuations.json").read_text()))
    assert "taylor_remainder" in recorded and "training_seed" in recorded
    data["buyer"]["training"]["lora_r"] = 0  # full fine-tuning: no in-run values (embeddings are trained)
    path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "valuation[1].method: 'inrun_shapley' needs one training run whose steps" in err and "\n" not in err


def test_paying_on_inrun_values_trains_once_on_a_users_pairs(tmp_path, monkeypatch):
    """``market.value_basis: inrun_shapley`` with only in-run methods: the buyer trains no
    policy per owner (``trainings_run`` 0, nothing in the policy cache), the one in-run
    training values the pairs, and every rule but pay-as-bid pays a selected owner its value."""
    import pandas as pd
    import yaml

    from ..conftest import run_cli

    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))
    sold, held = medical_preferences([6, 6, 6], flipped_sellers=[2], n_heldout=8, n_categories=6, seed=3)
    pd.DataFrame({"prompt": sold.prompts, "chosen": sold.chosen, "rejected": sold.rejected,
                  "owner": [f"lab_{o}" for o in sold.owners]}).to_csv(tmp_path / "pairs.csv", index=False)
    pd.DataFrame({"prompt": held.prompts, "chosen": held.chosen, "rejected": held.rejected}).to_csv(
        tmp_path / "heldout.csv", index=False)
    rules = ["loo", "shapley", "myerson", "vcg", "pay_as_bid"]
    data = {
        "name": "inrun_paid", "seed": 3, "sellers": {"count": 3, "costs": [0.001, 0.001, 0.001]},
        "buyer": {"task": "dpo", "model": "tiny", "training": {"epochs": 1, "lora_r": 8, "beta": 0.5},
                  "value_per_quality": 1000.0,
                  "preferences": {"source": "files", "file": "pairs.csv", "heldout_file": "heldout.csv"}},
        "valuation": [{"method": "inrun_shapley", "order": 1, "learning_rate": 0.005}],
        "market": {"payment_rules": rules, "value_basis": "inrun_shapley"}, "audit": {"grid_points": 3},
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    assert run_cli(path, tmp_path / "out") == 0
    sellers = pd.read_csv(tmp_path / "out" / "sellers.csv")
    assert (sellers["trainings_run"] == 0).all()
    assert not list((tmp_path / "cache").rglob("*.pt"))
    phi, bids = sellers["value[inrun_shapley]"].to_numpy(), sellers["bid"].to_numpy()
    chosen = phi >= bids
    assert chosen.any()
    for rule in rules:
        expected = np.where(chosen, bids if rule == "pay_as_bid" else phi, 0.0)
        np.testing.assert_allclose(sellers[f"payment[{rule}]"].to_numpy(), expected, rtol=1e-9, atol=1e-12)


def test_utility_robustness_of_a_users_pairs_in_the_report(tmp_path, monkeypatch):
    """The DPO buyer offers accuracy and log-sigmoid: the report's "Utility robustness"
    section has both utilities' exact Shapley values (the declared one equal to the run's
    exact Shapley values) and each rule's payments (the declared one equal to the run's), and
    a report rebuilt from the saved results says the same."""
    import pandas as pd
    import yaml

    from dataprice.cli import main

    from ..conftest import run_cli

    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))
    sold, held = medical_preferences([6, 6, 6, 6], flipped_sellers=[2], n_heldout=8, n_categories=6, seed=3)
    pd.DataFrame({"prompt": sold.prompts, "chosen": sold.chosen, "rejected": sold.rejected,
                  "owner": [f"lab_{o}" for o in sold.owners]}).to_csv(tmp_path / "pairs.csv", index=False)
    pd.DataFrame({"prompt": held.prompts, "chosen": held.chosen, "rejected": held.rejected}).to_csv(
        tmp_path / "heldout.csv", index=False)
    data = {
        "name": "robust", "seed": 3, "sellers": {"count": 4, "costs": [1.0, 1.0, 1.0, 1.0]},
        "buyer": {"task": "dpo", "model": "tiny", "training": {"epochs": 1, "lora_r": 8, "beta": 0.5},
                  "preferences": {"source": "files", "file": "pairs.csv", "heldout_file": "heldout.csv"}},
        "valuation": [{"method": "exact_shapley"}],
        "market": {"payment_rules": ["shapley", "myerson"]}, "audit": {"enabled": False},
        "uncertainty": {"resamples": 0},
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert run_cli(path, out) == 0
    sellers = pd.read_csv(out / "sellers.csv")
    table = pd.read_csv(out / "utilities.csv")
    np.testing.assert_allclose(table["shapley[accuracy]"], sellers["value[exact_shapley]"], rtol=1e-9, atol=1e-12)
    for rule in ("shapley", "myerson"):
        np.testing.assert_allclose(table[f"payment[{rule}][accuracy]"], sellers[f"payment[{rule}]"], atol=1e-9)
    assert {"shapley[logsigmoid]", "banzhaf[logsigmoid]", "payment[myerson][logsigmoid]"} <= set(table.columns)
    report = (out / "report.md").read_text()
    section = report.split("## Utility robustness")[1].split("\n## ")[0]
    assert "Shapley values under accuracy and logsigmoid: Spearman" in section
    assert "Under myerson, measuring by logsigmoid would change" in section
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "report.md").read_text()
    assert again.split("## Utility robustness")[1].split("\n## ")[0] == section


def test_the_heldout_hessian_vector_product_matches_double_backpropagation(data):
    """``heldout_hvp`` (central differences of the held-out gradient) against the exact
    ``H_U v`` from differentiating ``grad U . v`` again, on LoRA weights moved off their start,
    and the weights are left as they were."""
    from dataprice.buyers.dpo.inrun import heldout_hvp

    _, held, base, tokenizer = data
    model = CONFIG.trainable(base)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(2))
    layers = LinearTaps(model).layers
    rows = list(range(8))
    ref = pair_logprobs(base, tokenizer, held, rows, CONFIG, grad=False)

    def utility():
        pw, pl = pair_logprobs(model, tokenizer, held, rows, CONFIG, grad=True)
        return -dpo_loss(pw, pl, ref[0], ref[1], CONFIG.beta)

    def gradient():
        model.zero_grad()
        utility().backward()

    gen = torch.Generator().manual_seed(4)
    v = {id(m): torch.randn(m.weight.shape, generator=gen) for m in layers}
    before = [m.weight.detach().clone() for m in layers]
    approx = heldout_hvp(layers, v, gradient)
    assert all(torch.equal(m.weight, w) for m, w in zip(layers, before, strict=True))
    weights = [m.weight for m in layers]
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):  # (the fused CPU attention kernel has no second derivative)
        grads = torch.autograd.grad(utility(), weights, create_graph=True)
        exact = torch.autograd.grad(sum((g * v[id(m)]).sum() for g, m in zip(grads, layers, strict=True)), weights)
    a = torch.cat([approx[id(m)].reshape(-1) for m in layers]).double()
    e = torch.cat([x.reshape(-1) for x in exact]).double()
    assert float((a - e).norm() / e.norm()) < 0.02


def test_second_order_accounts_for_more_of_a_large_step(data):
    """At learning rate 0.02 the first-order values miss a large share of the run's utility
    change; the second-order terms take back most of it."""
    sold, held, base, tokenizer = data
    one_epoch = DPOConfig(**{**CONFIG.__dict__, "epochs": 1})
    _, first = dpo_inrun(base, tokenizer, sold, held, one_epoch, learning_rate=0.02)
    _, second = dpo_inrun(base, tokenizer, sold, held, one_epoch, learning_rate=0.02, order=2)
    np.testing.assert_array_equal(first.first, second.first)  # the same run
    assert second.order == 2 and abs(second.remainder) < 0.5 * abs(first.remainder)
    assert int(np.argmin(second.seller_values())) == 3
