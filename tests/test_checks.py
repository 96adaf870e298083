"""The exercise checks: every correct form of an answer is right, each typical mistake is "not yet" with a hint."""
import inspect
import math
import re
from types import SimpleNamespace

import bitsandbytes.functional as F
import numpy as np
import pytest
import torch

from helpers import checks, language, loading, quant

GEMMA_2B = loading.gemma_2b_config()


def verdict(capsys, returned: bool) -> str:
    """What the learner saw: "right", "not yet" or "pending"; checks that the return value and the hint agree."""
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"one line per check, got {out!r}"
    if out.startswith("✅"):
        assert returned is True and "Hint" not in out
        return "right"
    assert returned is False, out
    _, hint = out.split("Hint: ")
    assert len(hint.strip()) > 20, f"the hint says too little: {hint!r}"
    if out.startswith("❌") and ": not yet." in out:
        return "not yet"
    if out.startswith("⏳") and "not answered yet" in out:
        return "pending"
    raise AssertionError(f"unexpected check output {out!r}")


# ----------------------------------------------------------------------------- check() itself


@pytest.mark.parametrize("ok, expected", [(True, "right"), (False, "not yet"), (None, "pending")])
def test_check_prints_its_verdict_and_returns_it(capsys, ok, expected):
    returned = checks.check("Exercise 9: a test", ok, "a hint long enough to be one, with a formula in it.")
    assert verdict(capsys, returned) == expected


# ----------------------------------------------------------------------------- notebooks 01-03

X1 = torch.tensor([0.3, -1.2, 2.5, -0.05])  # notebook 01, exercise 1
X3 = torch.randn(4, 64, generator=torch.Generator().manual_seed(3))  # notebook 01, exercise 3
Q3, ABSMAX3 = quant.blockwise_quantize(X3, blocksize=32)
BLOCKS3 = (Q3.float().view(-1, 32) * (ABSMAX3.view(-1, 1) / 127)).view(4, 64)
N_2048 = 2048 * 2048
NF4_BYTES = N_2048 // 2 + 4 * (N_2048 // 64)  # 2,359,296
DQ_BITS_128 = 8 / 128 + 32 / (128 * 256)
LORA_R8 = 18 * (8 * (2048 + 2048) * 2 + 8 * (2048 + 256) * 2)  # q, o: 2048 -> 2048; k, v: 2048 -> 256


def _quant_state():
    """A double-quantized quant_state, as notebook 03's layer holds one."""
    _, state = F.quantize_4bit(torch.randn(64 * 300), blocksize=64, quant_type="nf4", compress_statistics=True)
    return state


QS = _quant_state()

