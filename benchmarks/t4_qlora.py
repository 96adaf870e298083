"""The T4 run measured: a Gemma-2B-shaped QLoRA benchmark of every t4 variant, on any CUDA GPU, under a T4's memory.

A model with Gemma-2B's exact shapes and random weights costs the same memory and time per step
as the real one, so the course's promise (notebook 05 fits and finishes on a free T4) can be
measured without the Hub. On a CUDA GPU this script:
  1. builds GemmaForCausalLM with Gemma-2B's config and random weights (no download), saves it,
     and loads it through helpers.loading.load_model (NF4 + double quantization, fp16 compute);
  2. caps usable GPU memory at a T4's 15 GB (torch.cuda.set_per_process_memory_fraction);
  3. trains the post's LoRA with helpers.training's SFTTrainer path once per variant (VARIANTS: the post's
     "t4", "t4_fast", micro-batch 4 x accumulation 1 with and without activation checkpointing, SDPA
     against eager attention, Liger's kernels), timing N steps after a warm-up, in one process on one model;
  4. picks as t4_fast the fastest variant whose peak reserved memory stays under 12 GB and whose loss
     after the timed steps matches the post's settings' (choose_t4_fast);
  5. writes benchmarks/results/<gpu>_<date>.json and .md: every variant side by side (s/step, tokens/s,
     peak allocated and reserved, loss), the choice, the environment, and helpers.estimate's T4 range.
Without a GPU it prints one line and exits 0. `--dry-run` runs every variant's code path on the CPU
with the tiny model and a couple of steps (what the tests use; Liger is reported as skipped there) and
never writes into benchmarks/results.

`--variants t4,t4_fast,...` times only the named variants (in VARIANTS' order); `--model DIR` loads a model folder
already saved with Gemma-2B's shapes (the GPU check's stand-in, scripts/gpu_check.py) instead of building one.

Usage: pip install -r benchmarks/requirements.txt; python benchmarks/t4_qlora.py [--steps 20] [--warmup 3]
       [--variants NAME,NAME] [--model DIR] [--out DIR] [--dry-run --out DIR]
"""
import argparse
import dataclasses
import datetime
import importlib.util
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from datasets import concatenate_datasets
from transformers import AutoModelForCausalLM, GemmaConfig, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from helpers import data, estimate, loading, memory, runtime, setup_check, training

RESULTS = Path(__file__).resolve().parent / "results"
T4_MEMORY_GB = 15.0
# A variant may become t4_fast only below this peak (reserved) memory: 3 GB of headroom on a 15 GB T4.
MEMORY_LIMIT_GB = 12.0
# Every variant trains the same blocks with the same math; only rounding differs (kernels, summation order, fp16).
# A loss after the timed steps more than this far (relative) from the post's settings' means a variant trains
# something else (a broken kernel), and it is refused.
LOSS_TOLERANCE = 0.01
REFERENCE = "t4"
# (variant, preset of helpers.training.PRESETS, attention). Liger patches the model's modules in place, so its
# variants run last, after every plain one has been measured on the unpatched model.
VARIANTS = [
    ("t4", "t4", "sdpa"),
    ("t4_fast", "t4_fast", "sdpa"),
    ("t4_b4", "t4_b4", "sdpa"),
    ("t4_b4_fast", "t4_b4_fast", "sdpa"),
    ("t4 eager", "t4", "eager"),
    ("t4_fast eager", "t4_fast", "eager"),
    ("t4_liger", "t4_liger", "sdpa"),
    ("t4_fast_liger", "t4_fast_liger", "sdpa"),
    ("t4_b4_fast_liger", "t4_b4_fast_liger", "sdpa"),
]
PACKAGES = ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets", "liger-kernel", "triton")


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


def skip_reason(preset: str) -> str | None:
    """Return why a variant cannot run here (None when it can)."""
    if not training.PRESETS[preset].get("use_liger_kernel"):
        return None
    if not torch.cuda.is_available():
        return "liger-kernel's kernels are Triton kernels, which need a CUDA GPU; this run has none"
    if importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel is not installed (pip install -r benchmarks/requirements.txt)"
    return None


