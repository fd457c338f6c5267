"""DPO buyer on a tiny causal LM: composition identities, margins, values, caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataprice.buyers.dpo.game import (
    ComposedPolicy,
    DPOShapleyGame,
    composed_logprob,
    composition_weights,
    score_owners,
)
from dataprice.buyers.dpo.training import DPOConfig, train_dpo
from dataprice.data.preferences import load_preferences, medical_preferences
from dataprice.errors import DataError
from dataprice.models.cache import PolicyCache
from dataprice.models.lm import sequence_logprobs, tiny_causal_lm
from dataprice.valuation.game import masks_to_coalitions
from dataprice.valuation.methods import ExactShapley, LeaveOneOut

CONFIG = DPOConfig(lora_r=0, learning_rate=3e-3, epochs=3, beta=0.5, seed=0)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """Four owners (owner 3 flipped) trained once with the tiny LM, through the disk cache."""
    sold, held = medical_preferences([16, 24, 12, 20], flipped_sellers=[3], n_heldout=24, n_categories=6, seed=1)
    base, tokenizer = tiny_causal_lm()
    cache = PolicyCache("tiny-test", tmp_path_factory.mktemp("dpo"))
    policies = [cache.policy(base, tokenizer, sold.of_owner(j), CONFIG) for j in range(4)]
    scores = score_owners(base, tokenizer, policies, held, CONFIG)
    return sold, held, base, tokenizer, policies, scores, cache


def test_composed_sequence_logprob_equals_the_formula(market):
    sold, held, base, tokenizer, policies, scores, _ = market
    weights = composition_weights(np.array([[True, True, False, True]]), sold.sizes())[0]
    composed = ComposedPolicy(base, policies, weights)
    for i in range(3):
        via_model = composed.sequence_logprob(tokenizer, held.prompts[i], held.chosen[i])
        via_formula = composed_logprob(
            np.array([scores.ref_chosen[i]]), scores.owner_chosen[:, i : i + 1], weights
        )[0]
        assert via_model == pytest.approx(via_formula, abs=1e-4)


def test_margin_identity_holds_to_numerical_precision(market):
    """The composed policy's implicit reward margin is the weighted sum of owner margins."""
    sold, held, base, tokenizer, policies, scores, _ = market
    margins = scores.margins()
    coalitions = masks_to_coalitions(np.arange(1, 16), 4)
    game = DPOShapleyGame(margins, sold.sizes())
    arithmetic = game.coalition_margins(coalitions)
    for row, coalition in enumerate(coalitions[[0, 6, 14]]):
        weights = composition_weights(coalition[None], sold.sizes())[0]
        composed = ComposedPolicy(base, policies, weights)
        i = 5
        lw = composed.sequence_logprob(tokenizer, held.prompts[i], held.chosen[i])
        ll = composed.sequence_logprob(tokenizer, held.prompts[i], held.rejected[i])
        margin = CONFIG.beta * ((lw - scores.ref_chosen[i]) - (ll - scores.ref_rejected[i]))
        assert margin == pytest.approx(arithmetic[[0, 6, 14][row], i], abs=1e-4)


def test_empty_coalition_is_the_reference_model(market):
    sold, held, base, tokenizer, policies, scores, _ = market
    game = DPOShapleyGame(scores.margins(), sold.sizes(), value_per_quality=100)
    assert game.empty_value() == 0.0
    assert np.all(game.coalition_margins(np.zeros((1, 4), dtype=bool)) == 0)
    ids = torch.tensor([tokenizer(held.prompts[0], add_special_tokens=False)["input_ids"]])
    composed = ComposedPolicy(base, policies, [0, 0, 0, 0])
    reference = torch.log_softmax(base(input_ids=ids).logits.double(), dim=-1)
    torch.testing.assert_close(composed.mixed_logprobs(ids), reference)