# (check called with the answer, correct answers in every reasonable form, typical wrong answers)
CASES = {
    "01 ex1 absmax codes": (
        lambda a: checks.check_absmax_codes(a, X1),
        [[15, -61, 127, -3], (15, -61, 127, -3), torch.tensor([15, -61, 127, -3], dtype=torch.int8),
         torch.round(X1 * (127 / X1.abs().max())), torch.round(X1 * (127 / X1.abs().max())).to(torch.int8),
         np.array([15, -61, 127, -3], dtype=np.int8), np.array([15.0, -61.0, 127.0, -3.0]),
         torch.tensor([[15, -61, 127, -3]])],
        [[15, -61, 128, -3],  # scaled to 128
         [15, -60, 127, -2],  # truncated instead of rounded
         X1 * (127 / X1.abs().max()),  # not rounded
         [15, -61, 127],  # a value missing
         [-3, 127, -61, 15],  # reordered
         [0.3, -1.2, 2.5, -0.05],  # the input
         "15, -61, 127, -3", True],
    ),
    "01 ex2 constant bits": (
        checks.check_constant_bits,
        [16 / 128, 0.125, 1 / 8, torch.tensor(0.125), np.float32(0.125), np.float64(0.125), [0.125]],
        [128 / 16, 16, 32 / 128, 16 / 64, 0.12, 0.13, 1, "0.125"],
    ),
    "01 ex3 block dequantize": (
        lambda a: checks.check_block_dequantize(a, Q3, ABSMAX3, X3.shape, 32),
        [BLOCKS3, BLOCKS3.double(), BLOCKS3.tolist(), BLOCKS3.numpy(),
         (Q3.float() * ABSMAX3.repeat_interleave(32) / 127).view(4, 64),
         quant.blockwise_dequantize(Q3, ABSMAX3, X3.shape, blocksize=32)],
        [BLOCKS3.view(-1),  # not reshaped
         BLOCKS3.view(8, 32),  # the blocks, not the tensor's shape
         (Q3.float().view(-1, 32) * (ABSMAX3.view(-1, 1) / 128)).view(4, 64),  # divided by 128
         Q3.float().view(4, 64) / 127,  # absmax forgotten
         (Q3.float().view(4, 64) * ABSMAX3[:4].view(-1, 1) / 127),  # one absmax per row instead of per block
         X3,  # the original floats
         BLOCKS3 * 1.01],
    ),
    "02 ex1 nf4 index": (
        checks.check_nf4_index,
        [11, 11.0, torch.tensor(11), torch.tensor([11]), np.int64(11), [11],
         torch.bucketize(torch.tensor(0.3), quant._midpoints(quant.normal_float_code(4)))],
        [10,  # the level below 0.3 instead of the nearest
         12,  # counted from 1
         quant.normal_float_code(4)[11].item(),  # the level, not its index
         0.3, -1, 11.5],
    ),
    "02 ex2 packed byte": (
        checks.check_packed_byte,
        [179, 0xB3, (11 << 4) | 3, 11 * 16 + 3, 179.0, torch.tensor(179, dtype=torch.uint8), np.uint8(179)],
        [(3 << 4) | 11,  # nibbles swapped
         11 + 3, 11 * 10 + 3, 11 * 8 + 3, -77, "0xB3"],
    ),
    "02 ex3 nf4 bytes": (
        checks.check_nf4_bytes,
        [NF4_BYTES, N_2048 // 2 + 4 * N_2048 // 64, float(NF4_BYTES), torch.tensor(NF4_BYTES), np.int64(NF4_BYTES),
         NF4_BYTES + 16 * 4],  # counting the 16-entry fp32 code table too, as notebook 03 does
        [N_2048 // 2,  # absmax forgotten
         N_2048,  # one byte per code
         N_2048 // 2 + 2 * N_2048 // 64,  # a 2-byte absmax
         N_2048 // 2 + N_2048 // 64,  # a 1-byte absmax
         N_2048 // 2 + 4 * N_2048 // 64 + 16,  # the code table as 16 bytes
         8 * NF4_BYTES,  # bits
         N_2048 * 4 // 8 + 32 * N_2048 // 64],  # the absmax in bits
    ),
    "02 ex3 nf4 bytes, odd size": (
        lambda a: checks.check_nf4_bytes(a, shape=(3, 5), blocksize=64),
        [8 + 4, 8 + 4 + 64],  # 15 codes need 8 bytes
        [7 + 4, 7 + 4 + 64, 8],
    ),
    "03 ex1 dq bits": (
        checks.check_dq_bits,
        [DQ_BITS_128, 8 / 128 + 32 / 128 / 256, 0.0634765625, np.float32(DQ_BITS_128), torch.tensor(DQ_BITS_128),
         0.0635, 0.06348],  # rounded to three figures, as the paper rounds 0.126953 to 0.127
        [8 / 128,  # the second level forgotten
         8 / 64 + 32 / (64 * 256),  # blocks of 64
         0.127, 32 / 128, 8 / 128 + 32 / 256, 0.06, 0.063, 0.0634, 0.0636],
    ),
    "03 ex2 lora params": (
        lambda a: checks.check_lora_params(a, GEMMA_2B),
        [LORA_R8, 1_843_200, float(LORA_R8), torch.tensor(LORA_R8), np.int64(LORA_R8)],
        [18 * 8 * (2048 + 2048) * 4,  # k and v taken as 2048 -> 2048
         LORA_R8 // 18,  # one layer
         18 * (8 * (2048 + 2048) + 8 * (2048 + 256)),  # q and v only
         2 * LORA_R8,  # r=16
         LORA_R8 * 1.05],
    ),
    "03 ex3 c1 field": (
        lambda a: checks.check_c1_field(a, QS),
        ["quant_state.state2.absmax", "state2.absmax", "qs.state2.absmax", " `qs.state2.absmax` ",
         "base.weight.quant_state.state2.absmax", "layer.base_layer.weight.quant_state.state2.absmax",
         "qs.state2.absmax.cpu()", QS.state2.absmax, QS.state2.absmax.cpu().clone()],
        ["absmax", "quant_state.absmax", "qs.absmax", "state2", "quant_state.state2", "state2.code",
         "quant_state.offset", "c1", "c1_fp32", "state2.absmax2", "qs.state2.absmax[0]",
         QS.absmax, QS.offset, QS.state2.code, QS.state2.absmax.half(), QS.state2.absmax + 1],
    ),
}


def _n8(r: int) -> list[int]:
    """Element counts of the LoRA tensors of rank r on q, k, v, o of Gemma-2B (A: r x in, B: out x r)."""
    return [r * 2048, 2048 * r, r * 2048, 256 * r, r * 2048, 256 * r, r * 2048, 2048 * r] * 18


ARGS = SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=2, max_length=512)
ODD_ARGS = SimpleNamespace(per_device_train_batch_size=3, gradient_accumulation_steps=5, max_length=128)
EDGES = [99_999, 100_000, 100_001, 5, 4095, 4096, 4097]  # both sides of PAGE_MIN_NUMEL and MIN_8BIT_SIZE
LORA_PERCENT = 100 * LORA_R8 / 2_506_172_416  # facts.md: Gemma-2B has 2,506,172,416 parameters

