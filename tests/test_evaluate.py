"""ROUGE-L against the reference and how answers end, on scripted generations and a real tokenizer."""

import pytest
import torch

from helpers import evaluate, loading

TEXTS = ["Bread goes stale because starch recrystallises.", "Blue light scatters more than red light."]


@pytest.fixture(scope="module")
def tokenizer():
    tok = loading._train_tokenizer(TEXTS * 20 + ["### Instruction\n### Response\n"] * 20)
    tok.padding_side = "right"
    return tok


class ScriptedModel(torch.nn.Module):
    """Stands in for a causal LM: generate() appends the scripted new token ids of each prompt, in order."""

    def __init__(self, scripts: list[list[int]], pad: int):
        super().__init__()
        self.scripts, self.pad, self.calls = list(scripts), pad, []
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.device = torch.device("cpu")

    def generate(self, input_ids, attention_mask, max_new_tokens, pad_token_id, **kw):
        self.calls.append((input_ids.shape[0], max_new_tokens, kw.get("do_sample"), self.training))
        rows = []
        for _ in range(input_ids.shape[0]):
            new = self.scripts.pop(0)[:max_new_tokens]
            rows.append(new + [pad_token_id] * (max_new_tokens - len(new)))
        return torch.cat([input_ids, torch.tensor(rows)], dim=1)


def test_rouge_l_is_the_f_measure_of_the_longest_common_subsequence():
    scores = evaluate.rouge_l(["the cat sat on the mat", "cats", "nothing alike", "x"],
                              ["a cat sat on a mat", "cat", "completely different words", "x"])
    # "cat sat on mat": 4 of 6 words on both sides; the Porter stemmer makes "cats" "cat"
    assert scores == pytest.approx([4 / 6, 1.0, 0.0, 1.0])


def test_ending_tells_eos_from_a_new_instruction_and_the_token_limit():
    assert evaluate.ending("Paris.", [5, 6, 1], eos_token_id=1) == "stopped"
    assert evaluate.ending("", [1], eos_token_id=1) == "empty"  # <eos> before any text is no answer
    assert evaluate.ending("\n\n", [7, 1], eos_token_id=1) == "empty"
    assert evaluate.ending("Paris.\n### Instruction\nName", [5, 6, 1], eos_token_id=1) == "new instruction"
    assert evaluate.ending("Paris is a city and", [5, 6, 7], eos_token_id=1) == "token limit"


def test_answers_generate_in_batches_and_classify_each_ending(tokenizer):
    eos = tokenizer.eos_token_id
    def say(text):
        return tokenizer(text, add_special_tokens=False).input_ids

    limit = say("Blue light scatters more than red light. Blue light")
    scripts = [say("Bread goes stale.") + [eos], say("Blue.\n### Instruction\nMore") + [eos], limit]
    model = ScriptedModel(scripts, tokenizer.pad_token_id)
    model.train()
    texts, endings = evaluate.answers(model, tokenizer, ["a", "b", "c"], max_new_tokens=len(limit), batch_size=2)
    assert texts == ["Bread goes stale.", "Blue.\n### Instruction\nMore", tokenizer.decode(limit)]
    assert endings == ["stopped", "new instruction", "token limit"]
    assert model.calls == [(2, len(limit), False, False), (1, len(limit), False, False)]  # greedy, eval mode
    assert model.training and tokenizer.padding_side == "right"  # both restored


def test_summary_counts_endings_and_averages_rouge_l():
    got = evaluate.summary(["a b c d", "x y", "a b", ""], ["stopped", "token limit", "stopped", "empty"],
                           ["a b c d", "a b", "a b", "a"])
    assert got == {"answers": 4, "rouge_l": pytest.approx(2 / 4), "stopped": 2, "empty": 1, "new instruction": 0,
                   "token limit": 1}


def test_eos_probability_is_each_texts_own_next_token_probability_despite_padding(tokenizer):
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(0)
    config = GemmaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, pad_token_id=tokenizer.pad_token_id)
    model = GemmaForCausalLM(config).train()
    texts = ["Bread goes stale.", "Blue light scatters more than red light because", "Blue"]  # three lengths
    got = evaluate.eos_probability(model, tokenizer, texts, batch_size=2)
    model.eval()
    for text, p in zip(texts, got):
        with torch.no_grad():
            alone = model(**tokenizer(text, return_tensors="pt")).logits[0, -1].softmax(-1)
        assert p == pytest.approx(alone[tokenizer.eos_token_id].item(), rel=1e-4)
    assert len(set(got)) == 3
    model.train()
    evaluate.eos_probability(model, tokenizer, texts[:1])
    assert model.training and tokenizer.padding_side == "right"  # both restored


@pytest.mark.parametrize("call, error, name", [
    (lambda: evaluate.rouge_l("a b", ["a b"]), TypeError, "predictions"),
    (lambda: evaluate.rouge_l(["a"], []), TypeError, "references"),
    (lambda: evaluate.rouge_l(["a", "b"], ["a"]), ValueError, "predictions and references"),
    (lambda: evaluate.rouge_l([None], ["a"]), TypeError, "predictions"),
    (lambda: evaluate.summary(["a"], ["ran out"], ["a"]), ValueError, "endings"),
    (lambda: evaluate.answers(None, None, [], 8), TypeError, "prompts"),
    (lambda: evaluate.answers(None, None, ["p"], 0), ValueError, "max_new_tokens"),
    (lambda: evaluate.answers(None, None, ["p"], 8, batch_size=2.5), TypeError, "batch_size"),
    (lambda: evaluate.eos_probability(None, None, "one text"), TypeError, "texts"),
    (lambda: evaluate.eos_probability(None, None, ["t"], batch_size=0), ValueError, "batch_size"),
])
def test_bad_input_is_refused_with_the_arguments_name(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_eval_loss_hides_the_notebook_bar_only_while_it_evaluates():
    from transformers.utils.notebook import NotebookProgressCallback

    class FakeTrainer:
        def __init__(self):
            self.callbacks = [NotebookProgressCallback(), "recorder"]

        def pop_callback(self, cls):
            found = next((c for c in self.callbacks if isinstance(c, cls)), None)
            if found is not None:
                self.callbacks.remove(found)
            return found

        def add_callback(self, cb):
            self.callbacks.append(cb)

        def evaluate(self):
            self.seen = list(self.callbacks)
            return {"eval_loss": 1.25}

    trainer = FakeTrainer()
    assert evaluate.eval_loss(trainer) == 1.25
    assert trainer.seen == ["recorder"]
    assert any(isinstance(c, NotebookProgressCallback) for c in trainer.callbacks)
    with pytest.raises(TypeError, match="trainer"):
        evaluate.eval_loss(None)