def test_training_learns_and_flipped_owners_get_the_lowest_values(market):
    sold, held, base, tokenizer, policies, scores, _ = market
    margins = scores.margins()
    accuracy = (margins > 0).mean(axis=1)
    assert accuracy[:3].min() > 0.7 and accuracy[3] < 0.3, accuracy
    for utility in ("accuracy", "logsigmoid"):
        game = DPOShapleyGame(margins, sold.sizes(), utility=utility, value_per_quality=100)
        for method in (ExactShapley(), LeaveOneOut()):
            values = method.fit(game).result.values
            assert int(np.argmin(values)) == 3 and values[3] < 0, (utility, method.name, values)


def test_policy_cache_reuses_trained_checkpoints(market):
    sold, held, base, tokenizer, policies, scores, cache = market
    assert cache.trainings == 4 and cache.hits == 0
    again = cache.policy(base, tokenizer, sold.of_owner(1), CONFIG)
    assert cache.hits == 1 and cache.trainings == 4
    a = sequence_logprobs(again, tokenizer, held.prompts[:4], held.chosen[:4])
    b = sequence_logprobs(policies[1], tokenizer, held.prompts[:4], held.chosen[:4])
    torch.testing.assert_close(a, b)
    other = DPOConfig(**{**CONFIG.__dict__, "beta": 0.2})
    assert cache.key(sold.of_owner(1), other) != cache.key(sold.of_owner(1), CONFIG)


def test_training_is_deterministic_and_leaves_global_rng_alone(market):
    sold, held, base, tokenizer, *_ = market
    state = torch.random.get_rng_state()
    a, losses_a = train_dpo(base, tokenizer, sold.of_owner(2), CONFIG)
    b, losses_b = train_dpo(base, tokenizer, sold.of_owner(2), CONFIG)
    assert losses_a == losses_b
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(state, torch.random.get_rng_state())


def test_medical_preferences_structure():
    sold, held = medical_preferences([10, 5, 8], flipped_sellers=[1], duplicate_sellers=[2], n_heldout=12, n_categories=5, seed=0)
    assert sold.sizes().tolist() == [10, 5, 8]
    originals = {(p, c, r) for p, c, r, k in zip(sold.prompts, sold.chosen, sold.rejected, sold.kinds, strict=True) if k == "original"}
    for p, c, r, k in zip(sold.prompts, sold.chosen, sold.rejected, sold.kinds, strict=True):
        if k == "duplicate":
            assert (p, c, r) in originals
        if k == "flipped":
            assert (p, r, c) not in originals  # flipped pairs are fresh pairs, reversed
    right = {(r if k == "flipped" else c).strip() for c, r, k in zip(sold.chosen, sold.rejected, sold.kinds, strict=True)}
    held_codes = {c.strip() for c in held.chosen}
    assert not held_codes & right, "held-out questions ask about other codes"
    # ... of the same few categories, which is what a policy can carry over
    assert len({c[:3] for c in held_codes | right}) <= 5


def test_preference_loader_errors(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "Q?", "chosen": " a", "rejected": " b", "owner": "x"}\n'
                    '{"prompt": "Q2?", "chosen": " c", "rejected": " d", "owner": "y"}\n')
    prefs = load_preferences(path)
    assert prefs.seller_names == ["x", "y"] and len(prefs) == 2
    path.write_text('{"prompt": "Q?", "chosen": " a", "owner": "x"}\n')
    with pytest.raises(DataError, match="preference column 'rejected' is missing"):
        load_preferences(path)
    path.write_text('{"prompt": "Q?", "chosen": " a", "rejected": " a", "owner": "x"}\n')
    with pytest.raises(DataError, match="chosen == rejected"):
        load_preferences(path)
    with pytest.raises(DataError, match="not found"):
        load_preferences(tmp_path / "missing.jsonl")


def test_arithmetic_values_track_retrained_values_and_shapley(market):
    """Retrain a policy on every coalition's pooled data (15 trainings for 4 owners) and
    compare: the arithmetic game should rank coalitions like retraining does, and DPO
    Shapley should rank owners like retraining-based Shapley."""
    from scipy.stats import spearmanr

    from dataprice.buyers.dpo.game import retrain_coalitions
    from dataprice.valuation.game import TabulatedGame

    sold, held, base, tokenizer, policies, scores, cache = market
    game = DPOShapleyGame(scores.margins(), sold.sizes(), value_per_quality=100)
    coalitions = masks_to_coalitions(np.arange(16), 4)
    comparison = retrain_coalitions(base, tokenizer, sold, held, CONFIG, coalitions, game, cache)
    assert comparison.trainings == 11  # the four single owners come from the cache
    assert comparison.rank_correlation() > 0.7
    arithmetic = ExactShapley().fit(TabulatedGame(comparison.arithmetic)).result.values
    retrained = ExactShapley().fit(TabulatedGame(comparison.retrained)).result.values
    assert spearmanr(arithmetic, retrained).statistic > 0.7
    assert int(np.argmin(retrained)) == 3


