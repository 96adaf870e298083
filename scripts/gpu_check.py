"""The GPU path, run in one call: notebooks 05 and 06 in full mode, notebook 04's GPU cells and the T4 benchmark.

On one CUDA GPU, held as close to a free T4 as a bigger GPU can be (fp16 compute forced with COURSE_FORCE_FP16=1,
PyTorch's memory capped at a T4's 15 GB), and without the Hub:
  1. builds the stand-in once: Gemma-2B's config (loading.gemma_2b_config()) with random weights, saved in fp16
     with the tiny Gemma's tokenizer (build/gpu_check_standin/, reused while its recipe is the same);
  2. executes notebook 05 in full mode (COURSE_MODEL=the stand-in, COURSE_DATA=sample) for MAX_STEPS=20 optimizer
     steps, then notebook 06 on its adapter when notebooks/06_did_it_learn.ipynb exists, with nbclient;
  3. executes notebook 04's GPU cells (the paging round trip and the capped demonstration);
  4. runs benchmarks/t4_qlora.py for the post's t4, t4_fast and the batch-4 variants, 10 timed steps each;
  5. writes gpu_check.json: pass, fail or skipped per step with the error, the environment, what a bigger GPU
     cannot reproduce of a T4, and the figures the notebook and the benchmark measured.
Everything lands in one results folder (--out, else $OUT, else build/gpu_check/): at most 8 files (the summary,
the log, three executed notebooks, the benchmark's .json and .md). Every step has a deadline inside --budget, so
the summary is written even when a step runs long. Without a CUDA GPU it says so and exits 0; --dry-run walks
every step on the CPU with the tiny model in smoke mode (notebooks at their smoke settings, 2 benchmark steps).

Usage: python scripts/gpu_check.py [--dry-run] [--out DIR] [--budget 480] [--steps 20] [--bench-steps 10]
"""
import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from run_course import CHOOSE_CELL, failure_report, with_settings  # noqa: F401 (CHOOSE_CELL: for its tests)

from helpers import loading, setup_check

NOTEBOOKS = ROOT / "notebooks"
NB04, NB05, NB06 = (NOTEBOOKS / name for name in
                    ("04_paged_optimizers.ipynb", "05_gemma_qlora_t4.ipynb", "06_did_it_learn.ipynb"))
STANDIN = ROOT / "build" / "gpu_check_standin"
# The same cap as benchmarks/t4_qlora.py's T4_MEMORY_GB: about what a T4 leaves a program of its 16 GB.
T4_MEMORY_BYTES = 15e9
VARIANTS = "t4,t4_fast,t4_b4,t4_b4_fast"
# Notebook 04's cells that need a GPU to show anything: the paging round trip (on a CPU it only says why it
# cannot page) and the capped demonstration with its plot; nb04-34b computes the demonstration's size.
NB04_CELLS = ("nb04-30c", "nb04-34b", "nb04-35", "nb04-36")
# The unified memory notebook 04's cells ask for: the round trip's 1024 x 1024 AdamW state (8 MB) and the
# demonstration's (8 layers of 4096 x 4096: 1 GiB). The check refuses to start them unless 4x that is free.
NB04_MANAGED_BYTES = 8 * 1024 * 1024 + 8 * 8 * 4096 * 4096
# A small stand-in for the dry run (Gemma's layout, a few KB of weights).
DRY_SHAPE = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=1, head_dim=16, max_position_embeddings=512, tie_word_embeddings=True)
PACKAGES = ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets", "tokenizers",
            "huggingface-hub", "safetensors", "rouge-score", "nbclient", "ipykernel", "numpy", "pyarrow", "fsspec",
            "matplotlib", "qlora-course-helpers")
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 1024 * 1024
MARKS = {"pass": "✓", "fail": "✗", "skipped": "⏭"}
# What a bigger GPU under this check cannot show of a free T4.
NOT_REPRODUCED = [
    ("speed: a T4 has 65 TFLOPS of fp16 (about 24 sustained under its 70 W cap) and 320 GB/s; the seconds and "
     "tokens/s here are this GPU's, and a T4's time stays helpers.estimate's range (benchmarks/README.md)"),
    ("compute capability 7.5: kernels chosen by capability differ (PyTorch's SDPA has no flash kernel below 8.0, so "
     "a T4 uses the memory-efficient one; cuBLAS and bitsandbytes run other kernels on sm_75)"),
    ("memory: set_per_process_memory_fraction caps PyTorch's allocator only; the CUDA context, cuBLAS workspaces and "
     "unified memory lie outside the cap here, inside a T4's 15 GB there"),
    "bf16: forced off (COURSE_FORCE_FP16=1), but this GPU could use it; nothing tests that a T4 refuses it",
    "two T4s (Kaggle's GPUS = 2): one GPU here, so notebook 05's distributed launch is not run",
]


