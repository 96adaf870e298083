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
    """None when unanswered; else whether `answer` (number, list or tensor) equals `expected` within atol.

    An integer `expected` (a count of bytes, steps, parameters) must be met exactly; a float one to 1e-5.
    """
    if answer is None:
        return None
    if isinstance(answer, (bool, str)):  # True is 1 and "179" is not a number: neither is an answer here
        return False
    try:
        got = torch.as_tensor(answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    rtol = 1e-5 if expected.is_floating_point() else 0.0
    expected = expected.to(torch.float64)
    if got.shape != expected.shape and got.numel() != expected.numel():
        return False
    return bool(torch.allclose(got.reshape(expected.shape), expected, rtol=rtol, atol=atol))


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
    """Notebook 02, exercise 3: bytes quantize_4bit needs for `shape` (packed codes + fp32 absmax).

    Counting the 16-entry fp32 code table too (64 bytes, as notebook 03's memory count does) is right as well.
    """
    n = math.prod(shape)
    expected = -(-n // 2) + 4 * -(-n // blocksize)
    ok = _matches(answer, torch.tensor(expected))
    if ok is False:
        ok = _matches(answer, torch.tensor(expected + 16 * 4))
    return check("Exercise 3: bytes of a 4-bit matrix", ok,
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


def _is_c1(answer: object, quant_state: object | None) -> bool:
    """Whether answer names state2.absmax (any prefix, e.g. "qs.state2.absmax") or is that tensor of quant_state."""
    if isinstance(answer, str):
        parts = answer.strip().strip("`'\"").replace(" ", "").split(".")
        while parts and parts[-1] in ("cpu()", "float()", "detach()", "clone()"):
            parts.pop()
        return parts[-2:] == ["state2", "absmax"] and all(p.isidentifier() for p in parts)
    if isinstance(answer, torch.Tensor) and quant_state is not None:
        c1 = quant_state.state2.absmax
        return answer is c1 or (answer.dtype == c1.dtype and answer.shape == c1.shape
                                and torch.equal(answer.cpu(), c1.cpu()))
    return False


def check_c1_field(answer: object, quant_state: object | None = None) -> bool:
    """Notebook 03, exercise 3: the quant_state field that holds the paper's c1 (second-level fp32 constants).

    The answer is the field's name ("quant_state.state2.absmax", "qs.state2.absmax", ...) or, when the
    layer's `quant_state` is passed, the tensor itself.
    """
    ok = None if answer is None else _is_c1(answer, quant_state)
    return check("Exercise 3: which constant is c1", ok,
                 "c1 is the fp32 constant of the *second* quantization: look inside quant_state.state2.")


def check_zeropoint_codes(answer: object, x: torch.Tensor, bits: int = 8) -> bool:
    """Notebook 01, exercise 4 (code): the zero-point (asymmetric) codes of `x`."""
    q = quant.zeropoint_quantize(x, bits=bits)[0]
    ok = _matches(answer, q.float())
    hint = ("scale = (max - min) / 255 with min and max widened to include 0, zero_point = round(-min / scale), "
            "q = clamp(round(x / scale) + zero_point, 0, 255).")
    if ok is False and _matches(answer, quant.absmax_quantize(x)[0].float()):
        hint = "those are absmax codes: zero-point maps [min, max] onto 0..255 instead of ±absmax onto ±127. " + hint
    return check("Exercise 4: zero-point by hand", ok, hint)


def check_nf3_code(answer: object) -> bool:
    """Notebook 02, exercise 4 (code): the 8 levels of NF3 built from the recipe, sorted, in [-1, 1]."""
    expected = quant.normal_float_code(3).double()
    ok = None if answer is None else False
    hint = ("k = 3: offset from the formula with 2^3 = 8, then 4 positive quantiles (linspace(offset, 0.5, 5)[:-1]), "
            "3 negative ones (linspace(offset, 0.5, 4)[:-1]), an exact 0; sort and divide by the largest.")
    try:
        got = torch.as_tensor(answer, dtype=torch.float64).flatten() if answer is not None else None
    except (TypeError, ValueError, RuntimeError):
        got = None
    if got is not None:
        # float64 quantiles differ from bitsandbytes' float32 recipe in the 7th decimal: both builds are right.
        ok = got.numel() == 8 and bool(torch.allclose(got.sort().values, expected, atol=1e-6))
        if got.numel() == 9:
            hint = "9 levels: both halves contain 0; remove one of the two zeros (4 + 5 - 1 = 8). " + hint
        elif got.numel() == 8 and not ok and abs(got.abs().max().item() - 1) > 1e-6:
            hint = "normalise: divide every level by the largest, so that the code spans [-1, 1]. " + hint
    return check("Exercise 4: NF3 from the recipe", ok, hint)


def check_lora_output(answer: object, expected: torch.Tensor) -> bool:
    """Notebook 03, exercise 4 (code): one LoRA layer's output computed from its parts, against the layer's."""
    hint = ("X @ W.T with W = the double-dequantized base weight, plus s * X @ A.T @ B.T with A = lora_A, "
            "B = lora_B and s = lora_alpha / r; compare in float32.")
    ok = None if answer is None else False
    if isinstance(answer, torch.Tensor) and answer.shape == expected.shape:
        got, want = answer.detach().float().cpu(), expected.detach().float().cpu()
        ok = bool(torch.allclose(got, want, rtol=1e-2, atol=1e-2 * want.abs().max().item()))
    elif isinstance(answer, torch.Tensor):
        hint = (f"the output has shape {tuple(expected.shape)} (b x o), got {tuple(answer.shape)}: "
                "check the transposes. " + hint)
    return check("Exercise 4: a LoRA layer by hand", ok, hint)

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


def _adamw_by_formula(start: torch.Tensor, grads: list[torch.Tensor], lr: float, betas: tuple[float, float],
                      eps: float, weight_decay: float, bias_correction: bool = True, decay: str = "decoupled"
                      ) -> torch.Tensor:
    """AdamW (or one of its typical misreadings) from notebook 04's formulas, for the hints of exercise 4."""
    p, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for t, g in enumerate(grads, 1):
        if decay == "l2":  # Adam's L2 penalty: the decay goes through the gradient and the moments
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = (m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)) if bias_correction else (m, v)
        p = p - lr * (m_hat / (v_hat.sqrt() + eps) + (weight_decay * p if decay == "decoupled" else 0))
    return p


def check_adamw_update(update: object) -> bool:
    """Notebook 04, exercise 4: `update(p, g, m, v, t, lr, betas, eps, weight_decay)` returns AdamW's new p, m, v."""
    name = "Exercise 4: AdamW by hand"
    formulas = ("m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2; m_hat = m/(1-b1**t); v_hat = v/(1-b2**t); "
                "p = p - lr*(m_hat/(v_hat.sqrt()+eps) + weight_decay*p); return p, m, v.")
    if update is None:
        return check(name, None, formulas)
    if not callable(update):
        return check(name, False, "pass the function itself, without calling it: check_adamw_update(adamw_update).")
    gen = torch.Generator().manual_seed(4)
    start = torch.randn(5, 7, generator=gen)
    grads = [torch.randn(5, 7, generator=gen) for _ in range(3)]
    # a large lr and weight decay, so that a missing term moves the weights far more than float32 rounding
    settings = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    reference = torch.nn.Parameter(start.clone())
    optimizer = torch.optim.AdamW([reference], **settings)
    p, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for t, g in enumerate(grads, 1):
        reference.grad = g.clone()
        optimizer.step()
        out = update(p.clone(), g.clone(), m.clone(), v.clone(), t, **settings)
        if out is None:
            return check(name, None, formulas)
        try:
            p, m, v = (torch.as_tensor(x, dtype=torch.float32) for x in out)
        except (TypeError, ValueError, RuntimeError):
            return check(name, False, "return the three new tensors, in this order: return p, m, v.")
        if p.shape != start.shape or m.shape != start.shape or v.shape != start.shape:
            return check(name, False, f"p, m and v keep the parameter's shape {tuple(start.shape)}.")
    if torch.allclose(p, reference.detach(), rtol=1e-5, atol=1e-6):
        return check(name, True, "")
    mistakes = {
        "divide m by 1 - b1**t and v by 1 - b2**t (t starts at 1): Adam's bias correction.": {"bias_correction": False},
        "AdamW decays the weight itself, p - lr*weight_decay*p; adding weight_decay*p to g is Adam's L2 penalty.":
            {"decay": "l2"},
        "the update also subtracts lr * weight_decay * p (decoupled weight decay), with the weight_decay argument.":
            {"decay": "none"},
    }
    for hint, mistake in mistakes.items():
        if torch.allclose(p, _adamw_by_formula(start, grads, **settings, **mistake), rtol=1e-5, atol=1e-6):
            return check(name, False, hint)
    return check(name, False, "use the arguments lr, betas, eps, weight_decay you are given, and section 1: "
                 + formulas)