def test_generation_utility_on_small_coalitions(market):
    from dataprice.buyers.dpo.game import DPOGenerationGame

    sold, held, base, tokenizer, policies, scores, _ = market
    few = held.subset(range(6))
    game = DPOGenerationGame(base, tokenizer, policies[:2], sold.sizes()[:2], few, value_per_quality=1.0, max_new_tokens=4)
    values = game(masks_to_coalitions(np.arange(4), 2))
    assert values[0] == 0.0 and values.shape == (4,)
    assert len(game.answers) == 4 and all(len(a) == 6 for a in game.answers.values())


def test_dpo_scenario_runs_from_the_cli(tmp_path, monkeypatch):
    import pandas as pd
    import yaml

    from dataprice.cli import main

    monkeypatch.setenv("DATAPRICE_CACHE", str(tmp_path / "cache"))
    scenario = {
        "name": "dpo_tiny", "seed": 3,
        "sellers": {"count": 4, "costs": [1, 2, 3, 4]},
        "buyer": {"task": "dpo", "model": "tiny",
                  "preferences": {"sizes": [16, 24, 12, 20], "flipped_sellers": [3], "n_heldout": 24, "n_categories": 6},
                  "training": {"lora_r": 0, "learning_rate": 0.003, "epochs": 3, "beta": 0.5}},
        "valuation": [{"method": "loo"}, {"method": "exact_shapley"}],
        "audit": {"grid_points": 7},
    }
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(scenario))
    assert main(["run", str(path), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    sellers = pd.read_csv(tmp_path / "a" / "sellers.csv").set_index("seller")
    assert sellers["value[exact_shapley]"].idxmin() == "seller_3"
    assert sellers.loc["seller_3", "flipped"] == 20
    assert len(list((tmp_path / "cache" / "dpo").glob("*.pt"))) == 4
    # a second run reuses every checkpoint and gives the same report
    assert main(["run", str(path), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert (tmp_path / "a" / "values.csv").read_text() == (tmp_path / "b" / "values.csv").read_text()
    assert len(list((tmp_path / "cache" / "dpo").glob("*.pt"))) == 4


def test_unlearning_shapley_on_the_dpo_buyer(market):
    """One policy on all pairs; coalitions measured by unlearning the others' pairs (gradient
    ascent). Measured: the flipped owner comes last and every owner's sign (helpful or
    harmful data) agrees with DPO Shapley; the order among clean owners does not (ascent on
    removed pairs also erases the signal the kept owners share with them)."""
    from dataprice.buyers.dpo.game import DPOContext
    from dataprice.valuation.methods import UnlearningShapley

    sold, held, base, tokenizer, policies, scores, cache = market
    game = DPOShapleyGame(scores.margins(), sold.sizes(), value_per_quality=100)
    with pytest.raises(TypeError, match="training context"):
        game.unlearning_game()
    game.context = DPOContext(base, tokenizer, sold, held, CONFIG, cache)
    trainings = cache.trainings
    result = UnlearningShapley(unlearning="gradient_ascent", max_evaluations=60, seed=0).fit(game).result
    assert cache.trainings - trainings <= 1  # the one all-data policy (or none: cached)
    assert result.extra["unlearning_runs"] > 0 and result.extra["unlearning_steps"] > 0
    assert int(np.argmin(result.values)) == 3
    dpo_shapley = ExactShapley().fit(game).result.values
    assert np.array_equal(np.sign(result.values), np.sign(dpo_shapley))
    with pytest.raises(ValueError, match="gradient_ascent"):
        game.unlearning_game(method="newton")
