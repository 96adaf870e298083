"""Measure what notebook 05's smoke run teaches the tiny Gemma, the way the notebook trains and scores it.

Usage: python scripts/smoke_lesson.py [dolly | dolly-ko ...] [--seeds 42,1,2]   (both data sets, seed 42 by default)
Prints, before and after the 30 smoke steps on the 8 held-out rows: how the greedy answers ended, the content
measure (evaluate.rouge_l, which sees Hangul), P(<eos>) after the reference answer and elsewhere, and the times.
"""
import sys
import tempfile
import time

import torch

from helpers import data, evaluate, loading, prompting, training
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
# Notebook 05's smoke settings (its "Choose your run" and smoke cells).
EVAL_SIZE, SCORE, MAX_NEW_TOKENS = 8, 8, 40


def _scores(model, tokenizer, scored, prompts: list[str]) -> dict:
    """Return how the answers ended, their mean content score and P(<eos>) at the reference's end and elsewhere."""
    texts, endings = evaluate.answers(model, tokenizer, prompts, MAX_NEW_TOKENS)
    result = evaluate.summary(texts, endings, scored["output"])
    examples = [prompting.format_prompt(row) for row in scored]
    eos = evaluate.eos_places(model, tokenizer, prompts, examples)
    return result | {f"P(<eos>) {where}": sum(p) / len(p) for where, p in eos.items()} | {"texts": texts}


def measure(dataset: str = "dolly", tiny_dir: str | None = None, output_dir: str | None = None, seed: int = 42) -> dict:
    """Train notebook 05's smoke run on `dataset` (training seed `seed`) and return its before/after scores and time."""
    tiny_dir = tiny_dir or loading.tiny_gemma()
    rows = data.load_alpaca(SMOKE, dataset=dataset)
    parts = data.split(rows, eval_size=min(EVAL_SIZE, max(1, len(rows) // 5)), seed=0)
    scored = parts["test"].select(range(min(SCORE, len(parts["test"]))))
    model, tokenizer = loading.load_model(tiny_dir, SMOKE), loading.load_tokenizer(tiny_dir)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = training.make_trainer(model, tokenizer, parts["train"], parts["test"], preset="smoke", rt=SMOKE,
                                        output_dir=output_dir or scratch,
                                        peft_config=training.lora_config(**training.SMOKE_LORA),
                                        per_device_eval_batch_size=2, disable_tqdm=True, seed=seed)
        prompts = [prompting.inference_prompt(row) for row in scored]
        before = _scores(trainer.model, tokenizer, scored, prompts)
        start = time.perf_counter()
        training.train(trainer)
        seconds = time.perf_counter() - start
        after = _scores(trainer.model, tokenizer, scored, prompts)
    return {"before": before, "after": after, "train seconds": seconds, "references": list(scored["output"])}


def report(dataset: str, result: dict) -> None:
    """Print one data set's before/after table and the first answers."""
    print(f"== {dataset}: trained in {result['train seconds']:.1f} s")
    keys = [k for k in result["before"] if k != "texts"]
    for key in keys:
        b, a = result["before"][key], result["after"][key]
        print(f"{key:28s}" + "".join(f"{v:>10.4f}" if isinstance(v, float) else f"{v:>10d}" for v in (b, a)))
    for b, a, ref in list(zip(result["before"]["texts"], result["after"]["texts"], result["references"]))[:8]:
        print(f"  before: {b[:90]!r}\n  after:  {a[:90]!r}\n  ref:    {ref[:90]!r}")


if __name__ == "__main__":
    start = time.perf_counter()
    tiny = loading.tiny_gemma()
    print(f"tiny model ready in {time.perf_counter() - start:.1f} s: {tiny}")
    args = sys.argv[1:]
    seeds = [42]
    if "--seeds" in args:
        at = args.index("--seeds")
        seeds, args = [int(s) for s in args[at + 1].split(",")], args[:at] + args[at + 2 :]
    for name in args or ["dolly", "dolly-ko"]:
        for seed in seeds:
            print(f"-- training seed {seed}")
            report(name, measure(name, tiny, seed=seed))
