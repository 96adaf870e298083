"""Self-checks for the notebooks' exercises: each says right or wrong and gives a hint."""

import math

import torch

from helpers import memory, quant


def check(name: str, ok: bool | None, hint: str) -> bool:
    """Print whether exercise `name` is right (ok=None means not answered yet) and return ok."""
    if ok is None:
        print(f"⏳ {name}: not answered yet. Hint: {hint}")
        return False
    print(f"✅ {name}: right!" if ok else f"❌ {name}: not yet. Hint: {hint}")
    return bool(ok)


# ----------------------------------------------------------------------------- notebooks 01-03


def _matches(answer: object, expected: torch.Tensor, atol: float = 0.0) -> bool | None:
    """None when unanswered; else whether `answer` (number, list or tensor) equals `expected` within atol."""
    if answer is None:
        return None
    try:
        got = torch.as_tensor(answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    expected = expected.to(torch.float64)
    if got.shape != expected.shape and got.numel() != expected.numel():
        return False
    return bool(torch.allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=atol))


def check_absmax_codes(answer: object, x: torch.Tensor) -> bool:
    """Notebook 01, exercise 1: the absmax int8 codes of `x`."""
    expected = torch.round(x.float() * (127 / x.abs().max()))
    return check("Exercise 1: absmax int8 by hand", _matches(answer, expected),
                 "c = 127 / x.abs().max(), then torch.round(c * x): the largest magnitude becomes ±127.")


def check_constant_bits(answer: object, const_bits: int = 16, blocksize: int = 128) -> bool:
    """Notebook 01, exercise 2: extra bits per parameter of one `const_bits` constant per block."""
    return check("Exercise 2: cost of the constants", _matches(answer, torch.tensor(const_bits / blocksize), 1e-9),
                 f"one {const_bits}-bit constant is shared by the {blocksize} values of its block.")


def check_block_dequantize(
    answer: object, q: torch.Tensor, absmax: torch.Tensor, shape: tuple[int, ...], blocksize: int
) -> bool:
    """Notebook 01, exercise 3: block-wise int8 codes turned back into floats of `shape`."""
    expected = quant.blockwise_dequantize(q, absmax, shape, blocksize=blocksize)
    ok = _matches(answer, expected, atol=1e-6)
    if ok and tuple(torch.as_tensor(answer).shape) != tuple(shape):
        ok = False
    return check("Exercise 3: block-wise dequantization", ok,
                 f"view q as rows of {blocksize}, multiply row i by absmax[i] / 127, reshape to {tuple(shape)}.")


def check_nf4_index(answer: object, value: float = 0.3) -> bool:
    """Notebook 02, exercise 1: the NF4 index (0..15) of an absmax-scaled `value`."""
    code = quant.normal_float_code(4)
    expected = torch.bucketize(torch.tensor(value), (code[1:] + code[:-1]) / 2)
    return check("Exercise 1: one value into NF4", _matches(answer, expected),
                 f"find the level of the NF4 table closest to {value} and give its position (0 = -1.0, 15 = 1.0).")


def check_packed_byte(answer: object, first: int = 11, second: int = 3) -> bool:
    """Notebook 02, exercise 2: the byte holding the 4-bit codes `first` (high nibble) and `second`."""
    return check("Exercise 2: two codes per byte", _matches(answer, torch.tensor((first << 4) | second)),
                 "the first code goes into the high 4 bits: first * 16 + second, i.e. (first << 4) | second.")


