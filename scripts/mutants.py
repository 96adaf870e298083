"""Mutation run (`make mutants`, not part of CI): do the tests catch small, realistic mistakes in helpers/?

Each mutant below is one mistake a person could make (a flipped comparison, a changed constant or default, a
dropped step): the file, the exact text it replaces, the new text, what it models, and the tests that should
fail on it. The run copies the repository to a temporary folder, applies the mutants there one at a time,
runs their tests (`pytest -x -q`), restores the file, and reports which mutants were caught and which survived.
The working tree itself is never touched. A mutant whose text is no longer in its file is reported as stale
(update or remove it). The score counts caught mutants (a hang past --timeout counts as caught) among those
that ran.

    .venv/bin/python scripts/mutants.py                  # all mutants
    .venv/bin/python scripts/mutants.py --only quant.py  # those whose file or description contains the text
    .venv/bin/python scripts/mutants.py --list           # list them, and which are stale, without running
    .venv/bin/python scripts/mutants.py --tests train    # those whose tests are the selection TESTS["train"]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "outputs",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    "node_modules",
    "*.egg-info",
)

# Test selections (pytest arguments), named so that each is checked once on the unmutated copy.
TESTS = {
    "quant-4bit": ["tests/test_quant.py", "-k", "midpoint or quantize_4bit_is or clamped_absmax or tiny_positive"],
    "quant-codes": ["tests/test_quant.py", "-k", "code_is or dynamic_map or every_bit_width or evenly"],
    "quant-int8": ["tests/test_quant.py", "-k", "absmax_rowwise or tensorwise or zero_row or half_step or blockwise"],
    "quant-dequant": ["tests/test_quant.py", "-k", "dequantize_4bit_is or with_nf4_code or blockwise"],
    "quant-dq": ["tests/test_quant.py", "-k", "double"],
    "quant-bad": ["tests/test_quant.py", "-k", "bad_input"],
    "memory": [
        "tests/test_memory.py",
        "tests/test_quant.py::test_4bit_weight_bytes_of_odd_sizes_are_what_bitsandbytes_allocates",
        "-k",
        "constant_bits or gemma_2b_numbers or training_memory or lora_params or odd_sizes",
    ],
    "optim": ["tests/test_optim.py"],
    "checks": ["tests/test_checks.py"],
    "data": [
        "tests/test_data.py",
        "tests/test_bad_input.py",
        "-k",
        "not bad_input or hold or split or limit or column",
    ],
    "prompting": ["tests/test_prompting.py"],
    "training": [
        "tests/test_training.py",
        "-m",
        "not slow",
        "-k",
        "preset or precision or lora_config or output_dir or columns or recorder or benchmark or two_visible",
    ],
    "auth": ["tests/test_auth.py"],
    "loading": ["tests/test_loading.py", "-m", "not slow"],
    "loading-cpu": ["tests/test_cpu_features.py"],
    "runtime": ["tests/test_runtime.py"],
    "training-run": ["tests/test_safety_nets.py", "-k", "resume or without_a_record or nan_loss_stops"],
    "training-real": ["tests/test_training.py", "-k", "trains_through or adapter_reloads"],
    "evaluate": ["tests/test_evaluate.py"],
    "smoke-lesson": ["tests/test_training.py", "-k", "teaches"],
}

# Selections for the mutants of issue 26 (setup check, language, launch, evaluation, fingerprint, checks, bad input).
TESTS |= {
    "setup-check": ["tests/test_setup_check.py", "tests/test_setup_env.py"],
    "language": ["tests/test_language.py", "tests/test_setup_env.py"],
    "train": ["tests/test_train_entry.py", "-m", "not slow"],
    "evaluate-kinds": ["tests/test_evaluate.py", "tests/test_evaluate_kinds.py"],
    "bad-input": ["tests/test_bad_input.py"],
    "resume-rules": ["tests/test_resume_rules.py", "-m", "not slow"],
    "checks-kinds": ["tests/test_checks.py", "-k", "near_miss or rounded or right or mistakes"],
    "auth-kinds": ["tests/test_auth.py", "tests/test_auth_kinds.py"],
}

# Selections for the estimate, the Hub push, the post's schedule and the plots (fast tests only).
TESTS |= {
    "estimate": ["tests/test_estimate.py", "-m", "not slow"],
    "hub": ["tests/test_hub.py"],
    "schedule": ["tests/test_schedule.py"],
    "plots": ["tests/test_plots.py"],
}

# Selection for notebook 06's answer-only loss and its exercise checks (fast tests only).
TESTS |= {
    "compare": ["tests/test_compare.py"],
}


class Mutant(NamedTuple):
    """One small mistake: in helpers/`file`, `old` (exactly once) becomes `new`; `tests` names a TESTS entry."""

    file: str
    old: str
    new: str
    what: str
    tests: str


MUTANTS = [
    # ------------------------------------------------------------------ quant.py
    Mutant(
        "quant.py",
        "scaled[-1] = blocks[-1] / absmax[-1]",
        "scaled[-1] = blocks[-1] * (1.0 / absmax[-1])",
        "last partial block multiplied by 1/absmax instead of divided",
        "quant-4bit",
    ),
    Mutant(
        "quant.py",
        "scaled = blocks * (1.0 / absmax.clamp(min=1e-38)).unsqueeze(1)",
        "scaled = blocks / absmax.clamp(min=1e-38).unsqueeze(1)",
        "full blocks divided by absmax instead of multiplied by 1/absmax",
        "quant-4bit",
    ),
    Mutant(
        "quant.py",
        "q = torch.bucketize(scaled, _midpoints(code[order]), out_int32=True)",
        "q = torch.bucketize(scaled, _midpoints(code[order]), out_int32=True, right=True)",
        "a value on a midpoint goes to the upper level",
        "quant-4bit",
    ),
    Mutant(
        "quant.py",
        "return (levels[:-1] + levels[1:]) / 2",
        "return levels[:-1] + (levels[1:] - levels[:-1]) / 2",
        "midpoints computed another way (rounds differently)",
        "quant-4bit",
    ),
    Mutant(
        "quant.py",
        "scaled = scaled[: flat.numel() + flat.numel() % 2]",
        "scaled = scaled[: flat.numel()]",
        "no padding code for an odd count",
        "quant-4bit",
    ),
    Mutant(
        "quant.py",
        "packed = (q[0::2] << 4) | q[1::2]",
        "packed = (q[1::2] << 4) | q[0::2]",
        "nibbles packed in the wrong order",
        "quant-4bit",
    ),
    Mutant(
        "quant.py",
        "absmax[-1] = absmax[-1].clamp(min=1e-38)",
        "absmax[-1] = absmax[-1]",
        "all-zero last block's absmax not clamped as bitsandbytes stores it",
        "quant-4bit",
    ),
    Mutant(
        "quant.py",
        "scale = torch.where(absmax > 0, 127.0 / absmax, 0.0)",
        "scale = torch.where(absmax > 0, 128.0 / absmax, 0.0)",
        "absmax int8 scaled to 128",
        "quant-int8",
    ),
    Mutant(
        "quant.py",
        "q = torch.round(x * (scale if dim is None else scale.unsqueeze(-1))).to(torch.int8)",
        "q = torch.trunc(x * (scale if dim is None else scale.unsqueeze(-1))).to(torch.int8)",
        "int8 codes truncated instead of rounded",
        "quant-int8",
    ),
    Mutant(
        "quant.py",
        "q = torch.round(x * (scale if dim is None else scale.unsqueeze(-1))).to(torch.int8)",
        "q = torch.floor(x * (scale if dim is None else scale.unsqueeze(-1)) + 0.5).to(torch.int8)",
        "int8 halves rounded up instead of to even",
        "quant-int8",
    ),
    Mutant(
        "quant.py",
        "    return q * scale * INV_127",
        "    return q * scale / 127",
        "int8 dequantized by dividing by 127 (bitsandbytes multiplies by 1/127)",
        "quant-int8",
    ),
    Mutant(
        "quant.py",
        "def blockwise_quantize(x: torch.Tensor, blocksize: int = 64)",
        "def blockwise_quantize(x: torch.Tensor, blocksize: int = 128)",
        "blockwise_quantize's default block size",
        "quant-int8",
    ),
    Mutant(
        "quant.py",
        "    pad = -flat.numel() % blocksize",
        "    pad = flat.numel() % blocksize",
        "wrong padding of the last partial block",
        "quant-int8",
    ),
    Mutant(
        "quant.py",
        "values[full:].mul_(absmax[-1])",
        "values[full:].mul_(absmax[0])",
        "last partial block dequantized with the first block's absmax",
        "quant-dequant",
    ),
    Mutant(
        "quant.py",
        "return torch.stack([code[byte >> 4], code[byte & 15]], dim=1)",
        "return torch.stack([code[byte & 15], code[byte >> 4]], dim=1)",
        "nibbles unpacked in the wrong order",
        "quant-dequant",
    ),
    Mutant(
        "quant.py",
        "q = torch.bucketize(scaled[: flat.numel()], _midpoints(code.float()), out_int32=True)",
        "q = torch.bucketize(scaled[: flat.numel()], _midpoints(code.float()), out_int32=True, right=True)",
        "quantize_with_code: a value on a midpoint goes to the upper level",
        "quant-4bit",
    ),
    Mutant(
        "quant.py",
        "offset = round((1 - 1 / (2 * (2**bits - 1)) + 1 - 1 / (2 * 2**bits)) / 2, 7)",
        "offset = (1 - 1 / (2 * (2**bits - 1)) + 1 - 1 / (2 * 2**bits)) / 2",
        "NF4 offset not rounded to bitsandbytes' 7 decimals",
        "quant-codes",
    ),
    Mutant(
        "quant.py",
        "magnitudes = [0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0]",
        "magnitudes = [0.0, 0.0625, 12.0, 8.0, 4.0, 6.0, 2.0, 3.0]",
        "FP4 index order wrong",
        "quant-codes",
    ),
    Mutant(
        "quant.py", "    for i in range(7):", "    for i in range(6):", "dynamic map one decade short", "quant-codes"
    ),
    Mutant(
        "quant.py",
        "    offset = flat.mean()",
        "    offset = flat.median()",
        "double quantization subtracts the median",
        "quant-dq",
    ),
    Mutant(
        "quant.py",
        "lookup[((scaled.clamp(-1, 1) + 1.0) * 0.5 * 65535 + 0.5).long()]",
        "lookup[((scaled.clamp(-1, 1) + 1.0) * 0.5 * 65535).long()]",
        "8-bit kernel grid truncated, not rounded",
        "quant-dq",
    ),
    Mutant("quant.py", "    q[absmax2 == 0] = 0\n", "", "an all-zero block's codes not set to 0", "quant-dq"),
    Mutant(
        "quant.py",
        "    return _scale_blocks_(values, absmax2.float(), blocksize) + offset",
        "    return _scale_blocks_(values, absmax2.float(), blocksize)",
        "double_dequantize forgets the offset",
        "quant-dq",
    ),
    Mutant(
        "quant.py",
        '    _check_finite(absmax, "x")\n    scaled = blocks',
        "    scaled = blocks",
        "NaN/inf not refused before 4-bit quantization",
        "quant-bad",
    ),
    Mutant(
        "quant.py",
        "    _check_blocksize(blocksize, smallest=32)\n    code = _code_4bit(quant_type)\n    flat",
        "    _check_blocksize(blocksize, smallest=16)\n    code = _code_4bit(quant_type)\n    flat",
        "quantize_4bit accepts blocks of 16",
        "quant-bad",
    ),
    Mutant(
        "quant.py",
        "if packed.numel() != (n + 1) // 2:",
        "if packed.numel() != n // 2:",
        "dequantize_4bit expects n // 2 bytes",
        "quant-dequant",
    ),
    # ------------------------------------------------------------------ memory.py
    Mutant(
        "memory.py",
        "packed, code = math.ceil(n / 2), 16 * 4",
        "packed, code = n // 2, 16 * 4",
        "packed bytes n // 2 instead of ceil(n / 2)",
        "memory",
    ),
    Mutant(
        "memory.py",
        "packed, code = math.ceil(n / 2), 16 * 4",
        "packed, code = math.ceil(n / 2), 0",
        "the 16-entry code table not counted",
        "memory",
    ),
    Mutant(
        "memory.py",
        "return packed + blocks + 4 * math.ceil(blocks / 256) + 4 + 256 * 4 + code",
        "return packed + blocks + 4 * (blocks // 256) + 4 + 256 * 4 + code",
        "last partial second-level block not counted",
        "memory",
    ),
    Mutant(
        "memory.py",
        "return packed + blocks + 4 * math.ceil(blocks / 256) + 4 + 256 * 4 + code",
        "return packed + blocks + 4 * math.ceil(blocks / 256) + 256 * 4 + code",
        "DQ offset not counted",
        "memory",
    ),
    Mutant(
        "memory.py",
        "return 8 / blocksize + 32 / (blocksize * blocksize2)",
        "return 8 / blocksize + 32 / blocksize2",
        "second-level constant shared by blocksize2 weights, not blocksize * blocksize2",
        "memory",
    ),
    Mutant(
        "memory.py",
        "    return 32 / blocksize\n",
        "    return 16 / blocksize\n",
        "fp16 constants instead of fp32",
        "memory",
    ),
    Mutant(
        "memory.py",
        "sum(r * (m.in_features + m.out_features) for m",
        "sum(r * 2 * m.in_features for m",
        "LoRA B counted as in x r",
        "memory",
    ),
    Mutant(
        "memory.py", '"gradients": 4 * trainable,', '"gradients": 2 * trainable,', "16-bit LoRA gradients", "memory"
    ),
    Mutant(
        "memory.py",
        'OPTIMIZER_BYTES = {"adamw32": 8, "adamw8": 2}',
        'OPTIMIZER_BYTES = {"adamw32": 8, "adamw8": 1}',
        "8-bit AdamW as one byte per parameter",
        "memory",
    ),
    Mutant(
        "memory.py",
        'def training_memory(\n    config,\n    quant: str | None = "nf4",\n    double_quant: bool = True,',
        'def training_memory(\n    config,\n    quant: str | None = "nf4",\n    double_quant: bool = False,',
        "training_memory's default without double quantization",
        "memory",
    ),
    # ------------------------------------------------------------------ checks.py
    Mutant(
        "checks.py",
        "expected = torch.round(x.float() * (127 / x.abs().max()))",
        "expected = torch.round(x.float() * (128 / x.abs().max()))",
        "01 ex1 expects 128-scaled codes (rejects the right answer)",
        "checks",
    ),
    Mutant(
        "checks.py",
        "rtol = 1e-5 if expected.is_floating_point() else 0.0",
        "rtol = 0.1 if expected.is_floating_point() else 0.0",
        "a 10 % tolerance",
        "checks",
    ),
    Mutant(
        "checks.py",
        "rtol = 1e-5 if expected.is_floating_point() else 0.0",
        "rtol = 1e-5",
        "counts accepted to 1e-5 (16 bytes off in 2 MB)",
        "checks",
    ),
    Mutant(
        "checks.py",
        "_matches(answer, torch.tensor((first << 4) | second))",
        "_matches(answer, torch.tensor((second << 4) | first))",
        "02 ex2 expects swapped nibbles",
        "checks",
    ),
    Mutant(
        "checks.py",
        "expected = -(-n // 2) + 4 * -(-n // blocksize)",
        "expected = -(-n // 2)",
        "02 ex3 forgets absmax in the byte count",
        "checks",
    ),
    Mutant(
        "checks.py",
        "expected = -(-n // 2) + 4 * -(-n // blocksize)",
        "expected = n // 2 + 4 * -(-n // blocksize)",
        "02 ex3 rounds the packed bytes down",
        "checks",
    ),
    Mutant(
        "checks.py",
        "    if ok is False:\n        ok = _matches(answer, torch.tensor(expected + 16 * 4))\n",
        "",
        "02 ex3 rejects the count with the code table",
        "checks",
    ),
    Mutant(
        "checks.py",
        'return parts[-2:] == ["state2", "absmax"]',
        'return parts[-1:] == ["absmax"]',
        '03 ex3 accepts the string "absmax"',
        "checks",
    ),
    Mutant(
        "checks.py",
        "return answer is c1 or (",
        "return answer is c1 and (",
        "03 ex3 accepts only the very tensor object",
        "checks",
    ),
    Mutant(
        "checks.py",
        "math.ceil(n_blocks / (args.per_device_train_batch_size",
        "math.floor(n_blocks / (args.per_device_train_batch_size",
        "05 ex2 rounds epoch steps down",
        "checks",
    ),
    Mutant(
        "checks.py",
        '    if ok:\n        print(pick(f"✅ {name}: right!"',
        '    if True:\n        print(pick(f"✅ {name}: right!"',
        "check() always says right",
        "checks",
    ),
    Mutant(
        "checks.py",
        '    if ok is None:\n        print(pick(f"⏳',
        '    if ok is False:\n        print(pick(f"⏳',
        "no answer reported as wrong, a wrong one as pending",
        "checks",
    ),
    Mutant(
        "checks.py",
        "sum(n < optim.MIN_8BIT_SIZE for n in numels)",
        "sum(n <= optim.MIN_8BIT_SIZE for n in numels)",
        "04 ex2 keeps a tensor of exactly min_8bit_size elements in fp32",
        "checks",
    ),
    Mutant(
        "checks.py",
        "8 * sum(n for n in numels if n >= optim.PAGE_MIN_NUMEL)",
        "8 * sum(n for n in numels if n > optim.PAGE_MIN_NUMEL)",
        "04 ex3 does not page exactly 1e5 elements",
        "checks",
    ),
    Mutant(
        "checks.py",
        "memory.constant_bits_per_param(blocksize, double_quant=True, blocksize2=blocksize2)",
        "memory.constant_bits_per_param(blocksize, double_quant=False, blocksize2=blocksize2)",
        "03 ex1 expects the bits without double quantization",
        "checks",
    ),
    Mutant(
        "checks.py",
        "expected = torch.tensor(100 * memory.lora_params(config, r=r) / total)",
        "expected = torch.tensor(memory.lora_params(config, r=r) / total)",
        "05 ex3 expects a fraction, not a percentage",
        "checks",
    ),
    Mutant(
        "checks.py",
        "    if ok and tuple(torch.as_tensor(answer).shape) != tuple(shape):\n        ok = False\n",
        "",
        "01 ex3 accepts the flat tensor",
        "checks",
    ),
    # ------------------------------------------------------------------ optim.py
    Mutant(
        "optim.py",
        "    return sum(v.numel() * v.element_size() for state in optimizer.state.values()",
        "    return 0 * sum(v.numel() * v.element_size() for state in optimizer.state.values()",
        "paged_state_bytes always 0",
        "optim",
    ),
    Mutant(
        "optim.py",
        'if torch.is_tensor(v) and getattr(v, "is_paged", False))',
        "if torch.is_tensor(v))",
        "paged_state_bytes counts every state tensor",
        "optim",
    ),
    Mutant(
        "optim.py",
        'if name.endswith("8bit") and n >= MIN_8BIT_SIZE:',
        'if name.endswith("8bit") and n > MIN_8BIT_SIZE:',
        "a tensor of exactly min_8bit_size elements predicted in fp32",
        "optim",
    ),
    Mutant(
        "optim.py",
        "total += 2 * n + 2 * 4 * math.ceil(n / BLOCKSIZE_8BIT)",
        "total += 2 * n + 2 * 4 * (n // BLOCKSIZE_8BIT)",
        "last partial 8-bit block's absmax not predicted",
        "optim",
    ),
    Mutant(
        "optim.py",
        "            if ptr in seen:\n                continue\n",
        "",
        "shared quantization maps counted per parameter",
        "optim",
    ),
    Mutant(
        "optim.py",
        "if not torch.is_tensor(value) or value.dim() == 0:",
        "if not torch.is_tensor(value):",
        "step counters counted as state",
        "optim",
    ),
    Mutant(
        "optim.py",
        'state_size = param_dtype.itemsize if name == "adamw_torch" else 4',
        "state_size = 4",
        "torch AdamW state predicted in fp32 for bf16 parameters",
        "optim",
    ),
    Mutant(
        "optim.py",
        "return total + (2 * 256 * 4 if any_8bit else 0)",
        "return total + 2 * 256 * 4",
        "quantization maps predicted for 32-bit optimizers",
        "optim",
    ),
    Mutant(
        "optim.py",
        "                p.copy_(p0)\n",
        "                pass\n",
        "measure_states does not restore the weights",
        "optim",
    ),
    Mutant("optim.py", "PAGE_MIN_NUMEL = 100_000", "PAGE_MIN_NUMEL = 10_000", "paging threshold 1e4", "optim"),
    Mutant(
        "optim.py",
        "params: Iterable[torch.Tensor], lr: float = 2e-4)",
        "params: Iterable[torch.Tensor], lr: float = 1e-3)",
        "make_optimizer's default learning rate",
        "optim",
    ),
    # ------------------------------------------------------------------ data.py
    Mutant(
        "data.py",
        "    check_columns(ds)\n    return ds.select",
        "    return ds.select",
        "load_alpaca without its column check",
        "data",
    ),
    Mutant(
        "data.py",
        "ds.select(range(min(limit, len(ds))))",
        "ds.select(range(limit))",
        "load_alpaca crashes when limit exceeds the rows",
        "data",
    ),
    Mutant(
        "data.py",
        "def split(ds: Dataset, eval_size: float = 0.1, seed: int = 0)",
        "def split(ds: Dataset, eval_size: float = 0.2, seed: int = 0)",
        "split's default eval_size",
        "data",
    ),
    Mutant(
        "data.py",
        "def split(ds: Dataset, eval_size: float = 0.1, seed: int = 0)",
        "def split(ds: Dataset, eval_size: float = 0.1, seed: int = 42)",
        "split's default seed",
        "data",
    ),
    Mutant(
        "data.py",
        "missing = [c for c in columns if c not in ds.column_names]",
        "missing = [c for c in columns[:-1] if c not in ds.column_names]",
        "the output column not checked",
        "data",
    ),
    Mutant(
        "data.py",
        "math.ceil(eval_size * n) >= n",
        "math.ceil(eval_size * n) > n",
        "a fraction that holds out every row accepted",
        "data",
    ),
    Mutant(
        "data.py",
        "not isinstance(limit, int) or limit < 1)",
        "not isinstance(limit, int) or limit < 0)",
        "limit=0 accepted",
        "data",
    ),
    # ------------------------------------------------------------------ prompting.py
    Mutant(
        "prompting.py",
        '"do_sample": False',
        '"do_sample": True',
        "generate samples instead of greedy decoding",
        "prompting",
    ),
    Mutant(
        "prompting.py",
        "skip_special_tokens=True",
        "skip_special_tokens=False",
        "generate leaves <eos>/<pad> in the text",
        "prompting",
    ),
    Mutant(
        "prompting.py",
        'tokenizer.padding_side = tokenizer.truncation_side = "left"',
        'tokenizer.truncation_side = "left"',
        "generate pads on the right",
        "prompting",
    ),
    Mutant(
        "prompting.py",
        'tokenizer.padding_side = tokenizer.truncation_side = "left"',
        'tokenizer.padding_side = "left"',
        "a long prompt cut at its end (its Response line lost)",
        "prompting",
    ),
    Mutant(
        "prompting.py", 'out[:, batch["input_ids"].shape[1] :]', "out", "generate returns the prompt too", "prompting"
    ),
    Mutant(
        "prompting.py",
        '\\n### Response\\n"',
        '\\n### Response:\\n"',
        "the template's Response line changed",
        "prompting",
    ),
    Mutant(
        "prompting.py",
        "        tokenizer.padding_side, tokenizer.truncation_side = sides\n",
        "",
        "generate leaves the tokenizer padding on the left",
        "prompting",
    ),
    Mutant(
        "prompting.py",
        "        model.train(was_training)\n",
        "        pass\n",
        "generate leaves the model in eval mode",
        "prompting",
    ),
    # ------------------------------------------------------------------ runtime.py
    Mutant(
        "runtime.py",
        "    if rt.gpu_count > 1:",
        "    if rt.gpu_count >= 1:",
        '"GPU 0 of 1" printed on one GPU',
        "runtime",
    ),
    Mutant("runtime.py", "capability >= (8, 0) and not force_fp16()", "capability > (8, 0) and not force_fp16()",
           "an A100 (8.0) gets fp16", "runtime"),
    Mutant(
        "runtime.py", 'return "full" if has_gpu else "smoke"', 'return "smoke"', "smoke mode even with a GPU", "runtime"
    ),
    Mutant(
        "runtime.py",
        "        torch.set_num_threads(before)\n",
        "        pass\n",
        "cpu_threads does not restore the thread count",
        "runtime",
    ),
    Mutant(
        "runtime.py",
        '"KAGGLE_KERNEL_RUN_TYPE" in os.environ',
        '"KAGGLE_URL_BASE" in os.environ',
        "Kaggle detected by the wrong variable",
        "runtime",
    ),
    # ------------------------------------------------------------------ auth.py
    Mutant(
        "auth.py",
        "_clean(os.environ.get(SECRET))",
        "os.environ.get(SECRET)",
        "an empty HF_TOKEN returned as ''",
        "auth",
    ),
    Mutant(
        "auth.py",
        "isinstance(exc, (GatedRepoError, RepositoryNotFoundError))",
        "isinstance(exc, GatedRepoError)",
        "a RepositoryNotFoundError (404 on a gated repo) not an access error",
        "auth",
    ),
    Mutant(
        "auth.py",
        '"status_code", None) in (401, 403)',
        '"status_code", None) in (401,)',
        "a 403 not an access error",
        "auth",
    ),
    Mutant(
        "auth.py",
        "while exc is not None and id(exc) not in seen:",
        "while exc is not None:",
        "is_auth_error loops forever on a cyclic exception chain",
        "auth",
    ),
    Mutant(
        "auth.py",
        "exc = exc.__cause__ or exc.__context__",
        "exc = exc.__cause__",
        "is_auth_error ignores the implicit context",
        "auth",
    ),
    Mutant("auth.py", 'if not _cache.get("token"):', "if True:", "the token fetched again on every call", "auth"),
    Mutant(
        "auth.py",
        "token = token or _kaggle_secret() or _clean(os.environ.get(SECRET))",
        "token = _clean(os.environ.get(SECRET)) or token or _kaggle_secret()",
        "$HF_TOKEN wins over the Colab secret",
        "auth",
    ),
    # ------------------------------------------------------------------ loading.py
    Mutant(
        "loading.py",
        "quantization_config=bnb_config(rt) if quantization_config is None else quantization_config",
        "quantization_config=bnb_config(rt)",
        "load_model ignores a passed quantization_config",
        "loading",
    ),
    Mutant(
        "loading.py",
        " and json.loads((folder / RECIPE).read_text()) == recipe",
        "",
        "a cached tiny model from another recipe reused",
        "loading",
    ),
    Mutant("loading.py", '"shape": TINY_SHAPE, ', "", "the tiny model's shape not in its recipe", "loading"),
    Mutant(
        "loading.py",
        'double_quant: bool = True, quant_type: str = "nf4") -> BitsAndBytesConfig:',
        'double_quant: bool = False, quant_type: str = "nf4") -> BitsAndBytesConfig:',
        "bnb_config without double quantization",
        "loading",
    ),
    Mutant(
        "loading.py",
        "return torch.bfloat16 if rt.dtype == torch.bfloat16 else torch.float32",
        "return torch.bfloat16 if rt.dtype != torch.float32 else torch.float32",
        "bf16 unquantized weights under fp16 compute",
        "loading",
    ),
    Mutant(
        "loading.py",
        "model.config.use_cache = False",
        "model.config.use_cache = True",
        "the KV cache left on for training",
        "loading",
    ),
    Mutant("loading.py", "    tokenizer.pad_token = tokenizer.eos_token\n", "", "pad token not set to eos", "loading"),
    Mutant(
        "loading.py",
        "module.support_avx512bf16_for_cpu = False",
        "module.support_avx512bf16_for_cpu = True",
        "bitsandbytes' CPU repack left on",
        "loading-cpu",
    ),
    Mutant(
        "loading.py",
        "    num_key_value_heads=1,\n    head_dim=256,",
        "    num_key_value_heads=8,\n    head_dim=256,",
        "Gemma-2B config with 8 KV heads",
        "memory",
    ),
    # ------------------------------------------------------------------ evaluate.py, and the smoke run's lesson
    Mutant("evaluate.py", 'return "stopped" if text.strip() else "empty"', 'return "stopped"',
           "<eos> before any text counted as a real stop", "evaluate"),
    Mutant("evaluate.py", "softmax(-1)[:, tokenizer.eos_token_id]", "softmax(-1)[:, tokenizer.pad_token_id]",
           "eos_probability reads another token's probability", "evaluate"),
    Mutant("prompting.py", 'tokenizer.padding_side = tokenizer.truncation_side = "left"',
           'tokenizer.truncation_side = "left"', "left_padded leaves right padding on", "evaluate"),
    Mutant("loading.py", " + [tokenizer.eos_token_id]\n", "\n",
           "tiny pre-training without <eos> between documents", "smoke-lesson"),
    Mutant("training.py", '"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])',
           '"q_proj", "k_proj", "v_proj", "o_proj"])', "smoke adapter on q/k/v/o only", "smoke-lesson"),
    # ------------------------------------------------------------------ training.py
    Mutant("training.py", "    if not resume:\n", "    if False:\n", "train(resume=False) ignored", "training-run"),
    Mutant(
        "training.py",
        '"t4_fast": dict(activation_checkpointing=False)',
        '"t4_fast": dict(activation_checkpointing=False, per_device_train_batch_size=4, gradient_accumulation_steps=1)',
        "t4_fast as 4 x 1 instead of the post's 2 x 2",
        "training",
    ),
    Mutant(
        "training.py",
        "    learning_rate=2e-4,",
        "    learning_rate=1e-4,",
        "the post's learning rate changed",
        "training",
    ),
    Mutant(
        "training.py", "    lora_dropout=0.1,", "    lora_dropout=0.05,", "the post's LoRA dropout changed", "training"
    ),
    Mutant("training.py", 'lr_scheduler_type="cosine"', 'lr_scheduler_type="linear"', "a linear schedule", "training"),
    Mutant("training.py", "    max_length=512,", "    max_length=1024,", "blocks of 1024 tokens", "training"),
    Mutant("training.py", "        config._n_gpu = 1\n", "", "two visible GPUs double the batch", "training"),
    Mutant("training.py", "bf16=rt.dtype == torch.bfloat16)", "bf16=False)", "no bf16 on Ampere", "training"),
    Mutant(
        "training.py",
        "            control.should_training_stop = True\n",
        "",
        "a NaN loss does not stop training",
        "training-run",
    ),
    Mutant(
        "training.py",
        '        return KAGGLE_WORKING / "qlora-course"',
        '        return Path("outputs")',
        "checkpoints on Kaggle not in /kaggle/working",
        "training",
    ),
    Mutant(
        "training.py",
        "param.data = param.data.float()",
        "param.data = param.data",
        "LoRA weights left in trl's bf16",
        "training-real",
    ),
    Mutant(
        "training.py",
        'return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]',
        "return []",
        "benchmark_reports finds none",
        "training",
    ),
    Mutant(
        "training.py",
        "        if differ:\n",
        "        if False:\n",
        "a run with other settings resumed from this folder's checkpoints",
        "training-run",
    ),
    Mutant(
        "training.py",
        '        if record and record.get("finished"):',
        "        if False:",
        "a finished run trained again",
        "training-run",
    ),
]

# Issue 26: mutants of the modules added or rewritten since the list above was written, of the kinds that slipped
# through an independent mutation run (estimate.py, hub.py, schedule.py and plots.py: the list after this one).
MUTANTS += [
    # ------------------------------------------------------------------ setup_check.py
    Mutant("setup_check.py", "if found is None or Version(found) >= PEFT_TORCHAO_MIN:",
           "if found is None or found >= str(PEFT_TORCHAO_MIN):", "torchao versions compared as text", "setup-check"),
    # (dropping prereleases=True from version_problems changes nothing with packaging 26, which both hosts ship)
    Mutant("setup_check.py", "Version(found) >= PEFT_TORCHAO_MIN:",
           "Version(found).release >= PEFT_TORCHAO_MIN.release:",
           "a torchao pre-release of 0.16 (which peft refuses) taken as 0.16", "setup-check"),
    Mutant("setup_check.py", "elif not req.specifier.contains(found, prereleases=True):",
           "elif not all(found >= s.version for s in req.specifier if s.operator == '>=') or found == '':",
           "range pins compared as text, == pins not at all", "setup-check"),
    Mutant("setup_check.py", " or module == \"helpers\":", ":", "the course package itself asks for a restart",
           "setup-check"),
    Mutant("setup_check.py", "os.stat(path).st_ctime > started", "os.stat(path).st_mtime > started",
           "a reinstalled file found by its modification time (a wheel keeps its own)", "setup-check"),
    Mutant("setup_check.py", "(not os.path.exists(path) or ", "(",
           "a loaded module whose file the new version removed", "setup-check"),
    Mutant("setup_check.py", "any(dep.marker.evaluate({\"extra\": extra}) for extra in extras)",
           "dep.marker.evaluate({\"extra\": \"\"})", "a pin's extras' dependencies not followed", "setup-check"),
    Mutant("setup_check.py", "if dep.marker is None or any(", "if dep.marker is None and any(",
           "dependencies behind a marker (python_version) not followed", "setup-check"),
    Mutant("setup_check.py", "LOADED_BEFORE = frozenset(name.partition(\".\")[0] for name in _BEFORE)",
           "LOADED_BEFORE = frozenset(name.partition(\".\")[0] for name in sys.modules) | {\"packaging\"}",
           "what the check imports itself (after the install) counted as loaded before it", "setup-check"),
    # ------------------------------------------------------------------ language.py (and the setup cell that sets it)
    Mutant("setup_check.py", "    language.set_language(language.edition_language(edition))\n", "",
           "the setup check never sets the edition's language", "language"),
    Mutant("setup_check.py",
           "    language.set_language(language.edition_language(edition))\n    reqs = pins(requirements)\n"
           "    problems = version_problems(reqs)",
           "    reqs = pins(requirements)\n    problems = version_problems(reqs)",
           "the language set only when the check passes", "language"),
    Mutant("language.py", '_SESSION = {"language": "en"}', '_SESSION = {"language": "ko"}',
           "a fresh session speaks Korean", "language"),
    Mutant("language.py", "    if not isinstance(edition, str):\n", "    if edition is None:\n",
           "an edition that is not text gets no clear error", "language"),
    Mutant("language.py", 'return "ko" if edition.rstrip("/").endswith("/ko")',
           'return "ko" if edition.endswith("/ko/")', "notebooks/ko without its last slash taken as English",
           "language"),
    # ------------------------------------------------------------------ train.py (launch arithmetic)
    Mutant("train.py", "    micro = max(n for n in range(1, batch + 1) if share % n == 0)\n",
           "    micro = batch // gpus\n", "4 GPUs on a 2 x 2 preset get batch 0", "train"),
    Mutant("train.py", "max(n for n in range(1, batch + 1) if share % n == 0)",
           "max(n for n in range(1, share + 1) if share % n == 0)",
           "a GPU's micro-batch larger than the preset's (its memory)", "train"),
    Mutant("train.py", "    if per_step % gpus:\n", "    if per_step % gpus and gpus > 3:\n",
           "3 GPUs on a step of 4 accepted", "train"),
    Mutant("train.py", "    if size is not None and size >= 1:\n", "    if size is not None and size > 1:\n",
           "--eval-size 1 read as a fraction (all rows)", "train"),
    Mutant("train.py", "not (0 < size < 1 or (size >= 1 and size == int(size)))", "not (0 < size)",
           "--eval-size 2.5 cut to 2 rows silently", "train"),
    # ------------------------------------------------------------------ evaluate.py
    Mutant("evaluate.py", '["rougeL"].fmeasure', '["rougeL"].recall', "ROUGE-L recall taken for the F-measure",
           "evaluate-kinds"),
    Mutant("evaluate.py", '["rougeL"].fmeasure', '["rougeL"].precision', "ROUGE-L precision taken for the F-measure",
           "evaluate-kinds"),
    Mutant("evaluate.py", "if len(endings) != len(texts) or unknown:", "if unknown:",
           "endings of another length than the answers accepted", "evaluate-kinds"),
    Mutant("evaluate.py", "if len(predictions) != len(references):", "if not references:",
           "references of another length than the predictions scored", "evaluate-kinds"),
    # ------------------------------------------------------------------ data.py, prompting.py, training.py: bad input
    Mutant("data.py", "(isinstance(eval_size, int) and 0 < eval_size < n)",
           "(isinstance(eval_size, int) and 0 < eval_size <= n)",
           "a held-out set as large as the data", "bad-input"),
    Mutant("data.py", "    if isinstance(eval_size, bool) or not (\n", "    if not (\n",
           "eval_size=True taken as one row", "bad-input"),
    Mutant("data.py", "(isinstance(eval_size, float) and 0 < eval_size < 1)",
           "(isinstance(eval_size, float) and 0 <= eval_size < 1)",
           "eval_size=0.0 holds out nothing", "bad-input"),
    Mutant("prompting.py", "    if max_new_tokens >= context:\n", "    if max_new_tokens > context:\n",
           "max_new_tokens that leaves no room for the prompt", "bad-input"),
    Mutant("prompting.py", "    room = context - max_new_tokens\n", "    room = context\n",
           "a long prompt not cut to leave room for the answer", "prompting"),
    Mutant("training.py", 'NOT_NEGATIVE = {"warmup_steps", "weight_decay", "seed", "lora_dropout"}',
           'NOT_NEGATIVE = {"warmup_steps", "seed", "lora_dropout"}', "a negative weight_decay accepted", "bad-input"),
    # ------------------------------------------------------------------ training.py: fingerprint, resume, NaN guard
    Mutant("training.py", "ds.select_columns(list(COLUMNS))", 'ds.select_columns(["instruction", "input"])',
           "answers changed in the data, not in the fingerprint", "resume-rules"),
    Mutant("training.py",
           '    identity.update({f"quantization_config.{k}": v for k, v in quant.items() if k.startswith(("bnb_4bit", '
           '"load_in"))})\n', "", "the 4-bit settings not in the fingerprint", "resume-rules"),
    Mutant("training.py", 'if k.startswith(("bnb_4bit", "load_in"))', 'if k.startswith("load_in")',
           "the 4-bit quant type and compute dtype not in the fingerprint", "resume-rules"),
    Mutant("training.py", '    for file in ("course_recipe.json", "config.json"):\n',
           '    for file in ("config.json",):\n',
           "a tiny model rebuilt from another recipe under the same folder name", "resume-rules"),
    Mutant("training.py", "        elif record and (checkpoint or record.get(\"finished\")):\n",
           "        elif record and checkpoint:\n", "a finished run without checkpoints restored whatever the settings",
           "resume-rules"),
    Mutant("training.py", "not math.isfinite(value)", "math.isnan(value)", "an inf loss does not stop training",
           "resume-rules"),
    Mutant("training.py", '(("loss", "training loss"), ("eval_loss", "eval loss"))', '(("loss", "training loss"),)',
           "a NaN eval loss does not stop training", "resume-rules"),
    Mutant("training.py", "for k in sorted(set(before) | set(now)) if", "for k in sorted(now) if",
           "a setting the earlier run had and this one lacks not compared", "resume-rules"),
    Mutant("training.py", '{**POST_SETTINGS, **PRESETS[preset], **precision, "output_dir": str(folder), **overrides}',
           '{**POST_SETTINGS, **overrides, **PRESETS[preset], **precision, "output_dir": str(folder)}',
           "a preset wins over the learner's overrides", "resume-rules"),
    Mutant("training.py", '    if not (adapter / "adapter_model.safetensors").is_file():\n', "    if False:\n",
           "a finished run whose adapter is gone claims to be trained", "resume-rules"),
    Mutant("training.py", "    if not resume:\n", "    if False:\n", "resume=False resumes (fast test)",
           "resume-rules"),
    # ------------------------------------------------------------------ checks.py: tolerances
    Mutant("checks.py", "rtol = 1e-5 if expected.is_floating_point() else 0.0",
           "rtol = 1e-3 if expected.is_floating_point() else 0.0", "any float answer accepted to 0.1 %",
           "checks-kinds"),
    Mutant("checks.py", "rtol=0, atol=5e-5 + 1e-6)", "rtol=0, atol=1e-2)", "NF3 levels accepted 0.01 off",
           "checks-kinds"),
    Mutant("checks.py", "rtol=1e-2, atol=1e-2 * want.abs().max().item()",
           "rtol=1e-1, atol=1e-1 * want.abs().max().item()",
           "a LoRA layer's output accepted 10 % off", "checks-kinds"),
    Mutant("checks.py", "_matches(answer, expected, 1e-9, figures=3)", "_matches(answer, expected, 1e-9, figures=2)",
           "0.063 bits accepted for blocks of 128 (what 8/128 = 0.0625 rounds to)", "checks-kinds"),
    Mutant("checks.py", "_matches(answer, expected, figures=2)", "_matches(answer, expected, 1e-4)",
           "the LoRA percentage accepted 1e-4 off (0.0736 for 0.0735)", "checks-kinds"),
    Mutant("checks.py", "_matches(answer, expected, 1e-9, figures=3)", "_matches(answer, expected, 1e-9)",
           "0.0635 bits, the paper's rounding, refused", "checks-kinds"),
    Mutant("checks.py", "    return abs(answer - exact) <= half_unit * (1 + 1e-9)\n",
           "    return abs(answer - exact) <= 2 * half_unit\n", "a rounded answer one unit off accepted",
           "checks-kinds"),
    # ------------------------------------------------------------------ auth.py: a missing file is not a refusal
    Mutant("auth.py", '"status_code", None) in (401, 403)', '"status_code", None) in (401, 403, 404)',
           "a 404 (a missing file) called an access refusal", "auth-kinds"),
    Mutant("auth.py", "if isinstance(exc, (GatedRepoError, RepositoryNotFoundError)):",
           'if isinstance(exc, (GatedRepoError, RepositoryNotFoundError)) or "404" in str(exc):',
           "any error that mentions 404 called an access refusal", "auth-kinds"),
    Mutant("auth.py", "if isinstance(exc, (GatedRepoError, RepositoryNotFoundError)):",
           "if isinstance(exc, (GatedRepoError, RepositoryNotFoundError))"
           ' or type(exc).__name__.endswith("NotFoundError"):',
           "a missing file or revision (…NotFoundError) called an access refusal", "auth-kinds"),
]


# The estimate, the Hub push, the post's schedule and the plots: mistakes of the kinds issue 26 names, written before
# the tests that catch them.
MUTANTS += [
    # ------------------------------------------------------------------ estimate.py
    Mutant("estimate.py", "traffic / (T4_BANDWIDTH_GBS * 1e9 * BANDWIDTH_SHARE[0])",
           "traffic / (T4_BANDWIDTH_GBS * 2**30 * BANDWIDTH_SHARE[0])",
           "the datasheet's 320 GB/s read as GiB/s (low end)", "estimate"),
    Mutant("estimate.py", "per_micro = traffic / micro_batches / 1e9", "per_micro = traffic / micro_batches / 2**30",
           "the bytes per micro-batch printed in GiB under the label GB", "estimate"),
    Mutant("estimate.py", "high += micro_batches * overhead_per_micro_batch(preset)",
           "high += steps * overhead_per_micro_batch(preset)",
           "the H200's time per micro-batch added per optimizer step", "estimate"),
    Mutant("estimate.py", 'return row["seconds_per_step"] / row["grad_accum"] if row else 0.0',
           'return row["seconds_per_step"] if row else 0.0',
           "the H200's time per optimizer step taken as its time per micro-batch", "estimate"),
    Mutant("estimate.py", "micro_batches = full + (1 if last else 0)", "micro_batches = full",
           "a last partial micro-batch dropped", "estimate"),
    Mutant("estimate.py", "steps = math.ceil(micro_batches / accumulation)", "steps = micro_batches // accumulation",
           "a last partial group of micro-batches makes no optimizer step", "estimate"),
    Mutant("estimate.py", "per_gpu = math.ceil(blocks / gpus)\n", "per_gpu = blocks // gpus\n",
           "the larger share of an odd number of blocks on two GPUs dropped", "estimate"),
    Mutant("estimate.py", "return math.ceil(blocks / gpus) * 512 / row", "return blocks * 512 / row",
           "the H200 bound ignores that two GPUs share the blocks", "estimate"),
    Mutant("estimate.py", '    return getattr(config, "head_dim", None) or config.hidden_size // '
           "config.num_attention_heads\n", "    return config.hidden_size // config.num_attention_heads\n",
           "head_dim as hidden / heads instead of the config's", "estimate"),
    Mutant("estimate.py", "attention = h * heads * head_dim * 2 + h * kv * head_dim * 2",
           "attention = h * heads * head_dim * 2 + h * kv * (h // heads) * 2",
           "key/value projections sized with hidden / heads", "estimate"),
    Mutant("estimate.py", "    _whole(\"blocks\", blocks)\n    _whole(\"gpus\", gpus)\n    row = _h200_row(preset)",
           "    row = _h200_row(preset)", "the H200 bound accepts 0 blocks and 0 GPUs", "estimate"),
    Mutant("estimate.py", "    _whole(\"block_tokens\", block_tokens)\n", "",
           "an estimate for blocks of 0 tokens accepted", "estimate"),
    Mutant("estimate.py", "BACKWARD_BYTES_PER_WEIGHT = 0.5 + 4 + 4 + 2 + 2", "BACKWARD_BYTES_PER_WEIGHT = 0.5 + 2 + 2",
           "the backward's dequantization at 4.5 bytes (fp16) instead of the loaded fp32", "estimate"),
    # ------------------------------------------------------------------ hub.py
    Mutant("hub.py",
           '    (folder / "README.md").write_text(card)\n'
           '    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")\n'
           '    api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",\n'
           '                      commit_message="Upload the QLoRA adapter and its model card")\n',
           '    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")\n'
           '    api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",\n'
           '                      commit_message="Upload the QLoRA adapter and its model card")\n'
           '    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id,\n'
           '                    repo_type="model")\n',
           "the model card uploaded after the adapter, in a second commit", "hub"),
    Mutant("hub.py",
           '    (folder / "README.md").write_text(card)\n'
           '    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")\n'
           '    api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",\n'
           '                      commit_message="Upload the QLoRA adapter and its model card")\n',
           '    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")\n'
           '    api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",\n'
           '                      commit_message="Upload the QLoRA adapter and its model card")\n'
           '    (folder / "README.md").write_text(card)\n',
           "the card written after the upload (never uploaded)", "hub"),
    Mutant("hub.py", "        validate_repo_id(repo_id)\n",
           '        if repo_id.count("/") != 1:\n            raise HFValidationError(repo_id)\n',
           "a repo id checked only for one slash ('learner/', 'learner/x--y' accepted)", "hub"),
    Mutant("hub.py", "    check_repo_id(repo_id)\n    folder = Path(adapter_dir)", "    folder = Path(adapter_dir)",
           "push_adapter accepts a bad repo id", "hub"),
    Mutant("hub.py", "if not (number and math.isfinite(value)) and not isinstance(value, str):",
           "if not (number and not math.isnan(value)) and not isinstance(value, str):",
           "an infinite evaluation value accepted", "hub"),
    Mutant("hub.py", "        number = isinstance(value, (int, float)) and not isinstance(value, bool)\n",
           "        number = isinstance(value, (int, float))\n", "True accepted as an evaluation number", "hub"),
    Mutant("hub.py", "    existing = _visibility(api, repo_id)\n", "    existing = None\n",
           "the visibility check skipped: an existing public repo pushed as if private", "hub"),
    Mutant("hub.py", "    except RepositoryNotFoundError:  # missing,", "    except Exception:  # missing,",
           "any error reading the repo's visibility taken for 'no such repo' (a public repo pushed)", "hub"),
    Mutant("hub.py",
           'batch, accumulation = run["per_device_train_batch_size"], run["gradient_accumulation_steps"]',
           "batch, accumulation = 2, 2",
           "blocks per step from the preset's per_step x GPUS, not from the run's record", "hub"),
    Mutant("hub.py",
           'processes = json.loads(launched.read_text())["processes"] if launched.is_file() else 1',
           "processes = 1", "a launched run's processes not read from its record", "hub"),
    Mutant("hub.py", 'return settings, finished["step"]', 'return settings, run.get("max_steps")',
           "the card's steps from max_steps, not the steps trained", "hub"),
    Mutant("hub.py", '"base model": card_model_name(run.get("model")),', '"base model": run.get("model"),',
           "the card's base model a local folder's full path", "hub"),
    Mutant("hub.py", 'if isinstance(value, float) and value != 0 and abs(value) < 1e-3:',
           'if False:', "a tiny evaluation figure rounded to 0.0000 in the card", "hub"),
    Mutant("hub.py", 'lambda tag: f"`{tag.group(0)}`"', 'lambda tag: tag.group(0)',
           "a bare <eos> in the card's table (Markdown swallows it as HTML)", "hub"),
    Mutant("hub.py", 'sample = dataset == COURSE_SAMPLE', 'sample = False',
           "the course's sample written as a Hub data set with a card", "hub"),
    # ------------------------------------------------------------------ schedule.py
    Mutant("schedule.py", "post_planned = max(math.ceil(rows / per_device) // accumulation, 1)",
           "post_planned = max(math.ceil(blocks / per_device) // accumulation, 1)",
           "the post's planned steps from the blocks instead of the rows", "schedule"),
    Mutant("schedule.py", "post_warmup = math.ceil(post_planned * warmup_ratio)",
           "post_warmup = int(post_planned * warmup_ratio)", "the post's warmup floored instead of ceiled",
           "schedule"),
    Mutant("schedule.py", "today_warmup = math.ceil(today_planned * warmup_ratio)",
           "today_warmup = round(today_planned * warmup_ratio)", "today's warmup rounded instead of ceiled",
           "schedule"),
    Mutant("schedule.py", "today_planned = max(math.ceil(math.ceil(blocks / per_device) / accumulation), 1)",
           "today_planned = max(math.ceil(blocks / per_device) // accumulation, 1)",
           "today's ceil division replaced by floor (the partial last step lost)", "schedule"),
    Mutant("schedule.py", "post_lr = [cosine_lr(k, post_planned, post_warmup, peak) for k in range(post_real)]",
           "post_lr = [cosine_lr(k, post_planned, post_warmup, peak) for k in range(1, post_real + 1)]",
           "the post's LRs one scheduler step late", "schedule"),
    Mutant("schedule.py", "today_lr = [cosine_lr(k, today_planned, today_warmup, peak) for k in range(today_planned)]",
           "today_lr = [cosine_lr(k, today_planned, today_warmup, peak) for k in range(1, today_planned + 1)]",
           "today's LRs one scheduler step late (the last at 0)", "schedule"),
    Mutant("schedule.py", "post_real = min(math.ceil(blocks / per_device) // accumulation, post_planned)",
           "post_real = math.ceil(blocks / per_device) // accumulation",
           "the post's run longer than its planned steps", "schedule"),
    # ------------------------------------------------------------------ plots.py
    Mutant("plots.py", 'f"{total:.0f}" if float(total).is_integer() else f"{total:.1f}"', 'f"{total:.1f}"',
           "stacked_bars labels a count of 12 answers '12.0'", "plots"),
    Mutant("plots.py", "bottoms = bottoms + np.asarray(heights, dtype=float)",
           "bottoms = np.asarray(heights, dtype=float)",
           "stacked_bars stacks each part on the previous part only", "plots"),
    Mutant("plots.py", "ax.vlines(levels, 0, norm.pdf(levels * scale)",
           "ax.vlines(levels * scale, 0, norm.pdf(levels * scale)",
           "levels_on_density draws the levels in std units on an axis of level units", "plots"),
    Mutant("plots.py", "    ax.set_xticks(range(len(groups)), list(groups))\n", "",
           "grouped_bars without its group labels (0, 1, 2 on the x axis)", "plots"),
    Mutant("plots.py", "xs = np.arange(len(groups)) + (j - (len(series) - 1) / 2) * width",
           "xs = np.arange(len(groups)) + j * width", "grouped_bars' groups not centred on their labels", "plots"),
    Mutant("plots.py", "top = max([*known, line[0] if line else 0, 0])", "top = max([*known, 0])",
           "grouped_bars cuts off a reference line above the bars", "plots"),
    Mutant("plots.py", "ax.set_ylim(0, max(values) * 1.15 if max(values) > 0 else 1)",
           "ax.set_ylim(min(values) * 0.9, max(values) * 1.15)", "bars' value axis not from zero", "plots"),
    # ------------------------------------------------------------------ compare.py
    Mutant("compare.py", "    return ids, start\n", "    return ids, start + 1\n",
           "the answer starts one token late (its first token given, not scored)", "compare"),
    Mutant("compare.py", "min(len(prompt), len(ids) - 1))", "min(len(prompt) - 1, len(ids) - 1))",
           "the answer starts one token early (the prompt's last token scored)", "compare"),
    Mutant("compare.py",
           "start = next((i for i, (a, b) in enumerate(zip(ids, prompt)) if a != b), min(len(prompt), len(ids) - 1))",
           "start = len(prompt)",
           "the answer's start taken as the prompt's length (a token merged across the boundary ignored)", "compare"),
    Mutant("compare.py", "scored = logp[b, start - 1 : len(row_ids) - 1]", "scored = logp[b, start : len(row_ids)]",
           "the scored slice not shifted: position t scored on token t, not t + 1", "compare"),
    Mutant("compare.py",
           "targets = torch.tensor(row_ids[start:], device=model.device)\n"
           "                    scored = logp[b, start - 1 : len(row_ids) - 1]",
           "targets = torch.tensor(row_ids[start:-1], device=model.device)\n"
           "                    scored = logp[b, start - 1 : len(row_ids) - 2]",
           "the closing <eos> not scored", "compare"),
    Mutant("compare.py",
           "nll -= scored.gather(1, targets[:, None]).sum().item()\n"
           "                    count += len(targets)\n"
           "                del logits, logp\n"
           "    finally:\n"
           "        model.train(was_training)\n"
           '    return {"answer loss": nll / count,',
           "nll -= scored.gather(1, targets[:, None]).mean().item()\n"
           "                    count += len(targets)\n"
           "                del logits, logp\n"
           "    finally:\n"
           "        model.train(was_training)\n"
           '    return {"answer loss": nll / len(rows),',
           "the mean over rows (each row's mean) instead of over every answer token", "compare"),
    Mutant("compare.py", "count += len(targets)", "count += width - start",
           "a shorter row's padding counted among the answer tokens", "compare"),
    Mutant("compare.py",
           "targets = torch.tensor(row_ids[start:], device=model.device)\n"
           "                    scored = logp[b, start - 1 : len(row_ids) - 1]",
           "targets = ids[b, start:]\n"
           "                    scored = logp[b, start - 1 : width - 1]",
           "a shorter row's padding scored as answer tokens", "compare"),
    Mutant("compare.py", "ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in pairs]",
           "ids = torch.tensor([[pad] * (width - len(i)) + i for i, _ in pairs]",
           "rows padded on the left but scored (and masked) as if padded on the right", "compare"),
    Mutant("compare.py", "        model.train(was_training)\n", "        model.train()\n",
           "a model given in eval mode left in training mode after (dropout in the answers that follow)", "compare"),
    Mutant("compare.py", "    model.eval()\n", "",
           "the loss computed in training mode (dropout on)", "compare"),
    Mutant("compare.py", "with torch.no_grad(), cpu_threads(model.device):", "with cpu_threads(model.device):",
           "the loss computed with autograd on (the graph of every batch kept: T4 memory)", "compare"),
    Mutant("compare.py", "torch.tensor(4 / 6, dtype=torch.float64), figures=2)",
           "torch.tensor(4 / 6, dtype=torch.float64), atol=1e-2)",
           "exercise 1 accepts 0.66 (4/6 truncated, a near miss)", "compare"),
    Mutant("compare.py", "torch.tensor(4 / 6, dtype=torch.float64), figures=2)",
           "torch.tensor(4 / 6, dtype=torch.float64), figures=1)",
           "exercise 1 accepts one figure (0.7)", "compare"),
    Mutant("compare.py", "ok = _matches(answer, torch.tensor(4 / 6,",
           "ok = _matches(answer / 100 if isinstance(answer, float) and answer > 1 else answer, torch.tensor(4 / 6,",
           "exercise 1 accepts a percent (66.67) for a fraction", "compare"),
    Mutant("compare.py", "return 1.96 * math.sqrt(p * (1 - p) / n)", "return 1.645 * math.sqrt(p * (1 - p) / n)",
           "the 95 % interval with 1.645 (a 90 % interval)", "compare"),
    Mutant("compare.py", "return 1.96 * math.sqrt(p * (1 - p) / n)", "return 1.96 * math.sqrt(p * (1 - p) / (n - 1))",
           "the interval's standard error over n - 1", "compare"),
    Mutant("compare.py", "torch.tensor(share_interval(k, n), dtype=torch.float64), figures=2)",
           "torch.tensor(share_interval(k, n), dtype=torch.float64), atol=3e-2)",
           "exercise 2 accepts 1.645 standard errors (a 90 % interval) for 1.96", "compare"),
    Mutant("compare.py", "ok = _matches(answer, torch.tensor(share_interval(k, n), dtype=torch.float64), figures=2)",
           "ok = None if answer is None else isinstance(answer, (int, float)) and "
           "abs(answer - share_interval(k, n)) < 2e-3",
           "exercise 2 accepts any float within 0.002 (over n - 1: 0.1429, 1 % off)", "compare"),
    Mutant("compare.py", "ok = _matches(answer, torch.tensor(share_interval(k, n),",
           "ok = _matches(answer / 100 if isinstance(answer, float) and answer > 1 else answer, "
           "torch.tensor(share_interval(k, n),",
           "exercise 2 accepts percent points (14.1) for a fraction", "compare"),
    Mutant("compare.py", "math.isclose(answer, expected, rel_tol=1e-6)", "math.isclose(answer, expected, rel_tol=1e-2)",
           "exercise 3 accepts a ratio 1 % off", "compare"),
]


def apply(text: str, mutant: Mutant) -> str | None:
    """Return the file's text with the mutant applied, or None when its old text is not there exactly once."""
    return text.replace(mutant.old, mutant.new) if text.count(mutant.old) == 1 else None


