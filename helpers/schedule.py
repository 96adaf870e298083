"""The post's learning-rate schedule: the steps the Trainer planned from trl 0.7's row count, and the steps it ran.

trl 0.7.x's `ConstantLengthDataset.__len__` returns the number of *rows* (`len(self.dataset)`, trl/trainer/utils.py),
not of packed blocks. The Trainer of early 2024 (transformers 4.38, `Trainer._inner_training_loop`) planned
`len(dataloader) // gradient_accumulation_steps` optimizer steps from it, set the warmup to
`ceil(warmup_ratio * planned)` (`TrainingArguments.get_warmup_steps`) and the cosine over all planned steps
(`get_cosine_schedule_with_warmup`). With `max_steps=-1` trl made the dataset finite, so the epoch ended when the
blocks ran out. Today's trl packs into a real dataset of blocks, and transformers 5.24 plans
`ceil(len(dataloader) / gradient_accumulation_steps)` steps (`Trainer.set_initial_training_values`).
"""

import math


def _count(name: str, value: object, minimum: int = 1) -> int:
    """Return value when it is a whole number >= minimum, else raise a TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be {minimum} or more, got {value!r}.")
    return value


def cosine_lr(step: int, planned: int, warmup: int, peak: float = 1.0) -> float:
    """Return the learning rate after `step` scheduler steps: linear warmup, then a cosine from peak to 0 at planned."""
    if step < warmup:
        return peak * step / max(1, warmup)
    progress = (step - warmup) / max(1, planned - warmup)
    return peak * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def plan(rows: int, blocks: int, per_device: int = 2, accumulation: int = 2, warmup_ratio: float = 0.1,
         peak: float = 2e-4) -> dict:
    """Return the post's planned and real optimizer steps and LRs, and today's, for rows packed into blocks.

    Keys: "post planned", "post warmup", "post real" (steps), "post lr" (the LR of each real step, from the first),
    "today planned", "today warmup", "today lr", and "post final lr share" (the last real step's LR / peak).
    """
    rows, blocks = _count("rows", rows), _count("blocks", blocks)
    per_device, accumulation = _count("per_device", per_device), _count("accumulation", accumulation)
    if isinstance(warmup_ratio, bool) or not isinstance(warmup_ratio, (int, float)) or not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio must be a fraction from 0 to below 1 (the post's 0.1), got {warmup_ratio!r}.")
    # The post: the DataLoader's length came from the rows; the blocks it really yielded ended the epoch.
    post_planned = max(math.ceil(rows / per_device) // accumulation, 1)
    post_warmup = math.ceil(post_planned * warmup_ratio)
    # An optimizer step every `accumulation` micro-batches; a last, incomplete group never reached its step.
    post_real = min(math.ceil(blocks / per_device) // accumulation, post_planned)
    # Today: the blocks are the dataset, and a last, partial group of micro-batches still makes a step.
    today_planned = max(math.ceil(math.ceil(blocks / per_device) / accumulation), 1)
    today_warmup = math.ceil(today_planned * warmup_ratio)
    # The Trainer steps the scheduler after each optimizer step: step k (from 1) runs at the LR of k - 1.
    post_lr = [cosine_lr(k, post_planned, post_warmup, peak) for k in range(post_real)]
    today_lr = [cosine_lr(k, today_planned, today_warmup, peak) for k in range(today_planned)]
    return {"post planned": post_planned, "post warmup": post_warmup, "post real": post_real, "post lr": post_lr,
            "today planned": today_planned, "today warmup": today_warmup, "today lr": today_lr,
            "post final lr share": post_lr[-1] / peak if post_lr and peak else 0.0}


def post_blocks(token_counts: list[int], block_tokens: int = 512) -> int:
    """Return the blocks trl 0.7's ConstantLengthDataset cut from examples of these token counts (with <eos> added).

    It joined the examples (each followed by <eos>) and dropped the last, partial block. (It did so per buffer of
    about 1.9 M characters, so on dolly-15k it dropped a few more partial blocks: an upper bound by a handful.)
    """
    if not isinstance(token_counts, (list, tuple)) or not all(isinstance(n, int) and n >= 0 for n in token_counts):
        raise TypeError(f"token_counts must be a list of whole token counts, got {token_counts!r:.80}.")
    block_tokens = _count("block_tokens", block_tokens)
    return sum(n + 1 for n in token_counts) // block_tokens