CASES |= {
    "04 ex1 lora adamw bytes": (
        lambda a: checks.check_lora_adamw_bytes(a, GEMMA_2B, r=16),
        [8 * 2 * LORA_R8, 8 * sum(_n8(16)), float(8 * sum(_n8(16))), torch.tensor(8 * 2 * LORA_R8),
         np.int64(8 * 2 * LORA_R8)],
        [4 * 2 * LORA_R8,  # one state
         8 * LORA_R8,  # r=8
         2 * 2 * LORA_R8,  # 8-bit states
         16 * 2 * LORA_R8,  # weights and gradients too
         2 * LORA_R8],  # parameters, not bytes
    ),
    "04 ex2 fp32 tensors": (
        lambda a: checks.check_fp32_tensors(a, _n8(8)),
        [36, 2 * 18, 36.0, torch.tensor(36), np.int64(36)],
        [18, 0, 72, 144, 36 * 4],
    ),
    "04 ex2 fp32 tensors, edges": (
        lambda a: checks.check_fp32_tensors(a, EDGES),
        [2],  # 5 and 4095: a tensor of exactly MIN_8BIT_SIZE elements gets 8-bit state
        [3, 1, 0, 7],
    ),
    "04 ex3 paged bytes": (
        lambda a: checks.check_paged_bytes(a, EDGES),
        [8 * (100_000 + 100_001), 1_600_008, torch.tensor(1_600_008), np.int64(1_600_008)],
        [8 * 100_001,  # a tensor of exactly PAGE_MIN_NUMEL elements is paged too
         8 * sum(EDGES),  # everything
         4 * 200_001, 200_001, 0],
    ),
    "05 ex1 tokens per step": (
        lambda a: checks.check_tokens_per_step(a, ARGS),
        [2048, 2 * 2 * 512, 2048.0, torch.tensor(2048), np.int64(2048)],
        [4, 1024, 512, 4096, 2 * 512],
    ),
    "05 ex1 tokens per step, other args": (
        lambda a: checks.check_tokens_per_step(a, ODD_ARGS),
        [3 * 5 * 128],
        [3 * 128, 5 * 128, 2048],
    ),
    "05 ex2 epoch steps": (
        lambda a: checks.check_epoch_steps(a, 6001, ARGS),
        [1501, math.ceil(6001 / 4), 1501.0, torch.tensor(1501), np.int64(1501)],
        [1500,  # rounded down: the last, partial step is lost
         6001 / 4, 3001, 6001, 1502],
    ),
    "05 ex2 epoch steps, whole steps": (
        lambda a: checks.check_epoch_steps(a, 6000, ARGS),
        [1500, 6000 // 4],
        [1501, 3000],
    ),
    "05 ex3 lora percent": (
        lambda a: checks.check_lora_percent(a, GEMMA_2B),
        [LORA_PERCENT, round(LORA_PERCENT, 4), np.float64(LORA_PERCENT), torch.tensor(LORA_PERCENT)],
        [LORA_PERCENT / 100,  # a fraction, not a percentage
         100 * LORA_R8 / (2_506_172_416 - 256_000 * 2048),  # the embedding left out
         2 * LORA_PERCENT,  # r=16
         LORA_PERCENT * 1.05, 0.2],  # the post's LLaMA-7B figure
    ),
}


def _right(name):
    call, right, _ = CASES[name]
    return [pytest.param(call, a, id=f"{name}-{i}") for i, a in enumerate(right)]


def _wrong(name):
    call, _, wrong = CASES[name]
    return [pytest.param(call, a, id=f"{name}-{i}") for i, a in enumerate(wrong)]


@pytest.mark.parametrize("call, answer", [p for name in CASES for p in _right(name)])
def test_every_correct_form_is_right(capsys, call, answer):
    assert verdict(capsys, call(answer)) == "right"


@pytest.mark.parametrize("call, answer", [p for name in CASES for p in _wrong(name)])
def test_typical_mistakes_are_not_yet_with_a_hint(capsys, call, answer):
    assert verdict(capsys, call(answer)) == "not yet"


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_answer_is_pending(capsys, name):
    call, _, _ = CASES[name]
    assert verdict(capsys, call(None)) == "pending"


def test_c1_as_a_tensor_needs_the_quant_state(capsys):
    # Without the layer's quant_state there is nothing to compare a tensor with; its name still works.
    assert verdict(capsys, checks.check_c1_field(QS.state2.absmax)) == "not yet"
    assert verdict(capsys, checks.check_c1_field("qs.state2.absmax")) == "right"


# ----------------------------------------------------------------------------- notebook 04, exercise 4 (code)


def _adamw_tensors(p, g, m, v, t, lr, betas, eps, weight_decay):
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g**2
    m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
    return p - lr * (m_hat / (v_hat.sqrt() + eps) + weight_decay * p), m, v


def _adamw_in_place(p, g, m, v, t, lr, betas, eps, weight_decay):
    # torch's own order: decay first, then the Adam step on the decayed weight
    p.mul_(1 - lr * weight_decay)
    m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
    v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
    denom = (v / (1 - betas[1] ** t)).sqrt().add_(eps)
    p.addcdiv_(m, denom, value=-lr / (1 - betas[0] ** t))
    return [p, m, v]


def _adamw_numpy(p, g, m, v, t, lr, betas, eps, weight_decay):
    p, g, m, v = (x.numpy().astype(np.float64) for x in (p, g, m, v))
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g * g
    step = (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
    return p - lr * (step + weight_decay * p), m, v


def _no_bias_correction(p, g, m, v, t, lr, betas, eps, weight_decay):
    m = betas[0] * m + (1 - betas[0]) * g
    v = betas[1] * v + (1 - betas[1]) * g**2
    return p - lr * (m / (v.sqrt() + eps) + weight_decay * p), m, v


def _l2_decay(p, g, m, v, t, lr, betas, eps, weight_decay):
    return _adamw_tensors(p, g + weight_decay * p, m, v, t, lr, betas, eps, 0.0)


def _no_decay(p, g, m, v, t, lr, betas, eps, weight_decay):
    return _adamw_tensors(p, g, m, v, t, lr, betas, eps, 0.0)


def _hard_coded_lr(p, g, m, v, t, lr, betas, eps, weight_decay):
    return _adamw_tensors(p, g, m, v, t, 2e-4, betas, eps, weight_decay)


def _plain_sgd(p, g, m, v, t, lr, betas, eps, weight_decay):
    return p - lr * g, m, v


@pytest.mark.parametrize("update", [_adamw_tensors, _adamw_in_place, _adamw_numpy])
def test_adamw_by_hand_accepts_every_correct_form(capsys, update):
    assert verdict(capsys, checks.check_adamw_update(update)) == "right"


@pytest.mark.parametrize("update, hint", [
    (_no_bias_correction, "bias correction"),
    (_l2_decay, "L2 penalty"),
    (_no_decay, "decoupled weight decay"),
    (_hard_coded_lr, "use the arguments"),
    (_plain_sgd, "use the arguments"),
    (lambda p, g, m, v, t, **kw: p, "return the three new tensors"),
    (lambda p, g, m, v, t, **kw: (p[0], m, v), "keep the parameter's shape"),
    (_adamw_tensors(*[torch.ones(2)] * 4, 1, 1e-2, (0.9, 0.999), 1e-8, 0.1), "pass the function itself"),
])
def test_adamw_by_hand_names_the_mistake(capsys, update, hint):
    returned = checks.check_adamw_update(update)
    out = capsys.readouterr().out
    assert returned is False and out.startswith("❌") and hint in out, out


@pytest.mark.parametrize("update", [None, lambda p, g, m, v, t, **kw: None])
def test_adamw_by_hand_unanswered_is_pending(capsys, update):
    assert verdict(capsys, checks.check_adamw_update(update)) == "pending"


# ----------------------------------------------------------------------------- notebooks 01-03, exercise 4 (code)

X4 = torch.tensor([0.02, 0.5, 1.3, 0.75, 0.0, 2.1])  # notebook 01, exercise 4: one-sided data
ZP4 = torch.clamp(torch.round(X4 / (2.1 / 255)) + 0, 0, 255)


def _nf3_float64() -> list[float]:
    """NF3 built entirely in float64 (off from the float32 recipe in the 7th decimal: still right)."""
    from scipy.stats import norm

    offset = (1 - 1 / (2 * 7) + 1 - 1 / (2 * 8)) / 2
    pos = norm.ppf(np.linspace(offset, 0.5, 5)[:-1])
    neg = -norm.ppf(np.linspace(offset, 0.5, 4)[:-1])
    levels = np.sort(np.concatenate([neg, [0.0], pos]))
    return list(levels / levels.max())


LORA_Y = torch.randn(4, 6, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("call, answer", [
    (lambda a: checks.check_zeropoint_codes(a, X4), ZP4.to(torch.uint8)),
    (lambda a: checks.check_zeropoint_codes(a, X4), ZP4.tolist()),
    (lambda a: checks.check_zeropoint_codes(a, X4), ZP4.long()),
    (checks.check_nf3_code, quant.normal_float_code(3)),
    (checks.check_nf3_code, quant.normal_float_code(3).tolist()),
    (checks.check_nf3_code, _nf3_float64()),
    (checks.check_nf3_code, quant.normal_float_code(3).flip(0)),  # unsorted is fine: the set of levels counts
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y.clone()),
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y.double() + 1e-4),
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y.half()),
])
def test_exercise_4_every_correct_form_is_right(capsys, call, answer):
    assert verdict(capsys, call(answer)) == "right"


