"""Notebook 05's run from a terminal: `python -m helpers.train` on one GPU, `accelerate launch` for one process per GPU.

Data parallelism, as accelerate and the Trainer do it: every process loads its own 4-bit copy of the model on its
own GPU, trains on its share of each optimizer step's blocks, and DistributedDataParallel averages the LoRA
gradients. Three things need care with a 4-bit, frozen base and activation checkpointing:
- non-reentrant checkpointing (POST_SETTINGS' use_reentrant=False): the reentrant kind runs each recomputed
  segment as a separate backward pass, which DDP sees as the same LoRA gradient becoming ready twice;
- ddp_find_unused_parameters=False: with the base frozen every trainable (LoRA) weight gets a gradient in every
  step, so the search for unused ones only costs a graph walk per step (and the Trainer turns it on for a peft model);
- under a distributed launch the Trainer counts one GPU per process, so the 4-bit model is wrapped once, by DDP
  (which all-reduces only the trainable LoRA gradients), never by a second nn.DataParallel over both GPUs.
"""

import argparse
import collections
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from accelerate import PartialState
from transformers import TrainerCallback

from helpers import auth, data, loading, runtime, training

ADAPTER_LINE = "adapter: "
PROGRESS_PREFIXES = ("step ", "training ", "resuming ", "starting ", "already ", ADAPTER_LINE)
# What notebook 05 holds out and saves by default, so a launched run is the notebook's run.
EVAL_SIZE, SMOKE_EVAL_SIZE, SAVE_EVERY = 200, 8, 100


