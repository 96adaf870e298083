"""The post's template, the inference prompt, and batched generation with left padding."""

import pytest
import torch

from helpers import loading, prompting
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
ROW = {"instruction": "Name a colour.", "category": "open_qa", "input": "Think of the sky.", "output": "Blue."}


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_dir):
    return loading.load_model(tiny_dir, SMOKE, for_training=False), loading.load_tokenizer(tiny_dir)


def test_training_text_is_the_posts_template_exactly():
    assert prompting.format_prompt(ROW) == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n"
        "### Instruction\n"
        "Name a colour.\n"
        "### Input\n"
        "Think of the sky.\n"
        "### Response\n"
        "Blue.\n"
    )


def test_empty_input_keeps_its_line_and_nothing_is_indented():
    text = prompting.format_prompt({**ROW, "input": ""})
    assert "### Input\n\n### Response\n" in text
    assert not any(line[:1].isspace() for line in text.splitlines())


def test_inference_prompt_stops_after_the_response_header():
    prompt = prompting.inference_prompt(ROW)
    assert prompt.endswith("### Response\n")
    assert prompting.format_prompt(ROW) == prompt + "Blue.\n"
    assert prompting.inference_prompt({"instruction": "x", "input": ""}).startswith(prompting.HEADER + "\n")


def test_a_row_without_a_field_is_refused_by_name():
    with pytest.raises(ValueError, match=r"row lacks \['output'\]; it has \['input', 'instruction'\]"):
        prompting.format_prompt({"instruction": "x", "input": ""})


def test_generate_pads_left_returns_new_text_only_and_restores(model_and_tokenizer, monkeypatch):
    model, tokenizer = model_and_tokenizer
    assert tokenizer.padding_side == "right"
    seen = {}
    original = model.generate

    def spy(**kw):
        seen["input_ids"], seen["side"] = kw["input_ids"], tokenizer.padding_side
        seen["output"] = original(**kw)
        return seen["output"]

    monkeypatch.setattr(model, "generate", spy)
    prompts = [prompting.inference_prompt(ROW), "Hi"]
    texts = prompting.generate(model, tokenizer, prompts, max_new_tokens=5)
    assert seen["side"] == "left" and tokenizer.padding_side == "right"
    ids = seen["input_ids"]
    assert ids[1, 0] == tokenizer.pad_token_id and (ids[:, -1] != tokenizer.pad_token_id).all()
    new = seen["output"][:, ids.shape[1]:]
    assert new.shape[1] == 5
    assert len(texts) == 2 and all(isinstance(t, str) and "### Response" not in t for t in texts)


def greedy(model, tokenizer, prompt: str, n: int) -> str:
    """Decode n tokens by hand: the most likely next token each time, stopping at <eos>."""
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    new = []
    with torch.no_grad():
        for _ in range(n):
            token = model(input_ids=ids).logits[0, -1].argmax().item()
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return tokenizer.decode(new)


def test_generate_is_greedy_by_default(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = [prompting.inference_prompt(ROW), prompting.inference_prompt({"instruction": "Say hi.", "input": ""})]
    torch.manual_seed(0)  # sampling would depend on it; greedy decoding does not
    texts = prompting.generate(model, tokenizer, prompts, max_new_tokens=6)
    assert texts == [greedy(model, tokenizer, p, 6) for p in prompts]
    assert texts[0]  # something was generated


def test_generate_leaves_no_special_tokens_in_the_text(model_and_tokenizer, monkeypatch):
    model, tokenizer = model_and_tokenizer
    original = model.generate
    pad = tokenizer.convert_tokens_to_ids("<pad>")

    def ends_with_specials(**kw):  # a finished answer followed by <eos>, then padding up to the batch's longest
        out = original(**kw)
        return torch.cat([out, torch.tensor([[tokenizer.eos_token_id, pad, pad]] * len(out))], dim=1)

    monkeypatch.setattr(model, "generate", ends_with_specials)
    prompt = prompting.inference_prompt(ROW)
    texts = prompting.generate(model, tokenizer, [prompt], max_new_tokens=4)
    assert texts == [greedy(model, tokenizer, prompt, 4)]
    assert not any(special in texts[0] for special in ("<eos>", "<pad>", "<bos>"))


def test_a_prompt_longer_than_the_context_is_cut_from_the_left_and_said(model_and_tokenizer, monkeypatch, capsys):
    model, tokenizer = model_and_tokenizer
    context = model.config.max_position_embeddings
    long = prompting.inference_prompt({"instruction": "Summarise. " + "The sky is blue today. " * 200, "input": ""})
    full = tokenizer(long).input_ids
    assert len(full) > context
    seen = {}
    original = model.generate
    monkeypatch.setattr(model, "generate", lambda **kw: seen.update(kw) or original(**kw))
    texts = prompting.generate(model, tokenizer, ["Hi", long], max_new_tokens=4)
    assert len(texts) == 2
    fed = seen["input_ids"][1]
    assert len(fed) == context - 4 and fed.tolist()[1:] == full[-(context - 5):]  # <bos>, then the prompt's end
    out = capsys.readouterr().out
    assert out == (f"prompt 2 of 2: {len(full):,} tokens, cut to its last {context - 4:,} (the model's context is "
                   f"{context:,} tokens, 4 kept for the answer).\n")
    assert tokenizer.truncation_side == "right" and tokenizer.padding_side == "right"


def test_generate_restores_padding_side_and_mode_after_an_error(model_and_tokenizer, monkeypatch):
    model, tokenizer = model_and_tokenizer
    model.train()

    def fail(**kw):
        raise RuntimeError("generation failed")

    monkeypatch.setattr(model, "generate", fail)
    with pytest.raises(RuntimeError, match="generation failed"):
        prompting.generate(model, tokenizer, "Hi", max_new_tokens=2)
    assert tokenizer.padding_side == "right" and model.training
    model.eval()


def test_generate_takes_one_string_and_refuses_other_types(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert len(prompting.generate(model, tokenizer, "Hi", max_new_tokens=2)) == 1
    with pytest.raises(TypeError, match="prompts must be"):
        prompting.generate(model, tokenizer, [ROW])
