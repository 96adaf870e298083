"""The post's template, the inference prompt, and batched generation with left padding."""

import pytest
import torch

from helpers import loading, prompting
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
ROW = {"instruction": "Name a colour.", "category": "open_qa", "input": "Think of the sky.", "output": "Blue."}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return loading.tiny_gemma(cache_dir=tmp_path_factory.getbasetemp() / "tiny-cache")


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
    assert texts == tokenizer.batch_decode(new, skip_special_tokens=True)
    assert all(isinstance(t, str) and "### Response" not in t for t in texts)


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