@pytest.mark.parametrize("call, answer, words", [
    (lambda a: checks.check_zeropoint_codes(a, X4), quant.absmax_quantize(X4)[0], "those are absmax codes"),
    (lambda a: checks.check_zeropoint_codes(a, X4), ZP4 + 1, "zero_point = round(-min / scale)"),
    (checks.check_nf3_code, torch.cat([quant.normal_float_code(3), torch.zeros(1)]), "remove one of the two zeros"),
    (checks.check_nf3_code, quant.normal_float_code(3) * 2.5, "divide every level by the largest"),
    (checks.check_nf3_code, quant.normal_float_code(4), "k = 3"),
    (checks.check_nf3_code, "nf3", "k = 3"),
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y.T, "check the transposes"),
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y * 0.5, "lora_alpha / r"),
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y.tolist(), "lora_alpha / r"),
])
def test_exercise_4_typical_mistakes_are_not_yet_with_a_hint(capsys, call, answer, words):
    returned = call(answer)
    out = capsys.readouterr().out
    assert returned is False and out.startswith("❌") and words in out, out


def test_exercise_4_a_forgotten_lora_scale_is_not_yet(capsys):
    # Notebook 03 uses lora_alpha = 16 with r = 8 (s = 2): an answer without s adds the LoRA term once, not twice.
    gen = torch.Generator().manual_seed(5)
    base, lora = torch.randn(4, 6, generator=gen), 0.05 * torch.randn(4, 6, generator=gen)
    assert verdict(capsys, checks.check_lora_output(base + 2 * lora, base + 2 * lora)) == "right"
    assert verdict(capsys, checks.check_lora_output(base + lora, base + 2 * lora)) == "not yet"