def run_tests(copy: Path, args: list[str], env: dict, timeout: int) -> tuple[str, float, str]:
    """Run pytest on `args` in the copy: ("passed" | "failed" | "timeout" | "error", seconds, last output lines)."""
    start = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start, ""
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    outcome = {0: "passed", 1: "failed"}.get(done.returncode, "error")
    return outcome, time.monotonic() - start, tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only mutants whose file or description contains this text (repeatable)",
    )
    parser.add_argument(
        "--tests",
        action="append",
        default=[],
        choices=sorted(TESTS),
        help="run only mutants whose test selection is this one (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and which are stale, run nothing")
    parser.add_argument("--timeout", type=int, default=180, help="seconds one mutant's tests may take (default 180)")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip checking that each test selection passes without mutants"
    )
    opts = parser.parse_args()

    chosen = [m for m in MUTANTS if not opts.only or any(o in m.file or o in m.what for o in opts.only)]
    chosen = [m for m in chosen if not opts.tests or m.tests in opts.tests]
    sources = {m.file: (ROOT / "helpers" / m.file).read_text() for m in chosen}
    stale = [m for m in chosen if apply(sources[m.file], m) is None]
    if opts.list:
        for m in chosen:
            print(f"{'STALE ' if m in stale else ''}{m.file}: {m.what} [{m.tests}]")
        print(f"{len(chosen)} mutants, {len(stale)} stale")
        return 1 if stale else 0

    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        copy = Path(scratch) / "repo"
        shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
        env = {
            **os.environ,
            "PYTHONPATH": str(copy),
            "COURSE_OUTPUT_DIR": str(Path(scratch) / "outputs"),
            "COURSE_CACHE_DIR": str(Path(scratch) / "cache"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        where = subprocess.run(
            [sys.executable, "-c", "import helpers; print(helpers.__file__)"],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if not where.startswith(str(copy)):
            print(f"the copy's tests would import helpers from {where!r}, not from the copy: stopping")
            return 2

        broken = set()
        if not opts.no_baseline:
            for name in sorted({m.tests for m in chosen if m not in stale}):
                outcome, seconds, tail = run_tests(copy, TESTS[name], env, opts.timeout)
                print(f"baseline {name}: {outcome} ({seconds:.0f} s)", flush=True)
                if outcome != "passed":
                    print("  " + tail.replace("\n", "\n  "))
                    broken.add(name)

        results = {"caught": [], "survived": [], "stale": stale, "skipped": [], "error": []}
        for m in chosen:
            if m in stale:
                print(f"STALE     {m.file}: {m.what}", flush=True)
                continue
            if m.tests in broken:
                results["skipped"].append(m)
                print(f"SKIPPED   {m.file}: {m.what} (its tests fail without the mutant)", flush=True)
                continue
            target = copy / "helpers" / m.file
            target.write_text(apply(sources[m.file], m))
            try:
                outcome, seconds, tail = run_tests(copy, TESTS[m.tests], env, opts.timeout)
            finally:
                target.write_text(sources[m.file])
            verdict = {"failed": "caught", "timeout": "caught", "passed": "survived"}.get(outcome, "error")
            results[verdict].append(m)
            label = {
                "caught": "caught" if outcome == "failed" else "caught (timeout)",
                "survived": "SURVIVED",
                "error": "ERROR",
            }[verdict]
            print(f"{label:9s} {m.file}: {m.what} [{m.tests}, {seconds:.0f} s]", flush=True)
            if verdict == "error":
                print("  " + tail.replace("\n", "\n  "))

    ran = len(results["caught"]) + len(results["survived"])
    print(
        f"\n{len(results['caught'])} of {ran} mutants caught ({100 * len(results['caught']) / max(ran, 1):.1f} %); "
        f"{len(results['survived'])} survived, {len(stale)} stale, {len(results['skipped'])} skipped, "
        f"{len(results['error'])} errors"
    )
    for m in results["survived"]:
        print(f"  survived: {m.file}: {m.what} (tests: {' '.join(TESTS[m.tests])})")
    return 0 if not (results["survived"] or stale or results["skipped"] or results["error"]) else 1


if __name__ == "__main__":
    sys.exit(main())