def run_variant(model, tokenizer, train_rows, variant: tuple[str, str, str], rt, steps: int, warmup: int,
                out: Path, **overrides) -> dict:
    """Train `steps` timed steps of a variant after `warmup` and return its measurements (or why it did not run)."""
    name, preset, attention = variant
    result = dict(variant=name, preset=preset, attention=attention)
    reason = skip_reason(preset)
    if reason:
        return {**result, "skipped": reason}
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model.set_attn_implementation(attention)
    timer, trainer = StepTimer(), None
    try:
        trainer = training.make_trainer(model, tokenizer, train_rows, preset=preset, rt=rt,
                                        output_dir=out / re.sub(r"\W+", "_", name), max_steps=warmup + steps,
                                        save_strategy="no", logging_steps=1, disable_tqdm=True, **overrides)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(timer)
        with runtime.cpu_threads(trainer.args.device):
            trainer.train()
    except Exception as e:  # noqa: BLE001 - out of memory or a Triton error on this GPU is a result, not the end
        return {**result, "failed": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    finally:
        # Take the adapter and gradient checkpointing off again, so the next variant starts from the same model.
        if trainer is not None and hasattr(trainer.model, "unload"):
            trainer.model.unload()
        model.gradient_checkpointing_disable()
    args = trainer.args
    timed = sorted(timer.seconds[warmup:])
    seconds = timed[len(timed) // 2]
    tokens = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.max_length
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result.update(batch=args.per_device_train_batch_size, grad_accum=args.gradient_accumulation_steps,
                  max_length=args.max_length, gradient_checkpointing=bool(args.activation_checkpointing),
                  liger=bool(args.use_liger_kernel), optim=getattr(args.optim, "value", str(args.optim)),
                  seconds_per_step=round(seconds, 4), tokens_per_step=tokens,
                  tokens_per_second=round(tokens / seconds, 1), loss=round(losses[-1], 4),
                  loss_timed_mean=round(sum(losses[warmup:]) / len(losses[warmup:]), 4))
    if torch.cuda.is_available():
        result["peak_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        result["peak_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 2)
    return result


def choose_t4_fast(variants: list[dict], reference: str = REFERENCE, memory_limit_gb: float = MEMORY_LIMIT_GB,
                   loss_tolerance: float = LOSS_TOLERANCE) -> dict:
    """Pick the fastest variant under the memory limit whose loss matches the reference's; say why others lose."""
    ref = next((v for v in variants if v["variant"] == reference and "loss" in v), None)
    refused, eligible = {}, []
    for v in variants:
        name = v["variant"]
        if "skipped" in v or "failed" in v:
            refused[name] = v.get("skipped") or v.get("failed")
        elif v.get("peak_reserved_gb") is None:
            refused[name] = "no GPU memory measured (not a GPU run)"
        elif v["peak_reserved_gb"] >= memory_limit_gb:
            refused[name] = f"peak {v['peak_reserved_gb']} GB reserved, not under {memory_limit_gb} GB"
        elif ref is None:
            refused[name] = f"the reference {reference!r} was not measured, so its loss cannot be compared"
        elif abs(v["loss"] - ref["loss"]) > loss_tolerance * abs(ref["loss"]):
            refused[name] = f"loss {v['loss']} against {ref['loss']} for {reference!r}: beyond {loss_tolerance:.0%}"
        else:
            eligible.append(v)
    best = max(eligible, key=lambda v: v["tokens_per_second"], default=None)
    return dict(variant=best and best["variant"], preset=best and best["preset"],
                attention=best and best["attention"],
                speedup=best and ref and round(best["tokens_per_second"] / ref["tokens_per_second"], 2),
                rule=f"the most tokens/s among variants with peak reserved memory under {memory_limit_gb} GB and a "
                     f"loss within {loss_tolerance:.0%} of {reference!r}'s after the timed steps",
                refused=refused)


def environment(rt) -> dict:
    """Return what the figures were measured with: GPU, driver, CUDA, Python and the library versions."""
    versions = {name: setup_check.installed_version(name) for name in PACKAGES}
    env = dict(gpu=rt.gpu_name, compute_capability=rt.compute_capability, driver=None, cuda=torch.version.cuda,
               python=platform.python_version(), versions=versions)
    if torch.cuda.is_available():
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=False)
        env["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    return env


def markdown(report: dict) -> str:
    """Render a report as the markdown tables benchmarks/README.md shows."""
    env, choice = report["environment"], report["t4_fast_choice"]
    where = (f"Measured on {report['gpu']} on {report['date']} (memory capped at {T4_MEMORY_GB} GB, fp16 compute)"
             if report["environment"]["gpu"] else f"A CPU dry run on {report['date']} (tiny model, not a measurement)")
    lines = [f"{where}, {report['steps']} timed steps after {report['warmup']} warm-up steps, median step time.",
             f"Driver {env['driver']}, CUDA {env['cuda']}, "
             + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v) + ".",
             (f"Weights: measured {report['weights_measured_bytes']:,} B, "
              f"predicted {report['weights_predicted_bytes']:,} B."), "",
             ("| variant | batch x accum | checkpointing | attention | Liger | s/step | tokens/s | peak alloc GB "
              "| peak reserved GB | loss | T4 estimate |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["variants"]:
        if "seconds_per_step" not in r:
            why = r.get("skipped") or r.get("failed")
            lines.append(f"| {r['variant']} | | | {r['attention']} | | | | | | | {why} |")
            continue
        e = r["t4_estimate"]
        lines.append(f"| {r['variant']} | {r['batch']} x {r['grad_accum']} | {r['gradient_checkpointing']} | "
                     f"{r['attention']} | {r['liger']} | {r['seconds_per_step']} | {r['tokens_per_second']} | "
                     f"{r.get('peak_allocated_gb', '-')} | {r.get('peak_reserved_gb', '-')} | {r['loss']} | "
                     f"{e['low_hours']}-{e['high_hours']} h |")
    lines += ["", f"t4_fast choice ({choice['rule']}): {choice['variant'] or 'none'}"
              + (f", {choice['speedup']}x the tokens/s of {REFERENCE!r}" if choice["speedup"] else "") + "."]
    lines += [f"- {name}: {why}" for name, why in choice["refused"].items()]
    lines += ["", (f"T4 estimate ({report['estimate_label']}): one dolly-15k epoch of {report['estimate_blocks']:,} "
                   "blocks; assumptions of the first row:")] + [f"- {a}" for a in report["estimate_assumptions"]]
    return "\n".join(lines) + "\n"


def pick_variants(names: str | None) -> list[tuple[str, str, str]]:
    """Return the VARIANTS named in a comma-separated list (all of them for None), in VARIANTS' order."""
    if names is None:
        return list(VARIANTS)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = [name for name, _, _ in VARIANTS]
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise ValueError(f"--variants takes names of {known}, separated by commas; unknown: {unknown or names!r}")
    return [v for v in VARIANTS if v[0] in wanted]


def main(argv: list[str]) -> int:
    """Run the benchmark (or its CPU dry run) and write the results; return an exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="tiny model on the CPU, for the tests")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--variants", help="comma-separated variant names (default: all), e.g. t4,t4_fast,t4_b4")
    parser.add_argument("--model", type=Path, help="a saved Gemma-2B-shaped model folder to load instead of building")
    args = parser.parse_args(argv)
    try:
        variants = pick_variants(args.variants)
    except ValueError as e:
        parser.error(str(e))
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
        if args.model:
            folder = args.model
        elif args.dry_run:
            folder = Path(loading.tiny_gemma())
        else:
            folder = scratch / "gemma-2b-shaped"
            build_model_folder(loading.gemma_2b_config(), folder)
        if not args.dry_run:
            # From here on, keep to a T4's memory.
            total_gb = torch.cuda.get_device_properties(0).total_memory / 1e9
            torch.cuda.set_per_process_memory_fraction(min(1.0, T4_MEMORY_GB / total_gb))
        model = loading.load_model(str(folder), rt)
        tokenizer = loading.load_tokenizer(str(folder))
        rows = data.load_alpaca(dataclasses.replace(rt, mode="smoke"))
        # Enough packed 512-token blocks for warm-up plus the timed steps at 4 blocks per step.
        train_rows = concatenate_datasets([rows] * (4 if args.dry_run else 40))
        print(f"{rt.gpu_name or 'CPU'}: timing {len(variants)} variants for {args.steps} steps after "
              f"{args.warmup} warm-up steps", flush=True)
        # The dry run only walks every variant's code path: short blocks keep it quick on a CPU.
        overrides = dict(max_length=128) if args.dry_run else {}
        results = []
        for variant in variants:
            results.append(run_variant(model, tokenizer, train_rows, variant, rt, args.steps, args.warmup, scratch,
                                       **overrides))
            print(json.dumps(results[-1]), flush=True)

    blocks = estimate.dolly_blocks_assumed()
    for r in results:
        if "seconds_per_step" in r:
            e = estimate.t4_hours(blocks, r["preset"])
            r["t4_estimate"] = dict(low_hours=e["low_hours"], high_hours=e["high_hours"])
    first = estimate.t4_hours(blocks, REFERENCE)
    gpu = rt.gpu_name or "cpu-dry-run"
    today = datetime.date.today().isoformat()
    measured = [r for r in results if "seconds_per_step" in r and r["attention"] == "sdpa"]
    report = dict(gpu=gpu, date=today, torch=torch.__version__, steps=args.steps, warmup=args.warmup,
                  environment=environment(rt),
                  weights_measured_bytes=memory.measured_bytes(model),
                  weights_predicted_bytes=memory.model_bytes(model.config, quant="nf4", double_quant=True,
                                                           dtype=loading.storage_dtype(rt)),
                  variants=results,
                  # One row per preset, as notebook 05's pre-flight reads them.
                  presets=[r for r in measured if r["variant"] == r["preset"]],
                  t4_fast_choice=choose_t4_fast(results),
                  estimate_label=first["label"], estimate_blocks=blocks, estimate_assumptions=first["assumptions"])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", gpu).strip("_") + "_" + today
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
