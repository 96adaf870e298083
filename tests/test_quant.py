"""helpers.quant against bitsandbytes 0.50.2 on the CPU: same codes, constants and values, bit for bit."""

import math

import bitsandbytes.functional as F
import numpy as np
import pytest
import torch
from bitsandbytes.backends.cpu.ops import _has_avx512
from bitsandbytes.backends.default import ops as default_ops
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from helpers import memory, quant

BLOCKSIZES = quant.BLOCKSIZES_4BIT
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# 1-D, odd counts, fewer values than a block, rows shorter than a block, partial last blocks, 3-D
SHAPES = ((1,), (2,), (3,), (7,), (100,), (4096,), (5, 7), (8, 16), (4, 96), (16, 32), (33, 65), (64, 64),
          (2, 3, 64), (3, 4100), (2, 5, 333))
# bitsandbytes' pure-PyTorch dequantizer without the torch.compile wrapper (compiling takes seconds per shape)
bnb_reference_dequantize = default_ops._dequantize_4bit_compute.__wrapped__


# Tiny tensors: with two threads every op waits for the second core, which other jobs keep busy.
pytestmark = pytest.mark.usefixtures("one_thread")


def _avx512_kernel_wrong(shape: tuple[int, ...], blocksize: int) -> bool:
    """Whether bitsandbytes 0.50.2's AVX-512 kernel runs and mis-indexes absmax: several rows, not of whole blocks."""
    rows, last = math.prod(shape[:-1]), shape[-1]
    return _has_avx512 and blocksize < 2048 and last % 16 == 0 and last % blocksize != 0 and rows > 1


def _cases(blocksize: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """Every shape once, with the dtypes rotating so that each block size sees each shape in some dtype."""
    turn = BLOCKSIZES.index(blocksize)
    return [(shape, DTYPES[(i + turn) % len(DTYPES)]) for i, shape in enumerate(SHAPES)]


def _samples(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Normal weights with a few outliers, so that blocks have different absmax."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator)
    x.view(-1)[:: 37] *= 8
    return x.to(dtype)


# ----------------------------------------------------------------------------- codes


def test_nf4_code_is_bitsandbytes_table():
    code = quant.normal_float_code(4)
    assert code.dtype == torch.float32
    assert torch.equal(code, F.get_4bit_type("nf4", device="cpu"))
    assert torch.equal(code, torch.unique(F.create_normal_map()))


@pytest.mark.parametrize("bits", range(2, 9))
def test_normal_float_code_shape_for_every_bit_width(bits):
    code = quant.normal_float_code(bits)
    assert code.numel() == 2**bits
    assert (code[1:] > code[:-1]).all()
    assert code[0] == -1 and code[-1] == 1
    assert (code == 0).sum() == 1
    assert (code > 0).sum() == 2 ** (bits - 1) and (code < 0).sum() == 2 ** (bits - 1) - 1


def test_fp4_code_is_bitsandbytes_table_in_index_order():
    code, ref = quant.fp4_code(), F.get_4bit_type("fp4", device="cpu")
    assert torch.equal(code, ref)
    assert torch.equal(code.signbit(), ref.signbit())  # index 8, the sign bit with 000, is +0.0 too
    assert torch.equal(code[9:], -code[1:8]) and code[0] == code[8] == 0


def test_int4_code_is_evenly_spaced():
    code = quant.int4_code()
    assert code.numel() == 16 and code[0] == -1 and code[-1] == 1
    torch.testing.assert_close(code.diff(), torch.full((15,), 2 / 15))


def test_dynamic_map_is_bitsandbytes_map():
    code = quant.dynamic_map()
    assert code.numel() == 256
    assert torch.equal(code, F.create_dynamic_map(signed=True))
    _, state = F.quantize_blockwise(torch.randn(300))
    assert torch.equal(code, state.code)


# ----------------------------------------------------------------------------- absmax int8


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 5), (37, 129), (64, 4096)])
def test_absmax_rowwise_is_int8_vectorwise_quant(shape, dtype):
    x = _samples(shape, dtype, seed=1)
    q, absmax = quant.absmax_quantize(x, dim=-1)
    ref_q, ref_absmax, _ = F.int8_vectorwise_quant(x.clone())
    assert q.dtype == torch.int8 and absmax.dtype == torch.float32
    assert torch.equal(q, ref_q) and torch.equal(absmax, ref_absmax)
    assert torch.equal(quant.absmax_dequantize(q, absmax), F.int8_vectorwise_dequant(ref_q, ref_absmax))


