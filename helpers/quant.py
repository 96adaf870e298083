"""Quantization from scratch in PyTorch: absmax int8, block-wise int8, NF4/FP4 and double quantization.

Every function here reproduces what bitsandbytes computes on the CPU bit for bit (tests/test_quant.py
proves it), so the notebooks can build an idea inline, compare it with these helpers, and compare
these helpers with the library.
"""

import math
from collections.abc import Sequence

import torch
from scipy.stats import norm

BLOCKSIZES_4BIT = (32, 64, 128, 256, 512, 1024, 2048, 4096)
# bitsandbytes dequantizes int8 by multiplying with this float 1/127 (not dividing by 127): we do the same
# so that our values are equal to its, not just close.
INV_127 = 7.874015718698502e-3


def _check_values(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return `x` flattened as float32 after checking it is a non-empty real floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap it with torch.tensor(...)")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a real floating-point tensor (float32, float16 or bfloat16), got {x.dtype}; "
            f"convert it first, e.g. {name}.float()"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: pass a tensor with at least one value")
    return x.reshape(-1).float()


def _check_finite(absmax: torch.Tensor, name: str) -> None:
    """Raise if a block's absmax is NaN or inf, which means the input held NaN or inf."""
    if not torch.isfinite(absmax).all():
        raise ValueError(f"{name} contains NaN or inf: replace them (e.g. torch.nan_to_num) before quantizing")


def _check_blocksize(blocksize: int, smallest: int) -> None:
    """Raise unless `blocksize` is a power of two from `smallest` to 4096."""
    if isinstance(blocksize, bool) or not isinstance(blocksize, int):
        raise TypeError(f"blocksize must be an int, got {type(blocksize).__name__}")
    if not (smallest <= blocksize <= 4096 and blocksize & (blocksize - 1) == 0):
        raise ValueError(f"blocksize must be a power of two from {smallest} to 4096, got {blocksize}")


def _check_shape(shape: Sequence[int] | int) -> tuple[int, ...]:
    """Return `shape` as a tuple after checking it holds positive ints."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or not all(type(s) is int and s > 0 for s in shape):
        raise ValueError(f"shape must be a sequence of positive ints such as x.shape, got {shape!r}")
    return tuple(shape)


def _check_dtype(dtype: torch.dtype) -> None:
    """Raise unless `dtype` is a floating-point torch dtype."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch dtype such as torch.float32, got {dtype}")