def say(log: Path, message: str) -> None:
    """Print a progress line and keep it in the log."""
    print(message, flush=True)
    with log.open("a") as f:
        f.write(message + "\n")


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or with None unset) environment variables for the block, the kernels it starts included."""
    before = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def environment() -> dict:
    """Return the machine and the library versions the check ran with."""
    versions = {name: setup_check.installed_version(name) for name in PACKAGES}
    env = dict(python=platform.python_version(), platform=platform.platform(), cuda=torch.version.cuda,
               gpu=None, compute_capability=None, gpu_memory_bytes=None, driver=None, versions=versions)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=torch.cuda.get_device_name(0), compute_capability=list(torch.cuda.get_device_capability(0)),
                   gpu_memory_bytes=props.total_memory)
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=False)
        env["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    # What notebook 05's setup cell would refuse (it raises on any of these).
    env["differs_from_pins"] = setup_check.version_problems(setup_check.pins())
    return env


def build_stand_in(folder: Path, dry_run: bool) -> dict:
    """Save Gemma-2B's config with random weights in fp16 and the tiny Gemma's tokenizer to folder (once)."""
    from transformers import AutoModelForCausalLM, GemmaConfig
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a "Writing model shards" bar in the log says nothing
    tokenizer = loading.load_tokenizer(loading.tiny_gemma())
    config = GemmaConfig(vocab_size=len(tokenizer), **DRY_SHAPE) if dry_run else loading.gemma_2b_config()
    recipe = {"config": config.to_dict(), "dtype": "float16", "seed": 0, "tokenizer": "the tiny Gemma's"}
    marker = folder / "gpu_check_recipe.json"
    if marker.is_file() and json.loads(marker.read_text()) == json.loads(json.dumps(recipe)):
        return {"note": f"reused {folder}"}
    shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(0)
    start = time.perf_counter()
    # 2.5 billion random weights are drawn in seconds on the GPU and in minutes on the CPU.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float16)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    marker.write_text(json.dumps(recipe, indent=1))
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {"note": f"built {folder}: {params:,} parameters, {size:,} B on disk in "
                    f"{time.perf_counter() - start:.0f} s"}


def with_max_steps(nb: nbformat.NotebookNode, max_steps: int | None) -> nbformat.NotebookNode:
    """Return a copy of notebook 05 with a cell setting MAX_STEPS right after its "choose your run" cell."""
    return with_settings(nb, {"MAX_STEPS": max_steps}, by="scripts/gpu_check.py", cell_id="gpu-check-max-steps")


def gpu_cells_of_04(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a notebook of notebook 04's GPU cells (NB04_CELLS), after a cell defining what they use."""
    by_id = {c.get("id"): c for c in nb.cells}
    missing = [i for i in NB04_CELLS if i not in by_id]
    if missing:
        raise ValueError(f"notebook 04 has no cell(s) {missing}: update NB04_CELLS in scripts/gpu_check.py")
    intro = nbformat.v4.new_markdown_cell("Notebook 04's GPU cells, run by `scripts/gpu_check.py` after a cell that "
                                          "defines what the notebook's earlier cells would have.")
    setup = nbformat.v4.new_code_cell(
        "import gc\nimport inspect\n\nimport matplotlib.pyplot as plt\nimport torch\n\n"
        "from helpers import optim, plots, runtime\n\nrt = runtime.setup()\n"
        "model = lora = batch = None  # notebook 04 loads these earlier; nb04-35 frees them")
    intro["id"], setup["id"] = "gpu-check-intro", "gpu-check-setup"
    cells = [copy.deepcopy(by_id[i]) for i in NB04_CELLS]
    for cell in cells:
        cell.outputs, cell.execution_count = [], None
    sub = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    sub.cells = [intro, setup, *cells]
    return sub