def test_absmax_tensorwise_uses_one_constant():
    x = _samples((6, 50), torch.float32, seed=2)
    q, absmax = quant.absmax_quantize(x)
    assert absmax.shape == () and absmax == x.abs().max()
    assert torch.equal(q, torch.round(x * (127 / absmax)).to(torch.int8))
    assert q.abs().max() == 127
    row_q, _ = quant.absmax_quantize(x.reshape(1, -1), dim=-1)
    assert torch.equal(q.reshape(1, -1), row_q)


def test_absmax_zero_row_stays_zero():
    x = torch.zeros(3, 8)
    x[1] = torch.arange(8.0)
    q, absmax = quant.absmax_quantize(x, dim=-1)
    assert torch.equal(absmax, torch.tensor([0.0, 7.0, 0.0]))
    assert (q[0] == 0).all() and (q[2] == 0).all()
    assert torch.equal(quant.absmax_dequantize(q, absmax)[0], torch.zeros(8))


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, array_shapes(max_dims=3, max_side=40),
              elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False)))
def test_absmax_roundtrip_error_is_within_half_a_step(values):
    x = torch.from_numpy(values)
    for dim in (None, -1):
        q, absmax = quant.absmax_quantize(x, dim=dim)
        scale = absmax if dim is None else absmax.unsqueeze(-1)
        error = (x - quant.absmax_dequantize(q, absmax)).abs()
        assert (error <= scale / 254 * (1 + 1e-5) + 1e-30).all()


# ----------------------------------------------------------------------------- block-wise int8


def test_blockwise_is_absmax_per_block_with_own_last_block():
    x = _samples((10, 13), torch.float32, seed=3)  # 130 values: two blocks of 64 and one of 2
    q, absmax = quant.blockwise_quantize(x, blocksize=64)
    assert q.shape == (130,) and absmax.shape == (3,)
    flat = x.reshape(-1)
    assert torch.equal(absmax, torch.stack([flat[:64].abs().max(), flat[64:128].abs().max(), flat[128:].abs().max()]))
    for start in range(0, 130, 64):
        block_q, _ = quant.absmax_quantize(flat[start:start + 64])
        assert torch.equal(q[start:start + 64], block_q)
    back = quant.blockwise_dequantize(q, absmax, x.shape, blocksize=64)
    rows = F.int8_vectorwise_dequant(torch.nn.functional.pad(q, (0, 62)).view(3, 64), absmax)
    assert torch.equal(back.reshape(-1), rows.reshape(-1)[:130])


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, array_shapes(max_dims=2, max_side=200),
              elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False)),
       st.sampled_from([2, 4, 32, 64, 256]))
def test_blockwise_roundtrip_error_is_within_half_a_step(values, blocksize):
    x = torch.from_numpy(values)
    q, absmax = quant.blockwise_quantize(x, blocksize=blocksize)
    back = quant.blockwise_dequantize(q, absmax, x.shape, blocksize=blocksize)
    per_value = absmax.repeat_interleave(blocksize)[: x.numel()].view(x.shape)
    assert ((x - back).abs() <= per_value / 254 * (1 + 1e-5) + 1e-30).all()


# ----------------------------------------------------------------------------- 4-bit against bitsandbytes


@pytest.mark.parametrize("blocksize", BLOCKSIZES)
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_quantize_4bit_is_bitsandbytes(quant_type, blocksize):
    for seed, (shape, dtype) in enumerate(_cases(blocksize)):
        x = _samples(shape, dtype, seed)
        packed, absmax = quant.quantize_4bit(x, blocksize=blocksize, quant_type=quant_type)
        ref_packed, state = F.quantize_4bit(x, blocksize=blocksize, quant_type=quant_type)
        where = f"shape {shape} {dtype}"
        assert packed.dtype == torch.uint8 and packed.shape == (math.ceil(x.numel() / 2), 1), where
        assert torch.equal(packed, ref_packed), where
        assert torch.equal(absmax, state.absmax), where


