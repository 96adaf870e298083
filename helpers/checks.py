"""Self-checks for the notebooks' exercises: each says right or wrong and gives a hint."""

import math

import torch

from helpers import memory, quant
from helpers.language import pick


def check(name: str, ok: bool | None, hint: str) -> bool:
    """Print whether exercise `name` is right (ok=None means not answered yet) and return ok."""
    if ok is None:
        print(pick(f"⏳ {name}: not answered yet. Hint: {hint}", f"⏳ {name}: 아직 답하지 않았습니다. 힌트: {hint}"))
        return False
    if ok:
        print(pick(f"✅ {name}: right!", f"✅ {name}: 맞았습니다!"))
    else:
        print(pick(f"❌ {name}: not yet. Hint: {hint}", f"❌ {name}: 아직 아닙니다. 힌트: {hint}"))
    return bool(ok)


# ----------------------------------------------------------------------------- notebooks 01-03


def _significant(value: float) -> int:
    """Return how many significant figures `value` is written with (0.0635: 3; a float32's 0.0635 as well)."""
    for figures in range(1, 17):
        if math.isclose(float(f"{value:.{figures}g}"), value, rel_tol=1e-7):
            return figures
    return 17


def _rounds_to(answer: float, exact: float, figures: int) -> bool:
    """Whether answer is `exact` rounded to `figures` or more significant figures (0.0635 for 0.0634765625, 3)."""
    written = _significant(answer)
    if written < figures or answer == 0:
        return False
    half_unit = 0.5 * 10 ** (math.floor(math.log10(abs(answer))) - written + 1)
    return abs(answer - exact) <= half_unit * (1 + 1e-9)