def facts_cell(path: Path) -> str:
    """Code run after notebook 05's last cell: what the run did, written as JSON for the summary."""
    return f"""# scripts/gpu_check.py: what the run above did, for the check's summary
import json as _json

_g, _facts = globals(), {{}}
for _key, _get in {{
    "mode_line": lambda: runtime.describe(rt), "mode": lambda: rt.mode, "dtype": lambda: str(rt.dtype),
    "gpu": lambda: rt.gpu_name, "model": lambda: name, "preset": lambda: preset,
    "fp16": lambda: bool(args.fp16), "bf16": lambda: bool(args.bf16), "optim": lambda: args.optim.value,
    "max_steps": lambda: args.max_steps, "steps_done": lambda: steps_done, "losses": lambda: logged,
    "weights_bytes": lambda: measured, "scores": lambda: scores, "reload_max_logit_diff": lambda: diff,
    "identical_after_reload": lambda: f"{{sum(same)}} of {{len(same)}}",
    "kernel_peak_allocated_bytes": lambda: torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    "kernel_peak_reserved_bytes": lambda: torch.cuda.max_memory_reserved() if torch.cuda.is_available() else None,
    "memory_fraction": lambda: torch.cuda.get_per_process_memory_fraction(0) if torch.cuda.is_available() else None,
}}.items():
    try:
        _facts[_key] = _get()
    except Exception as _e:  # noqa: BLE001 - a missing name is a fact too
        _facts[_key] = f"unavailable: {{type(_e).__name__}}: {{_e}}"
open({str(path)!r}, "w").write(_json.dumps(_facts, default=str, indent=1))
"""


def execute(nb: nbformat.NotebookNode, saved: Path, deadline: float, kernel_args: list[str],
            append: list[str] = ()) -> None:
    """Execute nb (working directory notebooks/) until the deadline, save the executed copy, raise on failure."""
    nb = copy.deepcopy(nb)
    for source in append:
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"gpu-check-after-{len(nb.cells)}"
        nb.cells.append(cell)
    client = NotebookClient(nb, kernel_name="python3", extra_arguments=kernel_args,
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except Exception as e:  # noqa: BLE001 - a failed cell, a timeout or a dead kernel: all reported alike
        nbformat.write(nb, saved)
        report = failure_report(nb, saved.name)
        raise RuntimeError(f"{type(e).__name__}: {report}") from None
    nbformat.write(nb, saved)


def benchmark(out: Path, log: Path, standin: Path, deadline: float, dry_run: bool, steps: int) -> dict:
    """Run benchmarks/t4_qlora.py on the stand-in for VARIANTS; return its rows, side by side."""
    start = time.time()
    command = [sys.executable, str(ROOT / "benchmarks" / "t4_qlora.py"), "--variants", VARIANTS, "--model",
               str(standin), "--out", str(out), "--steps", str(steps), "--warmup", "1" if dry_run else "3"]
    if dry_run:
        command.append("--dry-run")
    with log.open("a") as f:
        f.write("$ " + " ".join(command) + "\n")
        f.flush()
        run = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, timeout=max(1, deadline - time.monotonic()),
                             check=False, cwd=ROOT)
    if run.returncode:
        raise RuntimeError(f"benchmarks/t4_qlora.py exited with {run.returncode}: see the log's end")
    # The benchmark names its report after the GPU and the date: take the one it just wrote.
    (report,) = [p for p in out.glob("*.json") if p.name != "gpu_check.json" and p.stat().st_mtime >= start - 1]
    data = json.loads(report.read_text())
    keys = ("variant", "seconds_per_step", "tokens_per_second", "peak_allocated_gb", "peak_reserved_gb", "loss",
            "skipped", "failed")
    rows = [{k: v[k] for k in keys if k in v} for v in data["variants"]]
    failed = [r["variant"] for r in rows if "failed" in r]
    result = {"report": report.name, "variants": rows, "t4_fast_choice": data["t4_fast_choice"]["variant"]}
    if failed:
        raise RuntimeError(f"variant(s) failed: {failed}; {json.dumps(rows)}")
    return result


