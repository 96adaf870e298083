"""Notebook 06's answer-only loss (helpers.compare) against a by-hand computation, and its exercises' checks."""

import functools
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


class MergingTokenizer:
    """Characters as tokens, but "\\n\\n" is one (as in Gemma's vocabulary): an answer starting with a newline merges
    with the prompt's closing newline, so the prompt's token list is not a prefix of the example's."""

    bos_token_id, eos_token_id, pad_token_id = 0, 1, 2

    def __init__(self):
        self.vocab = {}

    def __call__(self, text):
        ids, i = [self.bos_token_id], 0
        while i < len(text):
            piece = "\n\n" if text.startswith("\n\n", i) else text[i]
            ids.append(self.vocab.setdefault(piece, len(self.vocab) + 3))
            i += len(piece)
        return {"input_ids": ids}


def test_the_answer_starts_at_a_token_merged_across_the_prompts_end():
    tok = MergingTokenizer()
    row = {"instruction": "Name a colour.", "input": "", "output": "\nBlue."}
    ids, start = compare.answer_tokens(tok, row)
    prompt = tok(prompting.inference_prompt(row))["input_ids"]
    assert ids[start] == tok.vocab["\n\n"] and prompt[-1] == tok.vocab["\n"]
    # the merged token holds the answer's first character: it is scored, not given with the prompt
    assert start == len(prompt) - 1 and ids[:start] == prompt[:start]
    assert ids[-1] == tok.eos_token_id


def test_answer_loss_scores_in_eval_mode_without_autograd_and_restores_the_mode(tokenizer, model):
    seen = []  # at each forward: (model in training mode?, any submodule in training mode?, autograd on?)
    hook = model.register_forward_pre_hook(
        lambda m, args: seen.append((m.training, any(s.training for s in m.modules()), torch.is_grad_enabled())))
    try:
        for mode in (True, False):  # a model in training mode stays so, and one in eval mode (generation next) too
            model.train(mode)
            compare.answer_loss(model, tokenizer, ROWS, batch_size=2)
            assert [s.training for s in model.modules()] == [mode] * len(list(model.modules()))
    finally:
        hook.remove()
        model.eval()
    assert len(seen) == 4 and set(seen) == {(False, False, False)}  # dropout off, no graph kept


def verdict(capsys, returned: bool) -> str:
    """What the learner saw: "right", "not yet" or "pending"; the return value agrees with the printed line."""
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"one line per check, got {out!r}"
    assert returned is out.startswith("✅"), out
    return "right" if out.startswith("✅") else "pending" if out.startswith("⏳") else "not yet"


PLACES = {"after the reference": 0.3, "inside the reference": 0.002}
HALF = 1.96 * math.sqrt(0.25 / 48)  # 0.141451...
LCS, SHARE = compare.check_lcs_words, compare.check_share_interval
EOS = functools.partial(compare.check_eos_ratio, places=PLACES)


@pytest.mark.parametrize("call, answer", [
    (LCS, 4 / 6), (LCS, 0.667), (LCS, 0.6667), (LCS, 0.67),  # 2 figures or more, the rule of helpers.checks
    (SHARE, HALF), (SHARE, 0.1415), (SHARE, 0.141), (SHARE, 0.14),  # 0.14: notebook 06's "about ±14 points"
    (EOS, 0.3 / 0.002),
])
def test_the_exercise_answers_and_their_rounded_forms_are_right(capsys, call, answer):
    assert verdict(capsys, call(answer)) == "right"


def test_exercise_1s_answer_is_what_evaluate_rouge_l_gives(capsys):
    from helpers import evaluate

    answer = evaluate.rouge_l(["the cat sat on the mat"], ["the cat lay on a mat"])[0]
    assert verdict(capsys, compare.check_lcs_words(answer)) == "right"


@pytest.mark.parametrize("call, answer", [
    # exercise 1: truncated (2 and 3 figures), a percent, one figure, a wrong LCS (3 or 5 words), the LCS over both
    # texts' words together, True, text
    (LCS, 0.66), (LCS, 0.666), (LCS, 66.67), (LCS, 0.7), (LCS, 0.5), (LCS, 5 / 6), (LCS, 4 / 12), (LCS, True),
    (LCS, "0.667"),
    # exercise 2: a 90 % interval (1.645), two standard errors, one standard error, over n - 1, percent points,
    # three figures wrongly rounded, the interval's full width, True
    (SHARE, 1.645 * math.sqrt(0.25 / 48)), (SHARE, 2 * math.sqrt(0.25 / 48)), (SHARE, math.sqrt(0.25 / 48)),
    (SHARE, 1.96 * math.sqrt(0.25 / 47)), (SHARE, 100 * HALF), (SHARE, 14.1), (SHARE, 0.143), (SHARE, 2 * HALF),
    (SHARE, True),
    # exercise 3: 1 %, 0.1 % and 0.01 % off, the inverse, the difference
    (EOS, 150 * 1.01), (EOS, 150 * 1.001), (EOS, 150 * 1.0001), (EOS, 1 / 150), (EOS, 0.3 - 0.002),
])
def test_a_near_miss_is_a_wrong_answer(capsys, call, answer):
    assert verdict(capsys, call(answer)) == "not yet"
