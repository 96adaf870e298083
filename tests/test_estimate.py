"""The T4 estimate: FLOPs and dequantization bytes by hand for a tiny config, and a range that moves the right way."""
import pytest
from transformers import GemmaConfig

from helpers import estimate, loading

# One layer, hidden 4, 2 query heads and 1 key/value head of size 2, MLP 8, a 10-word vocabulary.
TINY = GemmaConfig(vocab_size=10, hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2,
                   num_key_value_heads=1, head_dim=2)
# By hand: q, o 4x4 = 16 each; k, v 4x2 = 8 each; gate, up, down 4x8 = 32 each: 48 + 96 = 144. Head 4 x 10 = 40.
# LoRA r=1 on q, k, v, o: (4+4) + (4+2) + (4+2) + (4+4) = 28. Attention over a causal block of 3: a token attends to
# 2 positions on average, 2 heads x 2 dims x 2 positions x (2 for the scores + 2 for the sum) = 32.
FORWARD = 2 * (144 + 40) + 32 + 2 * 28  # 456
BACKWARD = 2 * 144 + 4 * 40 + 2 * 32 + 4 * 28  # input gradients, the head's recomputed logits, LoRA's two: 624
RECOMPUTED = 2 * 144 + 32 + 2 * 28  # the decoder layer's forward once more: 376


def test_the_weights_a_token_multiplies_by_hand():
    assert estimate.matmul_weights(TINY) == {"layers": 144, "head": 40}
    assert estimate.attention_flops(TINY, context=3) == 32


@pytest.mark.parametrize("recompute, expected", [(False, FORWARD + BACKWARD), (True, FORWARD + BACKWARD + RECOMPUTED)])
def test_flops_per_token_by_hand(recompute, expected):
    assert estimate.flops_per_token(TINY, recompute, context=3, lora_r=1) == expected == (1456 if recompute else 1080)


def test_dequantization_bytes_by_hand():
    # 4.5 bytes per 4-bit weight per pass (2 passes, 3 with recomputation) + 18 per fp32 head weight.
    assert estimate.dequant_bytes(TINY, recompute=False) == 144 * 4.5 * 2 + 40 * 18 == 2016
    assert estimate.dequant_bytes(TINY, recompute=True) == 144 * 4.5 * 3 + 40 * 18 == 2664
    assert estimate.dequant_bytes(TINY, recompute=False, fp32_head=False) == 1296


def test_recomputation_adds_one_forward_of_the_layers_about_a_third_of_gemmas_work():
    gemma = loading.gemma_2b_config()
    without, with_ = (estimate.flops_per_token(gemma, r) for r in (False, True))
    assert without == pytest.approx(11.197e9, rel=1e-3) and with_ == pytest.approx(15.203e9, rel=1e-3)
    # The layers alone would be 2N of 6N = 1/3; the 256,000-word head, never recomputed, brings it to 26 %.
    assert (with_ - without) / with_ == pytest.approx(0.2635, abs=1e-3)
    assert 1 / 4 < (with_ - without) / with_ < 1 / 3
    # What is recomputed is exactly one more forward of the decoder layers, LoRA and attention included.
    layers_forward = 2 * estimate.matmul_weights(gemma)["layers"] + estimate.attention_flops(gemma, 512) + 2 * 1_843_200
    assert with_ - without == pytest.approx(layers_forward, rel=1e-12)


def test_the_range_moves_the_right_way():
    blocks = 7000
    t4, fast = estimate.t4_hours(blocks, "t4"), estimate.t4_hours(blocks, "t4_fast")
    assert 0 < t4["low_hours"] < t4["high_hours"]
    assert fast["low_hours"] < t4["low_hours"] and fast["high_hours"] < t4["high_hours"]
    more = estimate.t4_hours(2 * blocks, "t4")
    assert more["low_hours"] == pytest.approx(2 * t4["low_hours"], abs=0.011)
    two = estimate.t4_hours(blocks, "t4", gpus=2)
    assert two["low_hours"] == pytest.approx(t4["low_hours"] / 2, abs=0.011) and two["high_hours"] < t4["high_hours"]
    assert t4["tokens"] == blocks * 512 and t4["label"] == "ESTIMATE, not measured on a T4"
    assert any("7,000 blocks of 512 tokens, with recomputation" in a for a in t4["assumptions"])


def test_the_low_end_is_the_flops_at_the_measured_rate_plus_the_traffic():
    gemma = loading.gemma_2b_config()
    e = estimate.t4_hours(1000, "t4_fast")
    flops_seconds = 1000 * 512 * estimate.flops_per_token(gemma, False) / 24e12
    seconds = flops_seconds + 500 * estimate.dequant_bytes(gemma, False) / 320e9  # 500 micro-batches of 2
    assert e["low_hours"] == round(seconds / 3600, 2)


def test_the_assumed_dolly_epoch_is_about_twice_the_sample_based_one():
    blocks = estimate.dolly_blocks_assumed()
    # (15,011 - 200) rows x (987 / 4 + 1) tokens / 512; the sample-based figure was 1,810,362 tokens.
    assert blocks == 7167 and 1.9 < blocks * 512 / 1_810_362 < 2.1


@pytest.mark.parametrize("kwargs, message", [(dict(blocks=0), "blocks must be"), (dict(blocks=True), "blocks must be"),
                                             (dict(blocks=10, gpus=0), "gpus must be"),
                                             (dict(blocks=10, preset="t5"), "preset must be one of")])
def test_bad_input_is_refused_with_its_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate.t4_hours(**kwargs)