def _check_constants(absmax: torch.Tensor, n: int, blocksize: int, name: str = "absmax") -> None:
    """Raise unless `absmax` is a float tensor with one constant per block of `n` values."""
    if not isinstance(absmax, torch.Tensor) or not absmax.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (one constant per block)")
    blocks = -(-n // blocksize)
    if absmax.numel() != blocks:
        raise ValueError(
            f"{name} has {absmax.numel()} constants but {n} values in blocks of {blocksize} need {blocks}: "
            "pass the absmax returned together with the quantized tensor and the same blocksize"
        )


def _check_block_codes(q: torch.Tensor, q_dtype: torch.dtype, producer: str, absmax: torch.Tensor,
                       shape: Sequence[int], blocksize: int, dtype: torch.dtype) -> tuple[int, ...]:
    """Check the arguments of a block-wise dequantizer (one code per value) and return `shape` as a tuple."""
    _check_blocksize(blocksize, smallest=2)
    shape = _check_shape(shape)
    n = math.prod(shape)
    _check_dtype(dtype)
    if not isinstance(q, torch.Tensor) or q.dtype != q_dtype:
        raise TypeError(f"q must be the {q_dtype} tensor from {producer}, got {getattr(q, 'dtype', type(q))}")
    if q.numel() != n:
        raise ValueError(f"q has {q.numel()} values but shape {shape} needs {n}")
    _check_constants(absmax, n, blocksize)
    return shape


def _blocks(flat: torch.Tensor, blocksize: int) -> torch.Tensor:
    """View a flat tensor as rows of `blocksize` values, padding the last partial block with zeros."""
    pad = -flat.numel() % blocksize
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    return flat.view(-1, blocksize)


def _scale_blocks_(values: torch.Tensor, absmax: torch.Tensor, blocksize: int) -> torch.Tensor:
    """Multiply each block of the flat float32 `values` by its constant, in place."""
    full = values.numel() - values.numel() % blocksize
    values[:full].view(-1, blocksize).mul_(absmax[: full // blocksize].unsqueeze(1))
    if full < values.numel():
        values[full:].mul_(absmax[-1])
    return values


def _midpoints(levels: torch.Tensor) -> torch.Tensor:
    """Decision boundaries halfway between neighbouring sorted levels."""
    return (levels[:-1] + levels[1:]) / 2


def _check_code(code: torch.Tensor) -> None:
    """Raise unless `code` is a sorted 1-D float tensor of 2 to 256 levels."""
    if not isinstance(code, torch.Tensor) or not code.is_floating_point() or code.dim() != 1:
        raise TypeError("code must be a 1-D floating-point tensor of levels, e.g. normal_float_code(4)")
    if not 2 <= code.numel() <= 256:
        raise ValueError(f"code must hold 2 to 256 levels (one uint8 index each), got {code.numel()}")
    if (code[1:] < code[:-1]).any():
        raise ValueError("code must be sorted ascending: pass torch.sort(code).values")


# ----------------------------------------------------------------------------- absmax int8


def absmax_quantize(x: torch.Tensor, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax int8: round(x * 127 / absmax); one constant (dim=None) or one per row (dim=-1)."""
    _check_values(x, "x")
    if dim is not None and dim not in (-1, x.dim() - 1):
        raise ValueError(f"dim must be None (one constant) or -1 (one per row), got {dim}")
    x = x.float()
    absmax = x.abs().amax() if dim is None else x.abs().amax(dim=-1)
    _check_finite(absmax, "x")
    scale = torch.where(absmax > 0, 127.0 / absmax, 0.0)
    q = torch.round(x * (scale if dim is None else scale.unsqueeze(-1))).to(torch.int8)
    return q, absmax


def absmax_dequantize(q: torch.Tensor, absmax: torch.Tensor) -> torch.Tensor:
    """Undo absmax_quantize: q * absmax / 127 (as bitsandbytes writes it: q * absmax * (1/127))."""
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8:
        raise TypeError(f"q must be the int8 tensor from absmax_quantize, got {getattr(q, 'dtype', type(q))}")
    if not isinstance(absmax, torch.Tensor) or not absmax.is_floating_point():
        raise TypeError("absmax must be the float tensor from absmax_quantize")
    if absmax.dim() > 0 and absmax.shape != q.shape[:-1]:
        raise ValueError(f"absmax has shape {tuple(absmax.shape)}; for q of shape {tuple(q.shape)} it must be "
                         f"a scalar or {tuple(q.shape[:-1])} (one per row)")
    scale = absmax.float() if absmax.dim() == 0 else absmax.float().unsqueeze(-1)
    return q * scale * INV_127


def blockwise_quantize(x: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax int8 per block of the flattened tensor: (flat int8 codes, float32 absmax per block)."""
    _check_blocksize(blocksize, smallest=2)
    flat = _check_values(x, "x")
    q, absmax = absmax_quantize(_blocks(flat, blocksize), dim=-1)
    return q.view(-1)[: flat.numel()], absmax


def blockwise_dequantize(
    q: torch.Tensor, absmax: torch.Tensor, shape: Sequence[int], blocksize: int = 64, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Undo blockwise_quantize and reshape to `shape`."""
    shape = _check_block_codes(q, torch.int8, "blockwise_quantize", absmax, shape, blocksize, dtype)
    values = _scale_blocks_(q.reshape(-1).float(), absmax.float(), blocksize).mul_(INV_127)
    return values.to(dtype).reshape(shape)


# ----------------------------------------------------------------------------- 4-bit codes


def normal_float_code(bits: int = 4) -> torch.Tensor:
    """NormalFloat levels: 2**bits sorted N(0,1) quantiles in [-1, 1] with an exact 0 (bits=4: bitsandbytes' NF4)."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int from 2 to 8, got {type(bits).__name__}")
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be from 2 to 8, got {bits}")
    half = 2 ** (bits - 1)
    # The outermost quantile is the mean of 1 - 1/(2(2^k - 1)) and 1 - 1/(2 * 2^k): 0.96770833 for k=4.
    # bitsandbytes writes it with 7 decimals (0.9677083) and spaces the quantiles in float32; both are
    # needed to get its table bit for bit (float64 throughout is off by up to 1.2e-7, or 1.8e-7 with the
    # unrounded offset).
    offset = round((1 - 1 / (2 * (2**bits - 1)) + 1 - 1 / (2 * 2**bits)) / 2, 7)
    positive = norm.ppf(torch.linspace(offset, 0.5, half + 1)[:-1].numpy())
    negative = -norm.ppf(torch.linspace(offset, 0.5, half)[:-1].numpy())
    levels = torch.tensor([*positive, 0.0, *negative], dtype=torch.float32).sort().values
    return levels / levels.max()


def fp4_code() -> torch.Tensor:
    """bitsandbytes' FP4 levels (1 sign, 2 exponent, 1 mantissa bit) in index order; codes 0 and 8 both mean +0."""
    # As bitsandbytes.functional.get_4bit_type("fp4") lists them, before dividing by the largest.
    magnitudes = [0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0]
    return torch.tensor(magnitudes + [0.0] + [-m for m in magnitudes[1:]]) / 12.0


def int4_code() -> torch.Tensor:
    """16 evenly spaced levels from -1 to 1 (a plain linear 4-bit type; note it has no exact zero)."""
    return torch.linspace(-1.0, 1.0, 16)


def dynamic_map() -> torch.Tensor:
    """The signed dynamic 8-bit map of double quantization: bitsandbytes' create_dynamic_map(signed=True), 256 levels.

    Each decade 10^-6 .. 10^0 gets 2^i levels (i = 0..6) at the midpoints of an even split of [0.1, 1],
    mirrored for negative values, plus 0 and 1: fine steps near zero, coarse ones near 1.
    """
    levels = [torch.tensor([0.0, 1.0])]
    for i in range(7):
        edges = torch.linspace(0.1, 1, 2**i + 1)
        magnitudes = 10.0 ** (i - 6) * ((edges[:-1] + edges[1:]) / 2)
        levels += [magnitudes, -magnitudes]
    return torch.cat(levels).sort().values


def _code_4bit(quant_type: str) -> torch.Tensor:
    """The 16 levels of a bitsandbytes 4-bit type, in index order."""
    if quant_type == "nf4":
        return normal_float_code(4)
    if quant_type == "fp4":
        return fp4_code()
    raise ValueError(f"quant_type must be 'nf4' or 'fp4', got {quant_type!r}")


# ----------------------------------------------------------------------------- k-bit block-wise


def _scaled_blocks(flat: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each block divided by its absmax and clamped to [-1, 1] exactly as bitsandbytes' 4-bit quantizer does it."""
    blocks = _blocks(flat, blocksize)
    absmax = blocks.abs().amax(dim=1)
    _check_finite(absmax, "x")
    scaled = blocks * (1.0 / absmax.clamp(min=1e-38)).unsqueeze(1)
    if flat.numel() % blocksize:
        # bitsandbytes treats a last partial block apart: it divides instead of multiplying by the
        # reciprocal (a few values then round differently) and stores its absmax clamped to 1e-38.
        absmax[-1] = absmax[-1].clamp(min=1e-38)
        scaled[-1] = blocks[-1] / absmax[-1]
    return scaled.clamp_(-1, 1).view(-1), absmax


def quantize_with_code(x: torch.Tensor, code: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-wise quantization to the nearest level of a sorted `code`: (flat uint8 indices, fp32 absmax per block)."""
    _check_code(code)
    _check_blocksize(blocksize, smallest=2)
    flat = _check_values(x, "x")
    scaled, absmax = _scaled_blocks(flat, blocksize)
    q = torch.bucketize(scaled[: flat.numel()], _midpoints(code.float()), out_int32=True)
    return q.to(torch.uint8), absmax


def dequantize_with_code(
    q: torch.Tensor,
    absmax: torch.Tensor,
    code: torch.Tensor,
    shape: Sequence[int],
    blocksize: int = 64,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Undo quantize_with_code: code[q] times its block's absmax, reshaped to `shape`."""
    _check_code(code)
    shape = _check_block_codes(q, torch.uint8, "quantize_with_code", absmax, shape, blocksize, dtype)
    values = code.float()[q.reshape(-1).long()]
    return _scale_blocks_(values, absmax.float(), blocksize).to(dtype).reshape(shape)


# ----------------------------------------------------------------------------- 4-bit NF4 / FP4


def quantize_4bit(x: torch.Tensor, blocksize: int = 64, quant_type: str = "nf4") -> tuple[torch.Tensor, torch.Tensor]:
    """NF4/FP4 block-wise quantization packed two codes per byte: (uint8 of shape (ceil(n/2), 1), fp32 absmax)."""
    _check_blocksize(blocksize, smallest=32)
    code = _code_4bit(quant_type)
    flat = _check_values(x, "x")
    scaled, absmax = _scaled_blocks(flat, blocksize)
    # FP4's index order is not its value order: find the nearest sorted level, then map back to its index.
    order = torch.argsort(code, stable=True)
    # An odd count gets one padding value 0.0 (the zero level's code), as bitsandbytes does.
    scaled = scaled[: flat.numel() + flat.numel() % 2]
    q = torch.bucketize(scaled, _midpoints(code[order]), out_int32=True)
    q = q.to(torch.uint8) if quant_type == "nf4" else order.to(torch.uint8)[q]
    packed = (q[0::2] << 4) | q[1::2]
    return packed.unsqueeze(1), absmax


def _byte_table(code: torch.Tensor) -> torch.Tensor:
    """Row b holds the two levels byte b encodes, high nibble first: one lookup decodes two values."""
    byte = torch.arange(256)
    return torch.stack([code[byte >> 4], code[byte & 15]], dim=1)


def dequantize_4bit(
    packed: torch.Tensor,
    absmax: torch.Tensor,
    shape: Sequence[int],
    blocksize: int = 64,
    quant_type: str = "nf4",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Undo quantize_4bit: look up both nibbles of every byte, multiply by the block's absmax, reshape to `shape`."""
    _check_blocksize(blocksize, smallest=32)
    code = _code_4bit(quant_type)
    shape = _check_shape(shape)
    n = math.prod(shape)
    _check_dtype(dtype)
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        got = getattr(packed, "dtype", type(packed))
        raise TypeError(f"packed must be the uint8 tensor from quantize_4bit, got {got}")
    if packed.numel() != (n + 1) // 2:
        raise ValueError(
            f"packed has {packed.numel()} bytes but shape {shape} needs {(n + 1) // 2} (two 4-bit codes per byte): "
            "pass the shape of the tensor that was quantized"
        )
    _check_constants(absmax, n, blocksize)
    # index_select into a fresh output with int32 indices is about twice as fast as code[packed.long()].
    pairs = torch.empty(packed.numel(), 2)
    torch.index_select(_byte_table(code), 0, packed.reshape(-1).int(), out=pairs)
    values = pairs.view(-1)[:n]
    return _scale_blocks_(values, absmax.float(), blocksize).to(dtype).reshape(shape)


# ----------------------------------------------------------------------------- double quantization


def _bnb_cpu_8bit_indices(scaled: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Nearest level of `code` the way bitsandbytes' CPU 8-bit kernel finds it.

    The kernel first rounds each scaled value to a grid of 65,536 steps over [-1, 1] and looks up the
    nearest level of that grid point, so a value within one step of a midpoint can get the neighbouring
    level. Doing the same keeps our bytes identical to the library's.
    """
    grid = -1.0 + (2.0 * torch.arange(65536, dtype=torch.float32)) / 65535
    lookup = torch.bucketize(grid, _midpoints(code)).to(torch.uint8)
    return lookup[((scaled.clamp(-1, 1) + 1.0) * 0.5 * 65535 + 0.5).long()]


def double_quantize(absmax: torch.Tensor, blocksize: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize the 4-bit constants themselves: subtract their mean, then 8-bit block-wise with the dynamic map.

    Returns (uint8 codes, fp32 second-level absmax per block, fp32 offset), equal to bitsandbytes'
    quant_state.absmax, quant_state.state2.absmax and quant_state.offset with compress_statistics=True.
    """
    _check_blocksize(blocksize, smallest=32)
    flat = _check_values(absmax, "absmax")
    _check_finite(flat, "absmax")
    offset = flat.mean()
    blocks = _blocks(flat - offset, blocksize)
    absmax2 = blocks.abs().amax(dim=1)
    # This kernel multiplies by the reciprocal in every block and gives an all-zero block code 0.
    scaled = blocks * torch.where(absmax2 > 0, 1.0 / absmax2, 0.0).unsqueeze(1)
    q = _bnb_cpu_8bit_indices(scaled, dynamic_map())
    q[absmax2 == 0] = 0
    return q.view(-1)[: flat.numel()], absmax2, offset


def double_dequantize(
    q: torch.Tensor, absmax2: torch.Tensor, offset: torch.Tensor, blocksize: int = 256
) -> torch.Tensor:
    """Undo double_quantize: dynamic_map()[q] times its block's absmax2, plus the offset (fp32 absmax)."""
    _check_blocksize(blocksize, smallest=32)
    if not isinstance(q, torch.Tensor) or q.dtype != torch.uint8:
        raise TypeError(f"q must be the uint8 tensor from double_quantize, got {getattr(q, 'dtype', type(q))}")
    if q.numel() == 0:
        raise ValueError("q is empty: pass the codes returned by double_quantize")
    _check_constants(absmax2, q.numel(), blocksize, name="absmax2")
    values = dynamic_map()[q.reshape(-1).long()]
    return _scale_blocks_(values, absmax2.float(), blocksize) + offset


# ----------------------------------------------------------------------------- zero-point int8


def zeropoint_quantize(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric (zero-point) quantization mapping [min, max] to 0..2^bits-1: (uint8 codes, scale, zero point)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int from 2 to 8, got {bits!r}")
    flat = _check_values(x, "x")
    lo, hi = flat.min().clamp(max=0.0), flat.max().clamp(min=0.0)  # the range holds 0, so 0 stays exact
    _check_finite(torch.stack([lo, hi]), "x")
    levels = 2**bits - 1
    scale = torch.where(hi > lo, (hi - lo) / levels, 1.0)
    zero_point = torch.round(-lo / scale) + 0.0  # + 0.0 turns -0.0 into 0.0
    q = torch.clamp(torch.round(x.float() / scale) + zero_point, 0, levels).to(torch.uint8)
    return q, scale, zero_point


def zeropoint_dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """Undo zeropoint_quantize: (q - zero_point) * scale."""
    if not isinstance(q, torch.Tensor) or q.dtype != torch.uint8:
        raise TypeError(f"q must be the uint8 tensor from zeropoint_quantize, got {getattr(q, 'dtype', type(q))}")
    return (q.float() - zero_point) * scale


# ----------------------------------------------------------------------------- float formats bit by bit

# name: (torch dtype or None, exponent bits, mantissa bits). FP4 has no torch dtype to compute with.
FLOAT_FORMATS = {
    "fp32": (torch.float32, 8, 23),
    "fp16": (torch.float16, 5, 10),
    "bf16": (torch.bfloat16, 8, 7),
    "fp8 e4m3": (torch.float8_e4m3fn, 4, 3),
    "fp8 e5m2": (torch.float8_e5m2, 5, 2),
    "fp4 e2m1": (None, 2, 1),
    "fp4 e3m0": (None, 3, 0),
}
_INT_OF_WIDTH = {32: torch.int32, 16: torch.int16, 8: torch.uint8}


def _check_format(fmt: str) -> tuple[torch.dtype | None, int, int]:
    """The (dtype, exponent bits, mantissa bits) of a FLOAT_FORMATS name."""
    if fmt not in FLOAT_FORMATS:
        raise ValueError(f"fmt must be one of {tuple(FLOAT_FORMATS)}, got {fmt!r}")
    return FLOAT_FORMATS[fmt]


def minifloat_values(exp_bits: int, man_bits: int) -> torch.Tensor:
    """Every finite value of a small float with no inf/NaN codes (as FP4 E2M1): sorted, distinct, with subnormals."""
    if not (isinstance(exp_bits, int) and isinstance(man_bits, int) and exp_bits >= 1 and man_bits >= 0
            and exp_bits + man_bits <= 7):
        raise ValueError(f"exp_bits >= 1, man_bits >= 0 and at most 7 bits in all, got {exp_bits}, {man_bits}")
    bias = 2 ** (exp_bits - 1) - 1
    values = []
    for e in range(2**exp_bits):
        for m in range(2**man_bits):
            frac = m / 2**man_bits
            values.append(2.0 ** (1 - bias) * frac if e == 0 else 2.0 ** (e - bias) * (1 + frac))
    positive = torch.tensor(sorted(set(values)))
    return torch.cat([-positive.flip(0)[:-1], positive])


def float_bits(value: float, fmt: str) -> str:
    """The bits of `value` stored in `fmt` as "sign exponent mantissa", e.g. float_bits(1.5, "fp16")."""
    dtype, exp_bits, man_bits = _check_format(fmt)
    width = 1 + exp_bits + man_bits
    if dtype is None:
        raise ValueError(f"{fmt} has no torch dtype: use minifloat_values({exp_bits}, {man_bits}) for its values")
    stored = torch.tensor([value], dtype=torch.float32).to(dtype)
    raw = int(stored.view(_INT_OF_WIDTH[width]).item()) & (2**width - 1)
    bits = format(raw, f"0{width}b")
    return f"{bits[0]} {bits[1:1 + exp_bits]} {bits[1 + exp_bits:]}"


def float_format_facts(fmt: str) -> dict[str, float]:
    """Largest finite value, the spacing just above 1 and the smallest normal value of a FLOAT_FORMATS format."""
    dtype, exp_bits, man_bits = _check_format(fmt)
    if dtype is not None:
        info = torch.finfo(dtype)
        return {"max": float(info.max), "step at 1": float(info.eps), "smallest normal": float(info.tiny)}
    values = minifloat_values(exp_bits, man_bits)
    above_one = values[values > 1]
    return {"max": values.max().item(), "step at 1": (above_one.min() - 1).item() if above_one.numel() else math.nan,
            "smallest normal": 2.0 ** (2 - 2 ** (exp_bits - 1))}