# Absmax values whose reciprocal is inexact, so that x / absmax and x * (1 / absmax) can round apart.
BOUNDARY_ABSMAX = (1.0, 3.0, 0.7, 1e-3, 2.5, 0.1, 7.3, 1 / 3, 123.456)


def _around(points: torch.Tensor) -> torch.Tensor:
    """Each float32 point, and the float32 values one step below and one step above it."""
    return torch.cat([points, torch.nextafter(points, torch.tensor(-math.inf)),
                      torch.nextafter(points, torch.tensor(math.inf))])


def _boundary_blocks(quant_type: str, absmax: float, blocksize: int) -> torch.Tensor:
    """Two full blocks and a last partial one, each with absmax `absmax`, holding every decision boundary."""
    levels = F.get_4bit_type(quant_type, device="cpu").sort().values
    values = torch.cat([torch.tensor([absmax]), _around(((levels[:-1] + levels[1:]) / 2 * absmax).float())])
    full = torch.nn.functional.pad(values, (0, blocksize - values.numel()))
    return torch.cat([full, -full.flip(0), torch.tensor([-absmax]), values[1:]])


@pytest.mark.parametrize("blocksize", [64, 256])
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_quantize_4bit_is_bitsandbytes_on_and_beside_every_midpoint(quant_type, blocksize):
    # Random weights almost never land on a decision boundary: these do, in full blocks and in a last
    # partial one, which bitsandbytes divides by its absmax where full blocks are multiplied by 1/absmax.
    for absmax in BOUNDARY_ABSMAX:
        x = _boundary_blocks(quant_type, absmax, blocksize)
        assert x.numel() % blocksize and x.numel() % 2 == 0
        packed, constants = quant.quantize_4bit(x, blocksize=blocksize, quant_type=quant_type)
        ref_packed, state = F.quantize_4bit(x, blocksize=blocksize, quant_type=quant_type)
        assert torch.equal(constants, state.absmax) and (constants == absmax).all(), absmax
        assert torch.equal(packed, ref_packed), f"absmax {absmax}: codes {torch.nonzero(packed != ref_packed)}"
        if quant_type == "nf4":
            codes, _ = quant.quantize_with_code(x, quant.normal_float_code(4), blocksize=blocksize)
            assert torch.equal(codes[0::2], packed.view(-1) >> 4) and torch.equal(codes[1::2], packed.view(-1) & 15)


def test_absmax_int8_is_bitsandbytes_on_and_beside_every_half_step():
    # x * 127 / absmax exactly halfway between two integers rounds to even, as bitsandbytes' kernel does.
    for absmax in BOUNDARY_ABSMAX:
        half_steps = ((torch.arange(-127, 127) + 0.5) * absmax / 127).float()
        x = torch.cat([torch.tensor([absmax]), _around(half_steps)]).view(1, -1)
        q, constants = quant.absmax_quantize(x, dim=-1)
        ref_q, ref_absmax, _ = F.int8_vectorwise_quant(x.clone())
        assert torch.equal(constants, ref_absmax) and torch.equal(q, ref_q), absmax


def test_blockwise_defaults_are_blocks_of_64():
    x = _samples((5, 26), torch.float32, seed=9)  # 130 values: two blocks of 64 and a partial one of 2
    q, absmax = quant.blockwise_quantize(x)
    assert absmax.shape == (3,) and torch.equal(absmax, quant.blockwise_quantize(x, blocksize=64)[1])
    assert absmax[2] == x.reshape(-1)[128:].abs().max()
    back = quant.blockwise_dequantize(q, absmax, x.shape)
    assert torch.equal(back, quant.blockwise_dequantize(q, absmax, x.shape, blocksize=64, dtype=torch.float32))
    code = quant.normal_float_code()
    assert torch.equal(code, quant.normal_float_code(4))
    codes, constants = quant.quantize_with_code(x, code)
    assert torch.equal(constants, absmax)
    assert torch.equal(quant.dequantize_with_code(codes, constants, code, x.shape),
                       quant.dequantize_with_code(codes, constants, code, x.shape, blocksize=64))