def per_device_settings(preset: str, gpus: int) -> dict:
    """Return the batch and accumulation that keep a preset's optimizer step when split over `gpus` processes."""
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be a whole number of GPUs (1 or more), got {gpus!r}.")
    if preset not in training.PRESETS:
        raise ValueError(f"preset must be one of {sorted(training.PRESETS)}, got {preset!r}.")
    settings = {**training.POST_SETTINGS, **training.PRESETS[preset]}
    batch, accumulation = settings["per_device_train_batch_size"], settings["gradient_accumulation_steps"]
    per_step = batch * accumulation
    if per_step % gpus:
        usable = [str(n) for n in range(1, per_step + 1) if per_step % n == 0]
        choices = " or ".join(usable) if len(usable) < 3 else f"{', '.join(usable[:-1])} or {usable[-1]}"
        raise ValueError(
            f"preset {preset!r} takes {batch} x {accumulation} = {per_step} blocks per optimizer step, which {gpus} "
            f"GPUs cannot share evenly: use gpus={choices}, or a preset whose "
            f"batch x accumulation divides by {gpus}."
        )
    # Each GPU takes per_step / gpus blocks per step: as the largest micro-batch the preset itself runs (its memory),
    # accumulated over the rest. On 2 GPUs the post's 2 x 2 becomes 2 x 1 each, on 4 GPUs 1 x 1 each.
    share = per_step // gpus
    micro = max(n for n in range(1, batch + 1) if share % n == 0)
    return dict(per_device_train_batch_size=micro, gradient_accumulation_steps=share // micro)


class ProgressPrinter(TrainerCallback):
    """Print one short line per logged loss, from the main process only (notebooks show it as it comes)."""

    def __init__(self):
        self._start = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            seconds = time.perf_counter() - self._start
            print(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} ({seconds:.0f} s)", flush=True)


def run(preset: str | None = None, max_steps: int | None = None, data_limit: int | None = None,
        eval_size: float | None = None, output_dir: str | os.PathLike | None = None,
        dataset: str = "dolly", save_every: int = SAVE_EVERY) -> Path:
    """Train notebook 05's run in this process (one of several under accelerate launch); return the adapter folder."""
    data.check_dataset_name(dataset)
    rt = runtime.detect()
    # Smoke mode trains on the CPU (use_cpu=True): the processes must meet over gloo from the start, as the Trainer's.
    state = PartialState(cpu=rt.mode == "smoke")
    if rt.mode == "full":
        # One whole 4-bit copy per process, on that process's own GPU.
        rt = dataclasses.replace(rt, device_map={"": state.local_process_index})
    # As in notebook 05: smoke mode trains the tiny model's preset, whatever preset says.
    preset = (preset or "t4") if rt.mode == "full" else "smoke"
    eval_size = eval_size or (EVAL_SIZE if rt.mode == "full" else SMOKE_EVAL_SIZE)
    overrides = dict(per_device_eval_batch_size=2, disable_tqdm=True,
                     **per_device_settings(preset, state.num_processes))
    if state.num_processes > 1:
        overrides["ddp_find_unused_parameters"] = False
    if rt.mode == "full":
        overrides.update(save_strategy="steps", save_steps=save_every)
    if max_steps:
        overrides["max_steps"] = max_steps

    # The main process downloads (or builds) first; the others then read its cache.
    with state.main_process_first():
        name = loading.model_name(rt)
        rows = data.load_alpaca(rt, limit=data_limit, dataset=dataset)
    parts = data.split(rows, eval_size=min(eval_size, max(1, len(rows) // 5)), seed=0)
    model = loading.load_model(name, rt)
    tokenizer = loading.load_tokenizer(name, padding_side="right")
    trainer = training.make_trainer(model, tokenizer, parts["train"], parts["test"], preset=preset, rt=rt,
                                    output_dir=output_dir,
                                    run_info={"DATA_LIMIT": data_limit, "EVAL_SIZE": eval_size, "seed": 0,
                                              "DATASET": dataset},
                                    **overrides)
    trainer.add_callback(ProgressPrinter())  # make_trainer removed the library's bars and printed logs
    args = trainer.args
    if state.is_main_process:
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * state.num_processes
        print(f"training {preset!r} on {state.num_processes} process(es): {args.per_device_train_batch_size} x "
              f"{args.gradient_accumulation_steps} x {state.num_processes} = {per_step} blocks of {args.max_length} "
              f"tokens per optimizer step, {len(trainer.train_dataset):,} blocks", flush=True)
    # training.train saves the adapter to <output_dir>/adapter, from the main process only.
    training.train(trainer)

    adapter = Path(args.output_dir).resolve() / "adapter"
    if state.is_main_process:
        summary = dict(preset=preset, processes=state.num_processes,
                       per_device_train_batch_size=args.per_device_train_batch_size,
                       gradient_accumulation_steps=args.gradient_accumulation_steps, max_length=args.max_length,
                       blocks=len(trainer.train_dataset), steps=trainer.state.global_step,
                       losses=[(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h])
        (adapter.parent / "train_run.json").write_text(json.dumps(summary, indent=1) + "\n")
    state.wait_for_everyone()
    return adapter


def _options(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (the options of notebook 05's "choose your run")."""
    parser = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(training.PRESETS), help="default: t4 (smoke on a CPU)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (-1: one epoch)")
    parser.add_argument("--data-limit", type=int, help="keep only this many rows of the data set")
    parser.add_argument("--eval-size", type=float, help=f"rows held out (default {EVAL_SIZE}; below 1: a fraction)")
    parser.add_argument("--output-dir", type=Path, help="default: the course's folder for this run")
    parser.add_argument("--dataset", choices=sorted(data.DATASETS), default="dolly")
    parser.add_argument("--save-every", type=int, default=SAVE_EVERY, help="a checkpoint every N steps (GPU runs)")
    options = parser.parse_args(argv)
    size = options.eval_size
    if size is not None and not (0 < size < 1 or (size >= 1 and size == int(size))):
        parser.error(f"argument --eval-size: pass a whole number of rows (1 or more) or a fraction between 0 and 1, "
                     f"got {size:g}")
    if size is not None and size >= 1:
        options.eval_size = int(size)  # 1 is one row, not the whole data set as a fraction
    return options


def main(argv: list[str] | None = None) -> int:
    """Run the entry point; print the adapter folder as the last line (launch reads it)."""
    options = _options(argv)
    adapter = run(options.preset, options.max_steps, options.data_limit, options.eval_size, options.output_dir,
                  options.dataset, options.save_every)
    if PartialState().is_main_process:
        print(f"{ADAPTER_LINE}{adapter}", flush=True)
    return 0


def _free_port() -> int:
    """Return a TCP port nobody listens on now, for the processes to meet on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(gpus: int, **options) -> list[str]:
    """Return the `accelerate launch` command line that launch() runs for `gpus` processes and options."""
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be a whole number of GPUs (1 or more), got {gpus!r}.")
    known = {"preset", "max_steps", "data_limit", "eval_size", "output_dir", "dataset", "save_every"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"launch got unknown option(s) {unknown}: pass some of {sorted(known)}.")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(gpus), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    if gpus > 1:
        # torchrun's launcher; on a machine without GPUs (the tests) it starts CPU processes that meet over gloo.
        cmd.append("--multi_gpu")
    cmd += ["-m", "helpers.train"]
    for key, value in options.items():
        if value is not None:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd


def launch(gpus: int, **options) -> Path:
    """Run notebook 05's training in `gpus` processes (a subprocess), print its progress, return the adapter folder."""
    cmd = command(gpus, **options)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # Colab's secrets answer only the notebook's own kernel, so the child gets the token in its environment (never
    # on its command line, which other processes can read).
    token = None if "HF_TOKEN" in env else auth.hf_token()
    if token:
        env["HF_TOKEN"] = token
    # The child imports this very package, from a checkout or an installed wheel alike.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    tail: collections.deque[str] = collections.deque(maxlen=40)
    adapter = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            if line.startswith(ADAPTER_LINE):
                adapter = Path(line[len(ADAPTER_LINE):])
            if line.lower().startswith(PROGRESS_PREFIXES):
                print(line, flush=True)
    if proc.returncode != 0 or adapter is None:
        last = "\n".join(tail)
        raise RuntimeError(
            f"The training run in {gpus} process(es) failed (exit code {proc.returncode}). Its last lines:\n{last}\n"
            f"The command was: {' '.join(cmd)}"
        )
    return adapter


if __name__ == "__main__":
    sys.exit(main())