def _matches(answer: object, expected: torch.Tensor, atol: float = 0.0, figures: int | None = None) -> bool | None:
    """None when unanswered; else whether `answer` (number, list or tensor) equals `expected` within atol.

    An integer `expected` (a count of bytes, steps, parameters) must be met exactly; a float one to 1e-5, or, when
    `figures` is given, also as the exact value rounded to that many significant figures or more (as the notebooks
    and the paper print it: 0.127 bits). Anything else is a near miss, and a near miss is a wrong answer.
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
    if figures is not None and got.numel() == 1 and _rounds_to(got.item(), expected.item(), figures):
        return True
    return bool(torch.allclose(got.reshape(expected.shape), expected, rtol=rtol, atol=atol))


def check_absmax_codes(answer: object, x: torch.Tensor) -> bool:
    """Notebook 01, exercise 1: the absmax int8 codes of `x`."""
    expected = torch.round(x.float() * (127 / x.abs().max()))
    return check(pick("Exercise 1: absmax int8 by hand", "연습 1: 손으로 양자화하기"), _matches(answer, expected),
                 pick("c = 127 / x.abs().max(), then torch.round(c * x): the largest magnitude becomes ±127.",
                      "c = 127 / x.abs().max()를 구한 뒤 torch.round(c * x)를 계산하세요. "
                      "절댓값이 가장 큰 값은 ±127이 됩니다."))


def check_constant_bits(answer: object, const_bits: int = 16, blocksize: int = 128) -> bool:
    """Notebook 01, exercise 2: extra bits per parameter of one `const_bits` constant per block."""
    return check(pick("Exercise 2: cost of the constants", "연습 2: 더 싼 상수"),
                 _matches(answer, torch.tensor(const_bits / blocksize), 1e-9),
                 pick(f"one {const_bits}-bit constant is shared by the {blocksize} values of its block.",
                      f"{const_bits}비트 상수 하나를 블록의 값 {blocksize}개가 함께 씁니다."))


def check_block_dequantize(
    answer: object, q: torch.Tensor, absmax: torch.Tensor, shape: tuple[int, ...], blocksize: int
) -> bool:
    """Notebook 01, exercise 3: block-wise int8 codes turned back into floats of `shape`."""
    expected = quant.blockwise_dequantize(q, absmax, shape, blocksize=blocksize)
    ok = _matches(answer, expected, atol=1e-6)
    if ok and tuple(torch.as_tensor(answer).shape) != tuple(shape):
        ok = False
    return check(pick("Exercise 3: block-wise dequantization", "연습 3: 블록을 직접 역양자화하기"), ok,
                 pick(f"view q as rows of {blocksize}, multiply row i by absmax[i] / 127, reshape to {tuple(shape)}.",
                      f"q를 {blocksize}개씩의 행으로 보고, i번째 행에 absmax[i] / 127을 곱한 뒤 "
                      f"{tuple(shape)} 모양으로 되돌리세요."))


def check_nf4_index(answer: object, value: float = 0.3) -> bool:
    """Notebook 02, exercise 1: the NF4 index (0..15) of an absmax-scaled `value`."""
    code = quant.normal_float_code(4)
    expected = torch.bucketize(torch.tensor(value), (code[1:] + code[:-1]) / 2)
    return check(pick("Exercise 1: one value into NF4", "연습 1: NF4로 값 하나 옮기기"), _matches(answer, expected),
                 pick(f"find the level of the NF4 table closest to {value} and give its position (0 = -1.0, 15 = 1.0).",
                      f"NF4 표에서 {value}에 가장 가까운 레벨을 찾아 그 인덱스를 답하세요 "
                      "(0 = -1.0, 15 = 1.0)."))


def check_packed_byte(answer: object, first: int = 11, second: int = 3) -> bool:
    """Notebook 02, exercise 2: the byte holding the 4-bit codes `first` (high nibble) and `second`."""
    return check(pick("Exercise 2: two codes per byte", "연습 2: 코드 두 개 담기"),
                 _matches(answer, torch.tensor((first << 4) | second)),
                 pick("the first code goes into the high 4 bits: first * 16 + second, i.e. (first << 4) | second.",
                      "첫 번째 코드가 상위 4비트에 들어갑니다: first * 16 + second, "
                      "즉 (first << 4) | second."))


def check_nf4_bytes(answer: object, shape: tuple[int, ...] = (2048, 2048), blocksize: int = 64) -> bool:
    """Notebook 02, exercise 3: bytes quantize_4bit needs for `shape` (packed codes + fp32 absmax).

    Counting the 16-entry fp32 code table too (64 bytes, as notebook 03's memory count does) is right as well.
    """
    n = math.prod(shape)
    expected = -(-n // 2) + 4 * -(-n // blocksize)
    ok = _matches(answer, torch.tensor(expected))
    if ok is False:
        ok = _matches(answer, torch.tensor(expected + 16 * 4))
    return check(pick("Exercise 3: bytes of a 4-bit matrix", "연습 3: 4비트 행렬의 바이트 수"), ok,
                 pick(f"two codes per byte, plus one 4-byte fp32 absmax per block of {blocksize} weights.",
                      f"바이트 하나에 코드 두 개, 그리고 가중치 {blocksize}개짜리 블록마다 "
                      "4바이트 fp32 absmax 하나를 더하세요."))


def check_dq_bits(answer: object, blocksize: int = 128, blocksize2: int = 256) -> bool:
    """Notebook 03, exercise 1: constant bits per parameter with double quantization (exact, or to 3 figures)."""
    expected = torch.tensor(memory.constant_bits_per_param(blocksize, double_quant=True, blocksize2=blocksize2))
    return check(pick("Exercise 1: double quantization, blocks of 128", "연습 1: 이중 양자화, 블록 크기 128"),
                 _matches(answer, expected, 1e-9, figures=3),  # the paper's 0.127 for blocks of 64
                 pick(f"an 8-bit constant per {blocksize} weights, plus an fp32 constant per {blocksize2} of those.",
                      f"가중치 {blocksize}개마다 8비트 상수 하나, 그리고 그 상수 "
                      f"{blocksize2}개마다 fp32 상수 하나입니다."))


def check_lora_params(answer: object, config: object, r: int = 8) -> bool:
    """Notebook 03, exercise 2: LoRA parameters (rank r on q, k, v, o) of the model `config` describes."""
    expected = torch.tensor(memory.lora_params(config, r=r))
    return check(pick("Exercise 2: LoRA parameters of Gemma-2B", "연습 2: Gemma-2B의 LoRA 파라미터"),
                 _matches(answer, expected),
                 pick(f"each adapted layer h -> o adds r * (h + o) = {r} * (h + o); k and v map 2048 -> 256; "
                      "count q, k, v, o in every layer.",
                      f"어댑터를 붙인 층 h -> o 하나가 파라미터를 r * (h + o) = {r} * (h + o)개 더합니다. "
                      "k와 v는 2048 -> 256입니다. 모든 층의 q, k, v, o를 세세요."))


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
    return check(pick("Exercise 3: which constant is c1", "연습 3: c1은 어느 상수일까요"), ok,
                 pick("c1 is the fp32 constant of the *second* quantization: look inside quant_state.state2.",
                      "c1은 *두 번째* 양자화의 fp32 상수입니다: quant_state.state2 안을 보세요."))


def check_zeropoint_codes(answer: object, x: torch.Tensor, bits: int = 8) -> bool:
    """Notebook 01, exercise 4 (code): the zero-point (asymmetric) codes of `x`."""
    q = quant.zeropoint_quantize(x, bits=bits)[0]
    ok = _matches(answer, q.float())
    hint = pick("scale = (max - min) / 255 with min and max widened to include 0, zero_point = round(-min / scale), "
                "q = clamp(round(x / scale) + zero_point, 0, 255).",
                "min과 max를 0이 들어가도록 넓힌 뒤 scale = (max - min) / 255, "
                "zero_point = round(-min / scale), q = clamp(round(x / scale) + zero_point, 0, 255).")
    if ok is False and _matches(answer, quant.absmax_quantize(x)[0].float()):
        hint = pick("those are absmax codes: zero-point maps [min, max] onto 0..255 instead of ±absmax onto ±127. ",
                    "입력한 답은 absmax 코드입니다: 영점 양자화는 ±absmax를 ±127에 맞추는 대신 "
                    "[min, max]를 0..255에 맞춥니다. ") + hint
    return check(pick("Exercise 4: zero-point by hand", "연습 4: 손으로 영점 양자화하기"), ok, hint)


def check_nf3_code(answer: object) -> bool:
    """Notebook 02, exercise 4 (code): the 8 levels of NF3 built from the recipe, sorted, in [-1, 1]."""
    expected = quant.normal_float_code(3).double()
    ok = None if answer is None else False
    hint = pick("k = 3: offset from the formula with 2^3 = 8, then 4 positive quantiles "
                "(linspace(offset, 0.5, 5)[:-1]), 3 negative ones (linspace(offset, 0.5, 4)[:-1]), an exact 0; "
                "sort and divide by the largest.",
                "k = 3: 2^3 = 8로 식에서 offset을 구한 뒤, 양의 분위수 4개(linspace(offset, 0.5, 5)[:-1]), "
                "음의 분위수 3개(linspace(offset, 0.5, 4)[:-1]), 정확한 0 하나를 모아 "
                "정렬하고 가장 큰 값으로 나누세요.")
    try:
        got = torch.as_tensor(answer, dtype=torch.float64).flatten() if answer is not None else None
    except (TypeError, ValueError, RuntimeError):
        got = None
    if got is not None:
        # float64 quantiles differ from bitsandbytes' float32 recipe in the 7th decimal: both builds are right, and
        # so are the levels as the solution prints them, to 4 decimals (each within half a unit of the 4th).
        ok = got.numel() == 8 and bool(torch.allclose(got.sort().values, expected, rtol=0, atol=5e-5 + 1e-6))
        if got.numel() == 9:
            hint = pick("9 levels: both halves contain 0; remove one of the two zeros (4 + 5 - 1 = 8). ",
                        "레벨이 9개입니다: 양쪽 절반에 모두 0이 들어 있으니 "
                        "두 0 중 하나를 빼세요 (4 + 5 - 1 = 8). ") + hint
        elif got.numel() == 8 and not ok and abs(got.abs().max().item() - 1) > 1e-6:
            hint = pick("normalise: divide every level by the largest, so that the code spans [-1, 1]. ",
                        "정규화하세요: 모든 레벨을 가장 큰 값으로 나누어 "
                        "코드가 [-1, 1]을 채우게 하세요. ") + hint
    return check(pick("Exercise 4: NF3 from the recipe", "연습 4: 만드는 법대로 NF3 만들기"), ok, hint)


def lora_output_matches(answer: torch.Tensor, expected: torch.Tensor) -> bool:
    """Whether a LoRA layer's output computed by hand equals the layer's, to a 16-bit compute dtype's rounding."""
    got, want = answer.detach().float().cpu(), expected.detach().float().cpu()
    return bool(torch.allclose(got, want, rtol=1e-2, atol=1e-2 * want.abs().max().item()))


def check_lora_output(answer: object, expected: torch.Tensor) -> bool:
    """Notebook 03, exercise 4 (code): one LoRA layer's output computed from its parts, against the layer's."""
    hint = pick("X @ W.T with W = the double-dequantized base weight, plus s * X @ A.T @ B.T with A = lora_A, "
                "B = lora_B and s = lora_alpha / r; compare in float32.",
                "X @ W.T(W = 이중 역양자화한 베이스 가중치)에 s * X @ A.T @ B.T"
                "(A = lora_A, B = lora_B, s = lora_alpha / r)를 더하세요. float32로 비교합니다.")
    ok = None if answer is None else False
    if isinstance(answer, torch.Tensor) and answer.shape == expected.shape:
        ok = lora_output_matches(answer, expected)
    elif isinstance(answer, torch.Tensor):
        hint = pick(f"the output has shape {tuple(expected.shape)} (b x o), got {tuple(answer.shape)}: "
                    "check the transposes. ",
                    f"출력의 모양은 {tuple(expected.shape)} (b x o)여야 하는데 "
                    f"{tuple(answer.shape)}입니다: 전치를 확인하세요. ") + hint
    return check(pick("Exercise 4: a LoRA layer by hand", "연습 4: LoRA 층을 손으로 계산하기"), ok, hint)

# ----------------------------------------------------------------------------- notebooks 04-05


def check_lora_adamw_bytes(answer: object, config, r: int = 16) -> bool:
    """Notebook 04, exercise 1: AdamW state bytes of LoRA rank r on q,k,v,o of the model `config` describes."""

    expected = torch.tensor(8 * memory.lora_params(config, r=r))
    return check(pick("Exercise 1: AdamW state of a bigger LoRA", "연습 1: 더 큰 LoRA의 AdamW 상태"),
                 _matches(answer, expected),
                 pick(f"count the LoRA parameters at r={r} (each A is r x in, each B is out x r), then 8 bytes each.",
                      f"r={r}일 때의 LoRA 파라미터를 세고(A는 r x in, B는 out x r), "
                      "파라미터 수에 8바이트를 곱하세요(파라미터당 8바이트)."))


def check_fp32_tensors(answer: object, numels: list[int]) -> bool:
    """Notebook 04, exercise 2: how many tensors AdamW8bit keeps in fp32 (fewer than min_8bit_size elements)."""
    from helpers import optim  # bitsandbytes loads only when notebook 04 asks

    expected = torch.tensor(sum(n < optim.MIN_8BIT_SIZE for n in numels))
    return check(pick("Exercise 2: tensors that stay fp32", "연습 2: fp32로 남는 텐서"), _matches(answer, expected),
                 pick(f"count the tensors with fewer than optim.MIN_8BIT_SIZE = {optim.MIN_8BIT_SIZE} elements.",
                      f"원소가 optim.MIN_8BIT_SIZE = {optim.MIN_8BIT_SIZE}개보다 적은 텐서를 세세요."))


def check_paged_bytes(answer: object, numels: list[int]) -> bool:
    """Notebook 04, exercise 3: bytes of paged_adamw_32bit state that bitsandbytes puts in unified memory."""
    from helpers import optim

    expected = torch.tensor(8 * sum(n for n in numels if n >= optim.PAGE_MIN_NUMEL))
    return check(pick("Exercise 3: what gets paged", "연습 3: 페이징되는 것"), _matches(answer, expected),
                 pick(f"only tensors with at least optim.PAGE_MIN_NUMEL = {optim.PAGE_MIN_NUMEL:,} elements are paged; "
                      "each of their elements has 8 bytes of fp32 state.",
                      f"원소가 optim.PAGE_MIN_NUMEL = {optim.PAGE_MIN_NUMEL:,}개 이상인 텐서만 "
                      "페이징됩니다. 그 원소 하나마다 fp32 상태가 8바이트입니다."))


def check_tokens_per_step(answer: object, args) -> bool:
    """Notebook 05, exercise 1: tokens one optimizer step sees with these training arguments (packed blocks)."""
    expected = torch.tensor(args.per_device_train_batch_size * args.gradient_accumulation_steps * args.max_length)
    return check(pick("Exercise 1: tokens per optimizer step", "연습 1: 옵티마이저 스텝당 토큰 수"),
                 _matches(answer, expected),
                 pick("a step accumulates gradient_accumulation_steps micro-batches of per_device_train_batch_size "
                      "packed blocks, each max_length tokens long.",
                      "스텝 한 번은 패킹된 블록 per_device_train_batch_size개짜리 마이크로배치를 "
                      "gradient_accumulation_steps번 누적하고, 블록 하나는 max_length 토큰입니다."))


def check_epoch_steps(answer: object, n_blocks: int, args) -> bool:
    """Notebook 05, exercise 2: optimizer steps in one epoch over n_blocks packed blocks."""
    expected = torch.tensor(math.ceil(n_blocks / (args.per_device_train_batch_size * args.gradient_accumulation_steps)))
    return check(pick("Exercise 2: steps in one epoch", "연습 2: 한 에폭의 스텝 수"), _matches(answer, expected),
                 pick("each step takes batch size x gradient accumulation blocks; a last, partial step still counts "
                      "(round up).",
                      "스텝마다 (배치 크기 × 그레이디언트 누적 횟수)개의 블록을 씁니다. "
                      "블록이 모자란 마지막 스텝도 한 스텝입니다(올림)."))


def check_lora_percent(answer: object, config, r: int = 8) -> bool:
    """Notebook 05, exercise 3: the percentage of the model `config` describes that LoRA r on q,k,v,o trains."""
    from transformers import AutoModelForCausalLM


    with torch.device("meta"):
        total = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    expected = torch.tensor(100 * memory.lora_params(config, r=r) / total)
    return check(pick("Exercise 3: how much LoRA trains", "연습 3: LoRA가 학습하는 비율"),
                 _matches(answer, expected, figures=2),  # notebook 03 prints 0.074 %, notebook 05 0.0735 %
                 pick("divide memory.lora_params(config) by the model's parameter count (2,506,172,416 for "
                      "Gemma-2B, facts.md) and multiply by 100.",
                      "memory.lora_params(config)를 모델의 파라미터 수(Gemma-2B는 "
                      "2,506,172,416개, facts.md)로 나누고 100을 곱하세요."))


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
    name = pick("Exercise 4: AdamW by hand", "연습 4: AdamW를 손으로 작성하기")
    formulas = ("m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2; m_hat = m/(1-b1**t); v_hat = v/(1-b2**t); "
                "p = p - lr*(m_hat/(v_hat.sqrt()+eps) + weight_decay*p); return p, m, v.")
    pending = pick(formulas, "1절의 식을 한 줄씩 옮기세요: " + formulas)
    if update is None:
        return check(name, None, pending)
    if not callable(update):
        return check(name, False, pick("pass the function itself, without calling it: "
                                       "check_adamw_update(adamw_update).",
                                       "함수를 호출하지 말고 함수 자체를 넘기세요: "
                                       "check_adamw_update(adamw_update)."))
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
            return check(name, None, pending)
        try:
            p, m, v = (torch.as_tensor(x, dtype=torch.float32) for x in out)
        except (TypeError, ValueError, RuntimeError):
            return check(name, False, pick("return the three new tensors, in this order: return p, m, v.",
                                           "새 텐서 세 개를 이 순서로 돌려주세요: return p, m, v."))
        if p.shape != start.shape or m.shape != start.shape or v.shape != start.shape:
            return check(name, False, pick(f"p, m and v keep the parameter's shape {tuple(start.shape)}.",
                                           f"p, m, v는 파라미터와 같은 모양 {tuple(start.shape)}을 "
                                           "유지해야 합니다."))
    if torch.allclose(p, reference.detach(), rtol=1e-5, atol=1e-6):
        return check(name, True, "")
    mistakes = {
        pick("divide m by 1 - b1**t and v by 1 - b2**t (t starts at 1): Adam's bias correction.",
             "m을 1 - b1**t로, v를 1 - b2**t로 나누세요(t는 1부터): Adam의 편향 보정입니다."):
            {"bias_correction": False},
        pick("AdamW decays the weight itself, p - lr*weight_decay*p; adding weight_decay*p to g is Adam's L2 penalty.",
             "AdamW는 가중치 자체를 감쇠합니다(p - lr*weight_decay*p). g에 weight_decay*p를 "
             "더하는 것은 Adam의 L2 페널티입니다."):
            {"decay": "l2"},
        pick("the update also subtracts lr * weight_decay * p (decoupled weight decay), "
             "with the weight_decay argument.",
             "업데이트는 weight_decay 인자로 lr * weight_decay * p도 뺍니다"
             "(분리된 가중치 감쇠, decoupled weight decay)."):
            {"decay": "none"},
    }
    for hint, mistake in mistakes.items():
        if torch.allclose(p, _adamw_by_formula(start, grads, **settings, **mistake), rtol=1e-5, atol=1e-6):
            return check(name, False, hint)
    return check(name, False, pick("use the arguments lr, betas, eps, weight_decay you are given, and section 1: ",
                                   "주어진 인자 lr, betas, eps, weight_decay와 1절의 식을 쓰세요: ")
                 + formulas)