@pytest.mark.parametrize("double_quant", [False, True])
@pytest.mark.parametrize("n", [1, 105, 64 * 3 + 1, 64 * 256 + 64 * 3 + 7])
def test_4bit_weight_bytes_of_odd_sizes_are_what_bitsandbytes_allocates(n, double_quant):
    # An odd number of weights still takes a whole last byte: ceil(n / 2), not n // 2.
    packed, state = F.quantize_4bit(torch.randn(n), blocksize=64, quant_type="nf4", compress_statistics=double_quant)
    tensors = [packed, state.absmax, state.code]
    if double_quant:
        tensors += [state.offset, state.state2.absmax, state.state2.code]
    allocated = sum(t.numel() * t.element_size() for t in tensors)
    assert packed.numel() == math.ceil(n / 2)
    assert memory._4bit_weight_bytes(n, 64, double_quant) == allocated


@pytest.mark.parametrize("blocksize", BLOCKSIZES)
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_dequantize_4bit_is_bitsandbytes(quant_type, blocksize):
    code = F.get_4bit_type(quant_type, device="cpu")
    for seed, (shape, dtype) in enumerate(_cases(blocksize)):
        packed, state = F.quantize_4bit(_samples(shape, dtype, seed), blocksize=blocksize, quant_type=quant_type)
        ours = quant.dequantize_4bit(packed, state.absmax, shape, blocksize, quant_type, dtype)
        where = f"shape {shape} {dtype}"
        assert ours.shape == shape and ours.dtype == dtype, where
        # the library's pure-PyTorch path: what it runs for odd last dimensions
        reference = bnb_reference_dequantize(packed.view(-1), state.absmax, code, blocksize, shape, dtype)
        assert torch.equal(ours.reshape(-1), reference.reshape(-1)), where
        # the library's C++ kernel (even last dimensions), where it is right
        if shape[-1] % 2 == 0 and not _avx512_kernel_wrong(shape, blocksize):
            assert torch.equal(ours.reshape(-1), F.dequantize_4bit(packed, state).reshape(-1)), where


@pytest.mark.skipif(not _has_avx512, reason="the AVX-512 dequantizer only runs on CPUs with AVX-512")
@pytest.mark.parametrize("shape", [(8, 16), (4, 96), (16, 32)])
def test_bitsandbytes_avx512_dequantizer_is_wrong_for_rows_shorter_than_a_block(shape):
    # bitsandbytes 0.50.2 indexes absmax by row and column block, which breaks when blocks span rows.
    # If this fails, a fixed release is installed: drop _avx512_kernel_wrong and this test.
    packed, state = F.quantize_4bit(_samples(shape, torch.float32, seed=4), blocksize=64, quant_type="nf4")
    ours = quant.dequantize_4bit(packed, state.absmax, shape, blocksize=64)
    code = F.get_4bit_type("nf4", device="cpu")
    assert torch.equal(ours, bnb_reference_dequantize(packed.view(-1), state.absmax, code, 64, shape, torch.float32))
    assert not torch.equal(ours, F.dequantize_4bit(packed, state))


def test_bitsandbytes_stores_a_clamped_absmax_for_an_all_zero_last_block():
    x = torch.zeros(100)  # one full block of 64 and a partial one of 36
    packed, absmax = quant.quantize_4bit(x)
    ref_packed, state = F.quantize_4bit(x, blocksize=64, quant_type="nf4")
    assert torch.equal(absmax, state.absmax) and torch.equal(packed, ref_packed)
    assert absmax[0] == 0 and absmax[1] == torch.tensor(1e-38)
    assert (quant.dequantize_4bit(packed, absmax, (100,)) == 0).all()


