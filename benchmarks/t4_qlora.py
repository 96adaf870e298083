"""The T4 run measured: a Gemma-2B-shaped QLoRA benchmark on any CUDA GPU, under a T4's memory.

A model with Gemma-2B's exact shapes and random weights costs the same memory and time per step
as the real one, so the course's promise (notebook 05 fits and finishes on a free T4) can be
measured without the Hub. On a CUDA GPU this script:
  1. builds GemmaForCausalLM with Gemma-2B's config and random weights (no download), saves it,
     and loads it through helpers.loading.load_model (NF4 + double quantization, fp16 compute);
  2. caps usable GPU memory at a T4's 15 GB (torch.cuda.set_per_process_memory_fraction);
  3. trains the post's LoRA with helpers.training's SFTTrainer path, once per preset ("t4", the
     post's settings, and "t4_fast", ours), timing N steps after a warm-up;
  4. writes benchmarks/results/<gpu>.json and .md: weight bytes measured vs predicted, peak
     memory, seconds per step, tokens per second, and a labelled projection for one epoch of
     dolly-15k on a T4.
Without a GPU it prints one line and exits 0. `--dry-run` runs the same path on the CPU with the
tiny model and a couple of steps (what the tests use); it never writes into benchmarks/results.

Usage: python benchmarks/t4_qlora.py [--steps 20] [--warmup 3] [--dry-run --out DIR]
"""
import argparse
import dataclasses
import datetime
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from datasets import concatenate_datasets
from transformers import AutoModelForCausalLM, GemmaConfig, GemmaForCausalLM, TrainerCallback

from helpers import data, loading, memory, prompting, runtime, training

RESULTS = Path(__file__).resolve().parent / "results"
T4_MEMORY_GB = 15.0
T4_FP16_TFLOPS = 65.0  # NVIDIA T4 datasheet: 65 TFLOPS peak fp16 (tensor cores)
# Dense fp16/bf16 tensor-core peaks from NVIDIA's datasheets, to turn a measured step time into
# a utilisation that can be scaled to a T4. An unknown GPU gets no projection.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "T4": 65.0}
DOLLY_ROWS = 15_011
# Gemma's tokenizer cannot be fetched here; English prose averages about 4 characters per token
# with large vocabularies, which is good enough for a labelled projection.
CHARS_PER_TOKEN = 4.0


class StepTimer(TrainerCallback):
    """Record the wall time of every optimizer step (CUDA synchronised)."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - self._start)


def build_model_folder(config: GemmaConfig, folder: Path) -> None:
    """Save a random-weight model of `config` in bf16, with the tiny model's tokenizer, to folder."""
    torch.manual_seed(0)
    # Initialising 2.5 billion weights is quick on the GPU and slow on the CPU.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    loading.load_tokenizer(loading.tiny_gemma()).save_pretrained(folder)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def parameter_count(config) -> int:
    """Count a config's parameters on the meta device, without allocating them."""
    with torch.device("meta"):
        return sum(p.numel() for p in GemmaForCausalLM(config).parameters())


def peak_tflops(gpu_name: str) -> float | None:
    """Return the dense fp16 peak of a known GPU, matched by name."""
    return next((v for k, v in PEAK_TFLOPS.items() if re.search(rf"\b{k}\b", gpu_name)), None)