@pytest.mark.parametrize("call", [
    lambda: checks.check_zeropoint_codes(None, X4),
    lambda: checks.check_nf3_code(None),
    lambda: checks.check_lora_output(None, LORA_Y),
])
def test_exercise_4_no_answer_is_pending(capsys, call):
    assert verdict(capsys, call()) == "pending"


# ----------------------------------------------------------------------------- in Korean (issue 14)

HANGUL = re.compile("[\uac00-\ud7a3]")


@pytest.fixture
def korean():
    """The session of a Korean notebook (its setup cell sets "ko"); English again afterwards."""
    language.set_language("ko")
    try:
        yield
    finally:
        language.set_language("en")


def korean_verdict(capsys, returned: bool) -> tuple[str, str, str]:
    """(verdict, exercise name, hint) of a check printed in Korean; asserts no English verdict words are left."""
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"one line per check, got {out!r}"
    assert "Hint" not in out and "not yet" not in out and "right!" not in out, out
    line = out.rstrip("\n")
    if line.startswith("✅"):
        assert returned is True and line.endswith(": 맞았습니다!"), out
        return "right", line[2:].removesuffix(": 맞았습니다!"), ""
    assert returned is False, out
    for emoji, words, kind in (("❌", ": 아직 아닙니다. 힌트: ", "not yet"),
                               ("⏳", ": 아직 답하지 않았습니다. 힌트: ", "pending")):
        if line.startswith(emoji) and words in line:
            name, hint = line[2:].split(words)
            assert HANGUL.search(hint), f"the hint is not in Korean: {hint!r}"
            return kind, name, hint
    raise AssertionError(f"unexpected check output {out!r}")


