"""The post's prompt template, and batched generation that returns only the new text."""

import torch

from helpers.runtime import cpu_threads

HEADER = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
# One field per line and no indentation: the model sees every space, so the template is written for it.
INFERENCE_TEMPLATE = HEADER + "\n### Instruction\n{instruction}\n### Input\n{input}\n### Response\n"
TEMPLATE = INFERENCE_TEMPLATE + "{output}\n"


def _fields(row: dict, names: tuple[str, ...]) -> dict:
    """Return row's fields `names`, raising a ValueError that names any that are missing."""
    missing = [n for n in names if n not in row]
    if missing:
        raise ValueError(f"row lacks {missing}; it has {sorted(row)}. Give it the keys {list(names)}.")
    return {n: row[n] for n in names}


def format_prompt(row: dict) -> str:
    """Return the training text of one row: the post's template with instruction, input and output."""
    return TEMPLATE.format_map(_fields(row, ("instruction", "input", "output")))


def inference_prompt(row: dict) -> str:
    """Return the prompt for generation: the template up to and including the "### Response" line."""
    return INFERENCE_TEMPLATE.format_map(_fields(row, ("instruction", "input")))


def generate(model, tokenizer, prompts: str | list[str], max_new_tokens: int = 64, **kw) -> list[str]:
    """Generate for a batch of prompts (greedy unless kw says otherwise); return only the new text of each."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise TypeError("prompts must be a string or a non-empty list of strings (see inference_prompt).")
    padding_side, was_training = tokenizer.padding_side, model.training
    # Left padding puts every prompt's last token at the end, right where generation continues.
    tokenizer.padding_side = "left"
    model.eval()
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
        settings = {"do_sample": False, "use_cache": True, "pad_token_id": tokenizer.pad_token_id, **kw}
        with torch.no_grad(), cpu_threads(model.device):
            out = model.generate(**batch, max_new_tokens=max_new_tokens, **settings)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