class Skip(Exception):
    """A step that cannot run here, with the reason."""


def main(argv: list[str]) -> int:
    """Run the check (or its CPU dry run); return 0 when every step passed or was skipped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="walk every step on the CPU with the tiny model")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: $OUT, else build/gpu_check)")
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole check (default 480)")
    parser.add_argument("--steps", type=int, default=20, help="notebook 05's MAX_STEPS (full mode)")
    parser.add_argument("--bench-steps", type=int, default=10, help="timed steps per benchmark variant")
    parser.add_argument("--standin", type=Path, default=STANDIN, help="where the stand-in model is built")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("No CUDA GPU here: the GPU check needs one, so nothing was run "
              "(make gpu-check DRY_RUN=1 walks it on the CPU with the tiny model).")
        return 0
    started, clock = datetime.datetime.now(datetime.UTC), time.monotonic()
    deadline = clock + args.budget
    out = args.out or Path(os.environ.get("OUT") or ROOT / "build" / "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    for old in ("gpu_check.json", "gpu_check.log"):
        (out / old).unlink(missing_ok=True)
    log, summary_path = out / "gpu_check.log", out / "gpu_check.json"
    scratch = Path(tempfile.mkdtemp(prefix="gpu_check."))
    standin = scratch / "standin" if args.dry_run else args.standin
    total = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None
    cap = None if total is None else min(1.0, T4_MEMORY_BYTES / total)
    # The kernels start with PyTorch held to a T4's memory; without a GPU there is nothing to cap.
    kernel_args = [] if cap is None else [
        f"--IPKernelApp.exec_lines=import torch; torch.cuda.set_per_process_memory_fraction({cap!r})"]
    max_steps = None if args.dry_run else args.steps  # smoke mode keeps its 30 steps: its lesson needs them
    course_env = dict(COURSE_MODE="smoke" if args.dry_run else "full", COURSE_MODEL=None if args.dry_run else
                      str(standin), COURSE_DATA="sample", COURSE_FORCE_FP16="1",
                      COURSE_OUTPUT_DIR=str(scratch / "outputs"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                      PYTHONUNBUFFERED="1")
    summary = dict(check="scripts/gpu_check.py", dry_run=args.dry_run, started=started.isoformat(timespec="seconds"),
                   budget_seconds=args.budget, environment=environment(),
                   settings=dict(memory_cap_bytes=None if cap is None else int(cap * total), fp16_forced=True,
                                 notebook_05_max_steps=max_steps or "the smoke preset's 30",
                                 benchmark_variants=VARIANTS.split(","), benchmark_timed_steps=args.bench_steps,
                                 env={k: v for k, v in course_env.items() if k.startswith(("COURSE_", "HF_"))}),
                   not_reproduced=NOT_REPRODUCED, steps=[])

    def write() -> None:
        summary["seconds"] = round(time.monotonic() - clock, 1)
        summary_path.write_text(json.dumps(summary, indent=1, default=str) + "\n")

    def step(name: str, func: Callable[[float], dict | None], reserve: float = 0) -> bool:
        """Run one step until the deadline less `reserve` (kept for the steps after it); record how it went."""
        step_deadline = deadline - reserve
        record = dict(name=name, status="skipped", seconds=0.0, error=None)
        summary["steps"].append(record)
        start = time.monotonic()
        say(log, f"▶ {name} ({step_deadline - start:.0f} s left for it)")
        try:
            if step_deadline - start < 10:
                raise Skip(f"out of time: {step_deadline - start:.0f} s left of the budget")
            record.update(func(step_deadline) or {}, status="pass")
        except Skip as s:
            record["note"] = str(s)
        except Exception as e:  # noqa: BLE001 - a failed step is a result; the next steps still run
            record.update(status="fail", error=f"{type(e).__name__}: {e}"[:4000])
            with log.open("a") as f:
                traceback.print_exc(file=f)
        record["seconds"] = round(time.monotonic() - start, 1)
        say(log, f"{MARKS[record['status']]} {name}: {record['status']} in "
                 f"{record['seconds']} s" + (f": {record['error'] or record.get('note')}"
                                             if record["status"] != "pass" else ""))
        write()
        return record["status"] == "pass"

    where = " (dry run on the CPU)" if args.dry_run else ""
    say(log, f"GPU check{where}: results in {out}, budget {args.budget:.0f} s")
    write()
    has_06 = NB06.is_file()
    # Seconds kept for the later steps, so a long notebook 05 cannot leave the benchmark no time at all.
    reserve_04, reserve_bench, reserve_06 = 30, 120, 60 if has_06 else 0
    built = step("stand-in", lambda _: build_stand_in(standin, args.dry_run),
                 reserve=reserve_06 + reserve_04 + reserve_bench + 150)

    def notebook_05(step_deadline: float) -> dict:
        if not built:
            raise Skip("no stand-in model")
        facts = scratch / "facts_05.json"
        with environ(**course_env):
            execute(with_max_steps(nbformat.read(NB05, as_version=4), max_steps), out / NB05.name, step_deadline,
                    kernel_args, append=[facts_cell(facts)])
        summary["notebook_05"] = ran = json.loads(facts.read_text())
        # The point of the step: the notebook really ran the learner's GPU path (full mode, fp16, not bf16).
        wanted = dict(mode="smoke") if args.dry_run else dict(mode="full", dtype="torch.float16", fp16=True, bf16=False)
        wrong = {key: ran.get(key) for key, value in wanted.items() if ran.get(key) != value}
        if wrong:
            raise RuntimeError(f"notebook 05 ran, but not as the check meant: {wrong}, wanted {wanted}")
        return {"file": NB05.name}

    ran_05 = step("notebook 05 (full mode on the stand-in)" if not args.dry_run else "notebook 05 (smoke mode)",
                  notebook_05, reserve=reserve_06 + reserve_04 + reserve_bench)

    def notebook_06(step_deadline: float) -> dict:
        if not has_06:
            raise Skip(f"{NB06.relative_to(ROOT)} does not exist yet")
        if not ran_05:
            raise Skip("notebook 05 did not finish, so there is no adapter to judge")
        with environ(**course_env):
            execute(nbformat.read(NB06, as_version=4), out / NB06.name, step_deadline, kernel_args)
        return {"file": NB06.name}

    step("notebook 06 (on notebook 05's adapter)", notebook_06, reserve=reserve_04 + reserve_bench)

    def notebook_04(step_deadline: float) -> dict:
        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            if free < 4 * NB04_MANAGED_BYTES:  # unified memory beyond what is free can hang the GPU
                raise Skip(f"only {free:,} B of GPU memory free, below 4x the {NB04_MANAGED_BYTES:,} B of unified "
                           "memory its cells ask for")
        saved = out / "04_paged_optimizers_gpu_cells.ipynb"
        with environ(**course_env):
            execute(gpu_cells_of_04(nbformat.read(NB04, as_version=4)), saved, step_deadline, kernel_args)
        return {"file": saved.name, "managed_bytes_asked": NB04_MANAGED_BYTES}

    step("notebook 04's GPU cells (paging)", notebook_04, reserve=reserve_bench)

    def bench(step_deadline: float) -> dict:
        if not built:
            raise Skip("no stand-in model")
        with environ(PYTHONPATH=course_env["PYTHONPATH"], HF_HUB_OFFLINE="1"):
            summary["benchmark"] = benchmark(out, log, standin, step_deadline, args.dry_run,
                                             2 if args.dry_run else args.bench_steps)
        return {"file": summary["benchmark"]["report"]}

    step("benchmark (t4_qlora.py)", bench)

    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    summary["files"] = files
    summary["files_within_limits"] = len(files) <= MAX_FILES and all(s <= MAX_FILE_BYTES for s in files.values())
    write()
    shutil.rmtree(scratch, ignore_errors=True)
    statuses = [s["status"] for s in summary["steps"]]
    say(log, f"done in {summary['seconds']} s: " + ", ".join(f"{s['name']} {s['status']}" for s in summary["steps"]))
    return 1 if "fail" in statuses or not summary["files_within_limits"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