def test_fp4_encodes_tiny_positive_values_with_the_sign_bit_zero():
    # FP4 has two codes for 0: 0b0000 and 0b1000. The nearest-level search sorts code 0 first, so a small
    # negative value gets code 0 and a small positive one code 8 (sign bit set), as in bitsandbytes.
    x = torch.tensor([1.0, 1e-4, -1e-4, 0.0])
    packed, _ = quant.quantize_4bit(x, blocksize=64, quant_type="fp4")
    ref_packed, _ = F.quantize_4bit(x, blocksize=64, quant_type="fp4")
    assert torch.equal(packed, ref_packed)
    assert packed.view(-1).tolist() == [0x38, 0x00]


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@settings(max_examples=20, deadline=None)
@given(values=arrays(np.float32, array_shapes(max_dims=3, max_side=70),
                     elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False)),
       blocksize=st.sampled_from([32, 64, 128]))
def test_4bit_roundtrip_error_is_within_half_the_largest_gap(quant_type, values, blocksize):
    x = torch.from_numpy(values)
    packed, absmax = quant.quantize_4bit(x, blocksize=blocksize, quant_type=quant_type)
    back = quant.dequantize_4bit(packed, absmax, x.shape, blocksize=blocksize, quant_type=quant_type)
    half_gap = quant._code_4bit(quant_type).sort().values.diff().max() / 2
    per_value = absmax.repeat_interleave(blocksize)[: x.numel()].view(x.shape)
    assert ((x - back).abs() <= per_value * half_gap * (1 + 1e-5)).all()


# ----------------------------------------------------------------------------- double quantization


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("shape", [(100,), (64, 64), (512, 320), (3, 5, 4100)])
def test_double_quantize_is_bitsandbytes_quant_state(shape, quant_type):
    x = _samples(shape, torch.bfloat16, seed=5)
    packed, state = F.quantize_4bit(x, blocksize=64, quant_type=quant_type, compress_statistics=True)
    _, absmax = quant.quantize_4bit(x, blocksize=64, quant_type=quant_type)
    q, absmax2, offset = quant.double_quantize(absmax)
    assert q.dtype == torch.uint8 and absmax2.dtype == torch.float32 and offset.shape == ()
    assert torch.equal(q, state.absmax)
    assert torch.equal(absmax2, state.state2.absmax)
    assert torch.equal(offset, state.offset)
    assert torch.equal(quant.dynamic_map(), state.state2.code)
    restored = quant.double_dequantize(q, absmax2, offset)
    assert torch.equal(restored, F.dequantize_blockwise(state.absmax, state.state2) + state.offset)
    ours = quant.dequantize_4bit(packed, restored, shape, quant_type=quant_type, dtype=torch.bfloat16)
    code = F.get_4bit_type(quant_type, device="cpu")
    reference = bnb_reference_dequantize(packed.view(-1), restored, code, 64, shape, torch.bfloat16)
    assert torch.equal(ours, reference)
    if shape[-1] % 2 == 0 and not _avx512_kernel_wrong(shape, 64):
        assert torch.equal(ours.reshape(-1), F.dequantize_4bit(packed, state).reshape(-1))


@pytest.mark.parametrize("blocksize", [32, 256, 4096])
def test_double_quantize_matches_the_8bit_kernel_near_midpoints(blocksize):
    # bitsandbytes' CPU 8-bit kernel snaps values to a 65,536-step grid before the nearest-level
    # lookup; plain nearest-level rounding differs on about 1 value in 600 to 1,000.
    values = torch.rand(200_000, generator=torch.Generator().manual_seed(6))
    q, absmax2, offset = quant.double_quantize(values, blocksize=blocksize)
    ref_q, state = F.quantize_blockwise(values - values.mean(), blocksize=blocksize)
    assert torch.equal(q, ref_q) and torch.equal(absmax2, state.absmax) and torch.equal(offset, values.mean())
    scaled = quant._blocks(values - offset, blocksize) * (1 / absmax2).unsqueeze(1)
    nearest = torch.bucketize(scaled.view(-1)[: values.numel()], quant._midpoints(quant.dynamic_map()))
    assert (nearest.to(torch.uint8) != q).any()


