"""The post's prompt template, and batched generation that returns only the new text."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

from helpers.runtime import cpu_threads

HEADER = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
# One field per line and no indentation: the model sees every space, so the template is written for it.
INFERENCE_TEMPLATE = HEADER + "\n### Instruction\n{instruction}\n### Input\n{input}\n### Response\n"
TEMPLATE = INFERENCE_TEMPLATE + "{output}\n"


def _fields(row: Mapping, names: tuple[str, ...]) -> dict:
    """Return row's fields `names`, raising a TypeError/ValueError that names any that are missing or not text."""
    if not isinstance(row, Mapping):
        raise TypeError(
            f"row must be a dict (or one row of a Dataset, e.g. dataset[0]) with the keys {list(names)}, "
            f"got {type(row).__name__} {row!r:.80}."
        )
    missing = [n for n in names if n not in row]
    if missing:
        raise ValueError(f"row lacks {missing}; it has {sorted(row)}. Give it the keys {list(names)}.")
    for n in names:
        if not isinstance(row[n], str):
            raise TypeError(f"row[{n!r}] must be a string, got {row[n]!r}: use '' for an empty field.")
    return {n: row[n] for n in names}


def format_prompt(row: dict) -> str:
    """Return the training text of one row: the post's template with instruction, input and output."""
    return TEMPLATE.format_map(_fields(row, ("instruction", "input", "output")))


def inference_prompt(row: dict) -> str:
    """Return the prompt for generation: the template up to and including the "### Response" line."""
    return INFERENCE_TEMPLATE.format_map(_fields(row, ("instruction", "input")))


# generate() builds these itself, so a learner's own would clash with (or silently override) its arguments.
CLASHES = {
    "max_length": "max_new_tokens (the length of the answer alone)",
    "input_ids": "prompts (the text)",
    "attention_mask": "prompts (the text)",
    "inputs": "prompts (the text)",
}


def check_tokenizer(tokenizer, needs: str = "padding_side") -> None:
    """Raise a TypeError unless tokenizer is a loaded tokenizer (callable, with the attribute `needs`)."""
    if isinstance(tokenizer, str) or not callable(tokenizer) or not hasattr(tokenizer, needs):
        raise TypeError(f"tokenizer must be a loaded tokenizer (loading.load_tokenizer(name)), got {tokenizer!r:.80}.")


def _check_generate_args(model, tokenizer, prompts, max_new_tokens, kw: dict) -> list[str]:
    """Return prompts as a list after checking every argument of generate, naming the first bad one."""
    if not callable(getattr(model, "generate", None)):
        raise TypeError(f"model must be a loaded model (loading.load_model or trainer.model), got {model!r:.80}.")
    check_tokenizer(tokenizer)
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise TypeError(
            "prompts must be a string or a non-empty list of strings (see inference_prompt), "
            f"got {prompts!r:.80}."
        )
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a whole number of tokens of at least 1, got {max_new_tokens!r}.")
    clashes = sorted(set(kw) & set(CLASHES))
    if clashes:
        raise TypeError(f"generate got {clashes}, which it sets itself: pass {CLASHES[clashes[0]]} instead.")
    return list(prompts)


@contextmanager
def left_padded(model, tokenizer) -> Iterator[None]:
    """Pad and truncate on the left, in eval mode without gradients; restore the tokenizer and the model after."""
    sides, was_training = (tokenizer.padding_side, tokenizer.truncation_side), model.training
    # Left padding puts every text's last token at the end, right where the next token comes; left truncation
    # keeps the end of a long prompt, where its "### Response" line is.
    tokenizer.padding_side = tokenizer.truncation_side = "left"
    model.eval()
    try:
        with torch.no_grad(), cpu_threads(model.device):
            yield
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = sides
        model.train(was_training)


def generate(model, tokenizer, prompts: str | list[str], max_new_tokens: int = 64, **kw) -> list[str]:
    """Generate for a batch of prompts (greedy unless kw says otherwise); return only the new text of each."""
    prompts = _check_generate_args(model, tokenizer, prompts, max_new_tokens, kw)
    context = getattr(model.config, "max_position_embeddings", None) or 10**9
    if max_new_tokens >= context:
        raise ValueError(
            f"max_new_tokens must be below the model's context of {context:,} tokens, got {max_new_tokens!r}."
        )
    room = context - max_new_tokens
    for i, ids in enumerate(tokenizer(prompts).input_ids, 1):
        if len(ids) > room:
            print(f"prompt {i} of {len(prompts)}: {len(ids):,} tokens, cut to its last {room:,} (the model's "
                  f"context is {context:,} tokens, {max_new_tokens} kept for the answer).")
    with left_padded(model, tokenizer):
        batch = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=room)
        batch = batch.to(model.device)
        settings = {"do_sample": False, "use_cache": True, "pad_token_id": tokenizer.pad_token_id, **kw}
        out = model.generate(**batch, max_new_tokens=max_new_tokens, **settings)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