def check_nf4_bytes(answer: object, shape: tuple[int, ...] = (2048, 2048), blocksize: int = 64) -> bool:
    """Notebook 02, exercise 3: bytes quantize_4bit needs for `shape` (packed codes + fp32 absmax)."""
    n = math.prod(shape)
    expected = torch.tensor(-(-n // 2) + 4 * -(-n // blocksize))
    return check("Exercise 3: bytes of a 4-bit matrix", _matches(answer, expected),
                 f"two codes per byte, plus one 4-byte fp32 absmax per block of {blocksize} weights.")


def check_dq_bits(answer: object, blocksize: int = 128, blocksize2: int = 256) -> bool:
    """Notebook 03, exercise 1: constant bits per parameter with double quantization."""
    expected = torch.tensor(memory.constant_bits_per_param(blocksize, double_quant=True, blocksize2=blocksize2))
    return check("Exercise 1: double quantization, blocks of 128", _matches(answer, expected, 1e-9),
                 f"an 8-bit constant per {blocksize} weights, plus an fp32 constant per {blocksize2} of those.")


def check_lora_params(answer: object, config: object, r: int = 8) -> bool:
    """Notebook 03, exercise 2: LoRA parameters (rank r on q, k, v, o) of the model `config` describes."""
    expected = torch.tensor(memory.lora_params(config, r=r))
    return check("Exercise 2: LoRA parameters of Gemma-2B", _matches(answer, expected),
                 f"each adapted layer h -> o adds r * (h + o) = {r} * (h + o); k and v map 2048 -> 256; "
                 "count q, k, v, o in every layer.")


def check_c1_field(answer: object) -> bool:
    """Notebook 03, exercise 3: the quant_state field that holds the paper's c1 (second-level fp32 constants)."""
    ok = None if answer is None else str(answer).strip().removeprefix("quant_state.") == "state2.absmax"
    return check("Exercise 3: which constant is c1", ok,
                 "c1 is the fp32 constant of the *second* quantization: look inside quant_state.state2.")

# ----------------------------------------------------------------------------- notebooks 04-05


def check_lora_adamw_bytes(answer: object, config, r: int = 16) -> bool:
    """Notebook 04, exercise 1: AdamW state bytes of LoRA rank r on q,k,v,o of the model `config` describes."""

    expected = torch.tensor(8 * memory.lora_params(config, r=r))
    return check("Exercise 1: AdamW state of a bigger LoRA", _matches(answer, expected),
                 f"count the LoRA parameters at r={r} (each A is r x in, each B is out x r), then 8 bytes each.")


def check_fp32_tensors(answer: object, numels: list[int]) -> bool:
    """Notebook 04, exercise 2: how many tensors AdamW8bit keeps in fp32 (fewer than min_8bit_size elements)."""
    from helpers import optim  # bitsandbytes loads only when notebook 04 asks

    expected = torch.tensor(sum(n < optim.MIN_8BIT_SIZE for n in numels))
    return check("Exercise 2: tensors that stay fp32", _matches(answer, expected),
                 f"count the tensors with fewer than optim.MIN_8BIT_SIZE = {optim.MIN_8BIT_SIZE} elements.")


def check_paged_bytes(answer: object, numels: list[int]) -> bool:
    """Notebook 04, exercise 3: bytes of paged_adamw_32bit state that bitsandbytes puts in unified memory."""
    from helpers import optim

    expected = torch.tensor(8 * sum(n for n in numels if n >= optim.PAGE_MIN_NUMEL))
    return check("Exercise 3: what gets paged", _matches(answer, expected),
                 f"only tensors with at least optim.PAGE_MIN_NUMEL = {optim.PAGE_MIN_NUMEL:,} elements are paged; "
                 "each of their elements has 8 bytes of fp32 state.")


def check_tokens_per_step(answer: object, args) -> bool:
    """Notebook 05, exercise 1: tokens one optimizer step sees with these training arguments (packed blocks)."""
    expected = torch.tensor(args.per_device_train_batch_size * args.gradient_accumulation_steps * args.max_length)
    return check("Exercise 1: tokens per optimizer step", _matches(answer, expected),
                 "a step accumulates gradient_accumulation_steps micro-batches of per_device_train_batch_size "
                 "packed blocks, each max_length tokens long.")


def check_epoch_steps(answer: object, n_blocks: int, args) -> bool:
    """Notebook 05, exercise 2: optimizer steps in one epoch over n_blocks packed blocks."""
    expected = torch.tensor(math.ceil(n_blocks / (args.per_device_train_batch_size * args.gradient_accumulation_steps)))
    return check("Exercise 2: steps in one epoch", _matches(answer, expected),
                 "each step takes batch size x gradient accumulation blocks; a last, partial step still counts "
                 "(round up).")


def check_lora_percent(answer: object, config, r: int = 8) -> bool:
    """Notebook 05, exercise 3: the percentage of the model `config` describes that LoRA r on q,k,v,o trains."""
    from transformers import AutoModelForCausalLM


    with torch.device("meta"):
        total = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    expected = torch.tensor(100 * memory.lora_params(config, r=r) / total)
    return check("Exercise 3: how much LoRA trains", _matches(answer, expected, 1e-4),
                 "divide memory.lora_params(config) by the model's parameter count (2,506,172,416 for "
                 "Gemma-2B, facts.md) and multiply by 100.")