def test_double_quantize_of_equal_constants_gives_code_zero():
    absmax = torch.full((300,), 0.25)
    q, absmax2, offset = quant.double_quantize(absmax)
    ref_q, _ = F.quantize_blockwise(absmax - absmax.mean(), blocksize=256)
    assert torch.equal(q, ref_q) and (q == 0).all() and (absmax2 == 0).all()
    assert torch.equal(quant.double_dequantize(q, absmax2, offset), absmax)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, st.integers(1, 1500), elements=st.floats(2**-10, 2**10, width=32)))
def test_double_quant_roundtrip_error_is_small(values):
    absmax = torch.from_numpy(values)
    q, absmax2, offset = quant.double_quantize(absmax)
    restored = quant.double_dequantize(q, absmax2, offset)
    bound = quant.dynamic_map().diff().max() / 2 + 2 / 65535  # half a gap, plus one grid step of the kernel
    per_value = absmax2.repeat_interleave(256)[: absmax.numel()]
    assert ((absmax - restored).abs() <= per_value * bound * (1 + 1e-5) + 1e-6 * offset).all()


# ----------------------------------------------------------------------------- any code


def test_quantize_with_nf4_code_gives_the_4bit_codes():
    x = _samples((9, 70), torch.float32, seed=7)
    q, absmax = quant.quantize_with_code(x, quant.normal_float_code(4), blocksize=64)
    packed, ref_absmax = quant.quantize_4bit(x)
    assert torch.equal(absmax, ref_absmax)
    assert torch.equal(q[0::2], packed.view(-1) >> 4) and torch.equal(q[1::2], packed.view(-1) & 15)
    back = quant.dequantize_with_code(q, absmax, quant.normal_float_code(4), x.shape, blocksize=64)
    assert torch.equal(back, quant.dequantize_4bit(packed, absmax, x.shape))


@pytest.mark.parametrize("code", [quant.normal_float_code(b) for b in range(2, 9)] + [quant.int4_code()],
                         ids=[f"nf{b}" for b in range(2, 9)] + ["int4"])
@settings(max_examples=10, deadline=None)
@given(values=arrays(np.float32, array_shapes(max_dims=2, max_side=100),
                     elements=st.floats(-1e3, 1e3, width=32, allow_subnormal=False)))
def test_any_code_roundtrip_error_is_within_half_the_largest_gap(code, values):
    x = torch.from_numpy(values)
    q, absmax = quant.quantize_with_code(x, code, blocksize=64)
    back = quant.dequantize_with_code(q, absmax, code, x.shape, blocksize=64)
    per_value = absmax.repeat_interleave(64)[: x.numel()].view(x.shape)
    assert ((x - back).abs() <= per_value * code.diff().max() / 2 * (1 + 1e-5)).all()


def test_more_bits_give_smaller_error_on_normal_weights():
    x = _samples((64, 64), torch.float32, seed=8)
    errors = []
    for bits in range(2, 9):
        code = quant.normal_float_code(bits)
        q, absmax = quant.quantize_with_code(x, code)
        errors.append((x - quant.dequantize_with_code(q, absmax, code, x.shape)).pow(2).mean().item())
    assert errors == sorted(errors, reverse=True)


# ----------------------------------------------------------------------------- bad input

