"""helpers.quant additions: zero-point quantization and the float formats of notebook 02, against torch."""
import pytest
import torch

from helpers import quant


def test_zeropoint_uses_all_256_codes_on_one_sided_data_and_keeps_zero_exact():
    x = torch.tensor([0.0, 0.1, 0.25, 0.9, 2.5])
    q, scale, zero_point = quant.zeropoint_quantize(x)
    assert q.dtype == torch.uint8 and q.max() == 255 and q[0] == zero_point == 0
    assert torch.isclose(scale, torch.tensor(2.5 / 255))
    assert quant.zeropoint_dequantize(q, scale, zero_point)[0] == 0.0
    assert (quant.zeropoint_dequantize(q, scale, zero_point) - x).abs().max() <= scale / 2 + 1e-7


def test_zeropoint_error_is_half_of_absmax_error_on_positive_data():
    x = torch.rand(10_000, generator=torch.Generator().manual_seed(0))
    q, s, z = quant.zeropoint_quantize(x)
    zp_err = (quant.zeropoint_dequantize(q, s, z) - x).abs().mean()
    qa, absmax = quant.absmax_quantize(x)
    absmax_err = (quant.absmax_dequantize(qa, absmax) - x).abs().mean()
    assert 0.45 < (zp_err / absmax_err).item() < 0.55


def test_zeropoint_symmetric_data_and_bad_input():
    q, scale, zero_point = quant.zeropoint_quantize(torch.tensor([-1.0, 0.0, 1.0]), bits=4)
    assert q.tolist() == [0, 7, 14] and zero_point == 7  # 15 steps for a range of 2: zero sits on level 7
    assert quant.zeropoint_dequantize(q, scale, zero_point)[1] == 0.0
    with pytest.raises(ValueError, match="bits must be an int from 2 to 8"):
        quant.zeropoint_quantize(torch.zeros(3), bits=16)
    with pytest.raises(TypeError, match="q must be the uint8 tensor"):
        quant.zeropoint_dequantize(q.int(), scale, zero_point)


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16", "fp8 e4m3", "fp8 e5m2"])
def test_float_bits_decode_back_to_the_value(fmt):
    dtype, exp_bits, man_bits = quant.FLOAT_FORMATS[fmt]
    assert torch.finfo(dtype).bits == 1 + exp_bits + man_bits
    for value in (1.5, -0.375, 3.0):
        sign, exponent, mantissa = quant.float_bits(value, fmt).split(" ")
        bias = 2 ** (exp_bits - 1) - 1
        decoded = (-1) ** int(sign) * 2.0 ** (int(exponent, 2) - bias) * (1 + int(mantissa, 2) / 2**man_bits)
        assert decoded == value


def test_float_format_facts_match_torch_and_the_fp4_tables():
    assert quant.float_format_facts("fp16")["max"] == 65504.0
    assert quant.float_format_facts("fp8 e4m3")["max"] == 448.0
    assert quant.float_format_facts("bf16")["step at 1"] == 2**-7
    assert quant.minifloat_values(2, 1).tolist()[7:] == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    assert quant.minifloat_values(3, 0).tolist()[7:] == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    # the 8-bit formats without inf codes: every finite e4m3fn value
    e4m3 = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    finite = e4m3[torch.isfinite(e4m3)].unique()
    assert finite.max() == 448 and finite.numel() == 253  # NaN codes dropped; +0 and -0 are one value
    # bitsandbytes' FP4 is E2M1 with every level doubled and its smallest one (0.5 -> 1) replaced by 0.0625
    bnb_levels = (quant.fp4_code() * 12).unique().tolist()
    e2m1 = quant.minifloat_values(2, 1)
    assert [v for v in bnb_levels if v >= 2] == [v for v in (e2m1 * 2).tolist() if v >= 2]
    with pytest.raises(ValueError, match="fmt must be one of"):
        quant.float_bits(1.0, "fp6")
    with pytest.raises(ValueError, match="has no torch dtype"):
        quant.float_bits(1.0, "fp4 e2m1")
