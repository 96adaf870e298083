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


HALLA = "한라산 정상의 화구호는 백록담입니다."  # 16 syllables
HUNMIN = "훈민정음은 1443년에 만들어져 1446년에 반포되었습니다."


def test_korean_rouge_l_reads_hangul_syllables_and_keeps_the_order_a_reader_expects():
    close, unrelated = "한라산 꼭대기의 화구호는 백록담이에요.", "김치는 배추를 소금에 절여 만듭니다."
    close_score, unrelated_score, unknown = evaluate.rouge_l([close, unrelated, "저는 모릅니다."], [HALLA] * 3)
    assert close_score > 0.5 > unrelated_score and close_score > unknown
    # "I do not know" shares only common syllables (는, 니다): low, but scored on Hangul, not 0 by having no tokens
    assert 0 < unknown < 0.3
    # the same digits in other words are not a perfect answer (rouge-score's own tokenizer gives 1.0 here):
    # 1443, 년, 1446, 년 of 9 tokens and of the reference's 22
    precision, recall = 4 / 9, 4 / 22
    assert evaluate.rouge_l(["1443년과 1446년의 고양이"], [HUNMIN]) == [
        pytest.approx(2 * precision * recall / (precision + recall))]
    assert evaluate.rouge_l(["1443 1446"], [HUNMIN], korean=False) == [1.0]
    assert evaluate.rouge_l([HALLA], [HALLA]) == [1.0]


def test_korean_rouge_l_is_the_f_measure_not_recall_or_precision():
    # "백록담": all 3 syllables in the 16 of the reference, so precision 1, recall 3/16, F = 2PR / (P + R)
    assert evaluate.rouge_l(["백록담"], [HALLA]) == [pytest.approx(2 * (3 / 16) / (1 + 3 / 16))]


def test_the_korean_tokenizer_is_chosen_by_hangul_and_english_is_scored_as_before():
    from rouge_score import rouge_scorer

    assert evaluate.KoreanTokenizer().tokenize("QLoRA는 Runs 1,947 m") == ["qlora", "는", "run", "1", "947", "m"]
    english = ["The cats sat on the mats today", "Bread goes stale"]
    references = ["a cat sat on a mat", "Bread went stale because starch recrystallises"]
    default = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    assert evaluate.rouge_l(english, references) == [default.score(r, p)["rougeL"].fmeasure
                                                     for p, r in zip(english, references)]
    assert evaluate.rouge_l(["백록담"], [HALLA], korean=False) == [0.0]  # rouge-score's own: no tokens at all
    with pytest.raises(TypeError, match="korean must be True, False or None"):
        evaluate.rouge_l(["a"], ["a"], korean="ko")


def test_ending_tells_eos_from_a_new_instruction_and_the_token_limit():
    assert evaluate.ending("Paris.", [5, 6, 1], eos_token_id=1) == "stopped"
    assert evaluate.ending("", [1], eos_token_id=1) == "empty"  # <eos> before any text is no answer
    assert evaluate.ending("\n\n", [7, 1], eos_token_id=1) == "empty"
    assert evaluate.ending("Paris.\n### Instruction\nName", [5, 6, 1], eos_token_id=1) == "new instruction"
    assert evaluate.ending("Paris is a city and", [5, 6, 7], eos_token_id=1) == "token limit"
    # a template line and then <eos> is not an answer that stopped in the response's form
    assert evaluate.ending("Paris.\n### Input\n", [5, 6, 1], eos_token_id=1) == "new instruction"
    assert evaluate.ending("### Response\n", [5, 1], eos_token_id=1) == "new instruction"


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


def test_eos_places_reads_p_eos_after_the_prompt_inside_and_after_the_reference(tokenizer):
    from transformers import GemmaConfig, GemmaForCausalLM

    torch.manual_seed(0)
    config = GemmaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, pad_token_id=tokenizer.pad_token_id)
    model = GemmaForCausalLM(config).train()
    prompts = ["### Instruction\nWhy?\n### Response\n", "### Response\n"]
    examples = [prompts[0] + "Bread goes stale because starch recrystallises.\n", prompts[1] + "Blue light.\n"]
    got = evaluate.eos_places(model, tokenizer, prompts, examples, batch_size=2)  # two lengths: left padding
    assert list(got) == list(evaluate.EOS_PLACES)
    model.eval()
    for i, (prompt, example) in enumerate(zip(prompts, examples)):
        ids = tokenizer(example, return_tensors="pt").input_ids
        n = len(tokenizer(prompt).input_ids)
        with torch.no_grad():
            p = model(input_ids=ids).logits[0].softmax(-1)[:, tokenizer.eos_token_id]
        assert got["after the prompt"][i] == pytest.approx(p[n - 1].item(), rel=1e-4)
        assert got["inside the reference"][i] == pytest.approx(p[n:-1].mean().item(), rel=1e-4)
        assert got["after the reference"][i] == pytest.approx(p[-1].item(), rel=1e-4)
    assert got["after the reference"] == pytest.approx(evaluate.eos_probability(model, tokenizer, examples), rel=1e-4)
    model.train()
    with pytest.raises(ValueError, match="each example being its prompt followed by the reference"):
        evaluate.eos_places(model, tokenizer, prompts, examples[::-1])
    assert model.training and tokenizer.padding_side == "right"


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