GOOD = torch.randn(128)
PACKED, ABSMAX = quant.quantize_4bit(GOOD)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: quant.quantize_4bit(torch.empty(0)), ValueError, "x is empty"),
        (lambda: quant.quantize_4bit(torch.arange(10)), TypeError, "x must be a real floating-point"),
        (lambda: quant.quantize_4bit(torch.randn(10, dtype=torch.complex64)), TypeError, "x must be a real"),
        (lambda: quant.quantize_4bit(torch.tensor([1.0, float("nan")])), ValueError, "x contains NaN or inf"),
        (lambda: quant.quantize_4bit(torch.tensor([1.0, float("inf")])), ValueError, "x contains NaN or inf"),
        (lambda: quant.quantize_4bit([1.0, 2.0]), TypeError, "x must be a torch.Tensor"),
        (lambda: quant.quantize_4bit(GOOD, blocksize=48), ValueError, "blocksize must be a power of two from 32"),
        (lambda: quant.quantize_4bit(GOOD, blocksize=16), ValueError, "blocksize must be a power of two from 32"),
        (lambda: quant.quantize_4bit(GOOD, blocksize=8192), ValueError, "blocksize"),
        (lambda: quant.quantize_4bit(GOOD, blocksize=64.0), TypeError, "blocksize must be an int"),
        (lambda: quant.quantize_4bit(GOOD, quant_type="int4"), ValueError, "quant_type must be 'nf4' or 'fp4'"),
        (lambda: quant.dequantize_4bit(PACKED, ABSMAX, (130,)), ValueError, "packed has 64 bytes but shape"),
        (lambda: quant.dequantize_4bit(PACKED, ABSMAX[:1], (128,)), ValueError, "absmax has 1 constants"),
        (lambda: quant.dequantize_4bit(PACKED.int(), ABSMAX, (128,)), TypeError, "packed must be the uint8"),
        (lambda: quant.dequantize_4bit(PACKED, ABSMAX, (128, 0)), ValueError, "shape must be"),
        (lambda: quant.dequantize_4bit(PACKED, ABSMAX, (128,), dtype=torch.int8), TypeError, "dtype must be"),
        (lambda: quant.normal_float_code(1), ValueError, "bits must be from 2 to 8"),
        (lambda: quant.normal_float_code(9), ValueError, "bits must be from 2 to 8"),
        (lambda: quant.normal_float_code(4.0), TypeError, "bits must be an int"),
        (lambda: quant.absmax_quantize(torch.empty(0, 3), dim=-1), ValueError, "x is empty"),
        (lambda: quant.absmax_quantize(torch.ones(2, 3), dim=0), ValueError, "dim must be None"),
        (lambda: quant.absmax_quantize(torch.tensor([float("inf")])), ValueError, "x contains NaN or inf"),
        (lambda: quant.absmax_dequantize(torch.ones(3), torch.tensor(1.0)), TypeError, "q must be the int8"),
        (lambda: quant.absmax_dequantize(torch.ones(2, 3, dtype=torch.int8), torch.ones(3)), ValueError,
         "absmax has shape"),
        (lambda: quant.blockwise_quantize(torch.tensor([1, 2])), TypeError, "x must be a real"),
        (lambda: quant.blockwise_quantize(GOOD, blocksize=3), ValueError, "blocksize must be a power of two from 2"),
        (lambda: quant.blockwise_dequantize(torch.zeros(5, dtype=torch.int8), torch.ones(1), (6,)), ValueError,
         "q has 5 values"),
        (lambda: quant.quantize_with_code(GOOD, torch.tensor([1.0, -1.0])), ValueError, "code must be sorted"),
        (lambda: quant.quantize_with_code(GOOD, torch.arange(3)), TypeError, "code must be a 1-D floating-point"),
        (lambda: quant.quantize_with_code(GOOD, torch.linspace(-1, 1, 257)), ValueError, "code must hold 2 to 256"),
        (lambda: quant.dequantize_with_code(torch.zeros(4, dtype=torch.uint8), torch.ones(1), quant.int4_code(), (5,)),
         ValueError, "q has 4 values"),
        (lambda: quant.double_quantize(torch.tensor([1.0, float("nan")])), ValueError, "absmax contains NaN or inf"),
        (lambda: quant.double_quantize(torch.empty(0)), ValueError, "absmax is empty"),
        (lambda: quant.double_quantize(torch.ones(10), blocksize=100), ValueError, "blocksize must be a power of two"),
        (lambda: quant.double_dequantize(torch.zeros(300, dtype=torch.uint8), torch.ones(1), torch.tensor(0.0)),
         ValueError, "absmax2 has 1 constants"),
        (lambda: quant.double_dequantize(torch.zeros(3), torch.ones(1), torch.tensor(0.0)), TypeError,
         "q must be the uint8"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(call, error, words):
    with pytest.raises(error, match=words):
        call()
