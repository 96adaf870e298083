"""Notebook 06's answer-only loss (helpers.compare) against a by-hand computation, and its exercises' checks."""

import math

import pytest
import torch

from helpers import compare, loading, prompting

ROWS = [
    {"instruction": "Why does bread go stale?", "input": "", "output": "Starch recrystallises as it cools."},
    {"instruction": "Name a colour.", "input": "The sky", "output": "Blue."},
    {"instruction": "Why is the sky blue?", "input": "", "output": "Blue light scatters more than red light does."},
]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [prompting.format_prompt(r) for r in ROWS]
    tok = loading._train_tokenizer(texts * 20)
    tok.padding_side = "right"
    return tok


@pytest.fixture(scope="module")
def model(tokenizer):
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(0)
    config = GemmaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, pad_token_id=tokenizer.pad_token_id)
    return GemmaForCausalLM(config)


def test_answer_tokens_start_where_the_prompt_ends_and_end_with_eos(tokenizer):
    for row in ROWS:
        ids, start = compare.answer_tokens(tokenizer, row)
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert ids[:start] == tokenizer(prompting.inference_prompt(row))["input_ids"]
        assert tokenizer.decode(ids[start:-1]).strip() == row["output"]


def test_answer_loss_is_the_mean_over_answer_tokens_and_eos_only(tokenizer, model):
    model.train()
    got = compare.answer_loss(model, tokenizer, ROWS, batch_size=2)  # two batches, padded to different lengths
    assert model.training, "the model's mode is restored"
    model.eval()
    nll, count = 0.0, 0
    for row in ROWS:  # one example at a time, no padding: the answer's tokens and its <eos>, the prompt not scored
        prompt = tokenizer(prompting.inference_prompt(row))["input_ids"]
        ids = tokenizer(prompting.format_prompt(row))["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
        for t in range(len(prompt), len(ids)):
            nll -= logp[t - 1, ids[t]].item()
            count += 1
    assert got["answer tokens"] == count
    assert got["answer loss"] == pytest.approx(nll / count, rel=1e-5)
    # the answers alone, not every token: the loss over the whole example differs
    whole = sum(len(tokenizer(prompting.format_prompt(r))["input_ids"]) for r in ROWS)
    assert count < whole / 2
    assert compare.answer_loss(model, tokenizer, ROWS, batch_size=1) == pytest.approx(got, rel=1e-5)


@pytest.mark.parametrize("rows, batch_size, error", [
    ([], 2, TypeError), ("a text", 2, TypeError), (ROWS, 0, ValueError), (ROWS, True, ValueError),
])
def test_answer_loss_refuses_bad_input(tokenizer, model, rows, batch_size, error):
    with pytest.raises(error):
        compare.answer_loss(model, tokenizer, rows, batch_size=batch_size)


def test_share_interval_is_the_normal_approximation():
    assert compare.share_interval(24, 48) == pytest.approx(1.96 * math.sqrt(0.25 / 48))
    assert compare.share_interval(0, 48) == 0
    with pytest.raises(ValueError):
        compare.share_interval(49, 48)


def test_the_exercise_checks_accept_the_answer_and_refuse_near_misses(capsys):
    places = {"after the reference": 0.3, "inside the reference": 0.002}
    assert compare.check_eos_ratio(150.0, places)
    assert not compare.check_eos_ratio(0.3 / 0.0021, places)
    assert not compare.check_eos_ratio(True, places)
    assert compare.check_eos_ratio(None, places) is False and "⏳" in capsys.readouterr().out
    assert compare.check_lcs_words(4 / 6) and not compare.check_lcs_words(0.5)
    assert compare.check_share_interval(1.96 * math.sqrt(0.25 / 48)) and not compare.check_share_interval(0.5 / 48)