def run_preset(model, tokenizer, train_rows, preset: str, rt, steps: int, warmup: int, out: Path) -> dict:
    """Train `steps` timed steps of a preset after `warmup` and return its measurements."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    timer = StepTimer()
    trainer = training.make_trainer(model, tokenizer, train_rows, preset=preset, rt=rt,
                                    output_dir=out / preset, max_steps=warmup + steps,
                                    save_strategy="no", logging_steps=max(1, warmup + steps))
    trainer.add_callback(timer)
    trainer.train()
    args = trainer.args
    timed = timer.seconds[warmup:]
    seconds = sorted(timed)[len(timed) // 2]
    tokens = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.max_length
    result = dict(preset=preset, batch=args.per_device_train_batch_size,
                  grad_accum=args.gradient_accumulation_steps, max_length=args.max_length,
                  gradient_checkpointing=bool(args.activation_checkpointing),
                  optim=getattr(args.optim, "value", str(args.optim)),
                  seconds_per_step=round(seconds, 4), tokens_per_step=tokens,
                  tokens_per_second=round(tokens / seconds, 1))
    if torch.cuda.is_available():
        result["peak_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        result["peak_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 2)
    # Take the adapter and gradient checkpointing off again, so the next preset starts from the same model.
    trainer.model.unload()
    model.gradient_checkpointing_disable()
    return result


def project_epoch(result: dict, n_params: int, epoch_tokens: float, gpu_peak: float | None) -> dict | None:
    """Project one dolly-15k epoch on a T4 from the measured FLOP rate (a projection, not a measurement)."""
    if gpu_peak is None:
        return None
    # Frozen 4-bit base: forward 2N, backward to the activations 2N, plus 2N more for recomputation
    # when gradient checkpointing is on; the LoRA weights are too small to count.
    flops_per_token = (6 if result["gradient_checkpointing"] else 4) * n_params
    utilisation = flops_per_token * result["tokens_per_second"] / (gpu_peak * 1e12)
    t4_tokens_per_second = utilisation * T4_FP16_TFLOPS * 1e12 / flops_per_token
    return dict(label="PROJECTION, not measured on a T4", utilisation=round(utilisation, 4),
                t4_tokens_per_second=round(t4_tokens_per_second, 1),
                epoch_tokens=int(epoch_tokens), t4_epoch_hours=round(epoch_tokens / t4_tokens_per_second / 3600, 2))


def markdown(report: dict) -> str:
    """Render a report as the markdown table the README and notebook 05 show."""
    lines = [f"Measured on {report['gpu']} on {report['date']} (memory capped at {T4_MEMORY_GB} GB, fp16 compute).",
             f"Weights: measured {report['weights_measured_bytes']:,} B, predicted {report['weights_predicted_bytes']:,} B.",
             "", "| preset | batch x accum | checkpointing | s/step | tokens/s | peak alloc GB | peak reserved GB "
             "| T4 epoch (projection) |", "|---|---|---|---|---|---|---|---|"]
    for r in report["presets"]:
        p = r.get("projection")
        lines.append(f"| {r['preset']} | {r['batch']} x {r['grad_accum']} | {r['gradient_checkpointing']} | "
                     f"{r['seconds_per_step']} | {r['tokens_per_second']} | {r.get('peak_allocated_gb', '-')} | "
                     f"{r.get('peak_reserved_gb', '-')} | {p['t4_epoch_hours'] if p else '-'} h |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Run the benchmark (or its CPU dry run) and write the results; return an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="tiny model on the CPU, for the tests")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("No CUDA GPU here: the T4 benchmark needs one, so nothing was measured.")
        return 0
    if args.dry_run and args.out.resolve() == RESULTS.resolve():
        parser.error("--dry-run needs --out DIR: its figures are not a measurement and never go to results/")

    rt = runtime.detect()
    if args.dry_run:
        rt = dataclasses.replace(rt, mode="smoke", dtype=torch.float32, device_map={"": "cpu"})
    else:
        # A T4 has no bf16: compute in fp16 whatever this GPU could do.
        rt = dataclasses.replace(rt, mode="full", dtype=torch.float16, device_map={"": 0})

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.dry_run:
            folder = Path(loading.tiny_gemma())
        else:
            folder = scratch / "gemma-2b-shaped"
            build_model_folder(loading.gemma_2b_config(), folder)
            # From here on, keep to a T4's memory.
            total_gb = torch.cuda.get_device_properties(0).total_memory / 1e9
            torch.cuda.set_per_process_memory_fraction(min(1.0, T4_MEMORY_GB / total_gb))
        model = loading.load_model(str(folder), rt)
        tokenizer = loading.load_tokenizer(str(folder))
        rows = data.load_alpaca(dataclasses.replace(rt, mode="smoke"))
        # Enough packed 512-token blocks for warm-up plus the timed steps at any preset's batch.
        train_rows = concatenate_datasets([rows] * (4 if args.dry_run else 40))
        presets = ["smoke"] if args.dry_run else ["t4", "t4_fast"]
        print(f"{rt.gpu_name or 'CPU'}: timing {presets} for {args.steps} steps after {args.warmup} warm-up steps")
        results = [run_preset(model, tokenizer, train_rows, p, rt, args.steps, args.warmup, scratch)
                   for p in presets]

    # Whole training texts, template included: that is what gets packed into 512-token blocks.
    chars = sum(len(prompting.format_prompt(r)) for r in rows) / len(rows)
    epoch_tokens = chars / CHARS_PER_TOKEN * DOLLY_ROWS
    gpu = rt.gpu_name or "cpu-dry-run"
    config = model.config
    n_params = parameter_count(config)
    for r in results:
        r["projection"] = project_epoch(r, n_params, epoch_tokens, peak_tflops(gpu))
    report = dict(gpu=gpu, date=datetime.date.today().isoformat(), torch=torch.__version__,
                  weights_measured_bytes=memory.measured_bytes(model),
                  weights_predicted_bytes=memory.model_bytes(config, quant="nf4", double_quant=True,
                                                           dtype=loading.storage_dtype(rt)),
                  presets=results)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", gpu).strip("_")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