@pytest.mark.parametrize("ok, expected", [
    (True, "✅ 연습 9: 시험: 맞았습니다!\n"),
    (False, "❌ 연습 9: 시험: 아직 아닙니다. 힌트: 식을 보세요.\n"),
    (None, "⏳ 연습 9: 시험: 아직 답하지 않았습니다. 힌트: 식을 보세요.\n"),
])
def test_check_prints_its_verdict_in_korean(capsys, korean, ok, expected):
    returned = checks.check("연습 9: 시험", ok, "식을 보세요.")
    assert capsys.readouterr().out == expected and returned is bool(ok)


@pytest.mark.parametrize("call, right, wrong", [
    (lambda a: checks.check_absmax_codes(a, X1), [15, -61, 127, -3], [15, -61, 128, -3]),
    (checks.check_packed_byte, 179, (3 << 4) | 11),
    (lambda a: checks.check_tokens_per_step(a, ARGS), 2048, 1024),
    (lambda a: checks.check_c1_field(a, QS), "qs.state2.absmax", "qs.absmax"),
])
def test_checks_answer_in_korean(capsys, korean, call, right, wrong):
    kind, name, _ = korean_verdict(capsys, call(right))
    assert kind == "right" and name.startswith("연습 ") and HANGUL.search(name), name
    assert korean_verdict(capsys, call(wrong))[0] == "not yet"
    assert korean_verdict(capsys, call(None))[0] == "pending"


@pytest.mark.parametrize("call, answer, words", [
    (lambda a: checks.check_zeropoint_codes(a, X4), quant.absmax_quantize(X4)[0], "입력한 답은 absmax 코드입니다"),
    (checks.check_nf3_code, torch.cat([quant.normal_float_code(3), torch.zeros(1)]), "두 0 중 하나를 빼세요"),
    (checks.check_nf3_code, quant.normal_float_code(3) * 2.5, "정규화하세요"),
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y.T, f"{tuple(LORA_Y.shape)} (b x o)여야 하는데"),
    (checks.check_adamw_update, _no_bias_correction, "편향 보정"),
    (checks.check_adamw_update, _l2_decay, "L2 페널티"),
    (checks.check_adamw_update, _no_decay, "분리된 가중치 감쇠"),
    (checks.check_adamw_update, _plain_sgd, "주어진 인자"),
    (checks.check_adamw_update, lambda p, g, m, v, t, **kw: p, "새 텐서 세 개"),
    (checks.check_adamw_update, lambda p, g, m, v, t, **kw: (p[0], m, v), "같은 모양 (5, 7)"),
    (checks.check_adamw_update, 1.0, "함수 자체를 넘기세요"),
])
def test_dynamic_hints_name_the_mistake_in_korean(capsys, korean, call, answer, words):
    kind, _, hint = korean_verdict(capsys, call(answer))
    assert kind == "not yet" and words in hint, hint


def test_adamw_by_hand_is_right_in_korean(capsys, korean):
    assert korean_verdict(capsys, checks.check_adamw_update(_adamw_tensors))[0] == "right"


# Everything a check needs besides the answer, as the notebooks pass it.
CHECK_ARGS = {
    "check_absmax_codes": (X1,), "check_block_dequantize": (Q3, ABSMAX3, X3.shape, 32),
    "check_lora_params": (GEMMA_2B,), "check_c1_field": (QS,), "check_zeropoint_codes": (X4,),
    "check_lora_output": (LORA_Y,), "check_lora_adamw_bytes": (GEMMA_2B, 16), "check_fp32_tensors": (_n8(8),),
    "check_paged_bytes": (EDGES,), "check_tokens_per_step": (ARGS,), "check_epoch_steps": (6001, ARGS),
    "check_lora_percent": (GEMMA_2B,),
}
CHECKS = sorted(name for name, f in inspect.getmembers(checks, inspect.isfunction) if name.startswith("check_"))


@pytest.mark.parametrize("name", CHECKS)
def test_every_check_speaks_korean(capsys, korean, name):
    function = getattr(checks, name)
    needed = [p for p in list(inspect.signature(function).parameters.values())[1:] if p.default is p.empty]
    args = CHECK_ARGS.get(name, ())
    assert len(args) >= len(needed), f"add the arguments {name} needs to CHECK_ARGS"
    kind, exercise, hint = korean_verdict(capsys, function(None, *args))
    assert kind == "pending" and exercise.startswith("연습 ") and HANGUL.search(exercise[3:]), exercise
    assert HANGUL.search(hint), hint


# ----------------------------------------------------------------------------- near misses (issue 26)

DQ = 8 / 128 + 32 / (128 * 256)  # 0.0634765625


@pytest.mark.parametrize("call, answer", [
    # rounded the way the notebooks and the paper print such numbers (the paper's 0.127 bits, 3 figures)
    (checks.check_dq_bits, 0.0635), (checks.check_dq_bits, 0.06348), (checks.check_dq_bits, 0.063477),
    (checks.check_dq_bits, np.float32(0.0635)),
    (lambda a: checks.check_lora_percent(a, GEMMA_2B), 0.074),  # notebook 03 prints 0.074 %
    (lambda a: checks.check_lora_percent(a, GEMMA_2B), 0.0735),  # notebook 05 prints 0.0735 %
    (lambda a: checks.check_lora_percent(a, GEMMA_2B), 0.07355),
    (checks.check_nf3_code, np.round(quant.normal_float_code(3).numpy(), 4).tolist()),  # as the solution prints it
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y.bfloat16()),  # a 16-bit compute dtype's rounding
])
def test_every_rounded_form_the_notebooks_print_is_right(capsys, call, answer):
    assert verdict(capsys, call(answer)) == "right"


NF3 = quant.normal_float_code(3)


@pytest.mark.parametrize("call, answer", [
    # a float answer 0.05 % off, and one written to 3 figures but wrongly rounded
    (checks.check_dq_bits, DQ * 1.0005), (checks.check_dq_bits, 0.0636), (checks.check_dq_bits, 0.0634),
    (checks.check_dq_bits, 0.063),  # 2 figures: what 8/128 = 0.0625 (no second level) rounds to as well
    (checks.check_dq_bits, 8 / 128 + 16 / (128 * 256)),  # fp16 second-level constants: 0.8 % off
    (checks.check_constant_bits, 0.125 * 1.0005),
    (lambda a: checks.check_lora_percent(a, GEMMA_2B), LORA_PERCENT * 1.0005),
    (lambda a: checks.check_lora_percent(a, GEMMA_2B), 0.0736),
    (lambda a: checks.check_lora_percent(a, GEMMA_2B), 0.073),
    (lambda a: checks.check_lora_percent(a, GEMMA_2B), 0.07),
    (lambda a: checks.check_block_dequantize(a, Q3, ABSMAX3, X3.shape, 32), BLOCKS3 * 1.0005),
    # NF3 levels: one level 0.01 off, one 0.001 off, all shifted by 0.0002
    (checks.check_nf3_code, torch.cat([NF3[:3], NF3[3:4] + 0.01, NF3[4:]])),
    (checks.check_nf3_code, torch.cat([NF3[:5], NF3[5:6] - 0.001, NF3[6:]])),
    (checks.check_nf3_code, NF3 + 2e-4),
    # a LoRA layer's output 10 % and 3 % off
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y * 1.1),
    (lambda a: checks.check_lora_output(a, LORA_Y), LORA_Y * 1.03),
])
def test_a_near_miss_is_a_wrong_answer(capsys, call, answer):
    assert verdict(capsys, call(answer)) == "not yet"
