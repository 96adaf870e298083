"""The T4 estimate, checked against hand computations written out here: FLOPs, bytes, steps, seconds, bad input."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch
from transformers import GemmaConfig

from helpers import estimate, language, loading, training

# One layer, hidden 4, 2 query heads and 1 key/value head of size 2, MLP 8, a 10-word vocabulary.
TINY = GemmaConfig(vocab_size=10, hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2,
                   num_key_value_heads=1, head_dim=2)
# By hand: q, o 4x4 = 16 each; k, v 4x2 = 8 each; gate, up, down 4x8 = 32 each: 48 + 96 = 144. Head 4 x 10 = 40.
# LoRA r=1 on q, k, v, o: (4+4) + (4+2) + (4+2) + (4+4) = 28. Attention over a causal block of 3: a token attends to
# 2 positions on average, 2 heads x 2 dims x 2 positions x (2 for the scores + 2 for the sum) = 32.
FORWARD = 2 * (144 + 40) + 32 + 2 * 28  # 456
BACKWARD = 2 * 144 + 4 * 40 + 2 * 32 + 4 * 28  # input gradients, the head's recomputed logits, LoRA's two: 624
RECOMPUTED = 2 * 144 + 32 + 2 * 28  # the decoder layer's forward once more: 376
# head_dim 3 with hidden 4 and 2 heads: hidden / heads would say 2. q, o: 4 x (2 x 3) = 24 each; k, v: 4 x 3 = 12
# each; MLP 96: 72 + 96 = 168. Attention over 3: 2 heads x 3 dims x 2 positions x 4 = 48.
WIDE_HEADS = GemmaConfig(vocab_size=10, hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=3)

# Gemma-2B by hand (18 layers, hidden 2048, 8 heads, 1 key/value head, head_dim 256, MLP 16,384, vocab 256,000).
G_LAYER = 2 * 2048 * 8 * 256 + 2 * 2048 * 1 * 256 + 3 * 2048 * 16384  # q, o; k, v; gate, up, down = 110,100,480
G_LAYERS = 18 * G_LAYER  # 1,981,808,640 (docs/facts.md)
G_HEAD = 2048 * 256_000  # 524,288,000
G_LORA = 18 * 8 * ((2048 + 2048) + (2048 + 256) + (2048 + 256) + (2048 + 2048))  # 1,843,200
G_ATTENTION = 4 * 18 * 8 * 256 * (512 + 1) / 2  # 37,822,464
G_FORWARD = 2 * (G_LAYERS + G_HEAD) + G_ATTENTION + 2 * G_LORA
G_BACKWARD = 2 * G_LAYERS + 4 * G_HEAD + 2 * G_ATTENTION + 4 * G_LORA
G_RECOMPUTED = 2 * G_LAYERS + G_ATTENTION + 2 * G_LORA
# Bytes per micro-batch of 2 blocks of 512 (1,024 tokens). Dequantization per weight: forward 0.5 + 2 + 2, backward
# 0.5 + 4 (fp32) + 4 + 2 + 2, double quantization's constants 13 bytes per 64 weights per pass; the fp32 head 18.
G_DEQUANT = {False: G_LAYERS * (4.5 + 12.5 + 2 * 13 / 64) + G_HEAD * 18,
             True: G_LAYERS * (2 * 4.5 + 12.5 + 3 * 13 / 64) + G_HEAD * 18}
# Elementwise: counted coefficients (benchmarks/elementwise_bytes.py) plus CUDA's fused dropout.
G_ELEMENTWISE = {False: 18 * (92.0 * 16384 + (694.1 + 64) * 2048) * 1024,
                 True: 18 * (112.1 * 16384 + (932.6 + 96) * 2048) * 1024}


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    language.set_language("en")


@pytest.fixture
def no_h200(monkeypatch):
    monkeypatch.setattr(training, "benchmark_reports", list)


def test_the_weights_a_token_multiplies_by_hand():
    assert estimate.matmul_weights(TINY) == {"layers": 144, "head": 40}
    assert estimate.attention_flops(TINY, context=3) == 32


def test_head_dim_comes_from_the_config_not_from_hidden_over_heads():
    assert estimate.matmul_weights(WIDE_HEADS) == {"layers": 168, "head": 40}
    assert estimate.attention_flops(WIDE_HEADS, context=3) == 48
    gemma = loading.gemma_2b_config()
    assert estimate.matmul_weights(gemma) == {"layers": G_LAYERS, "head": G_HEAD} and G_LAYERS == 1_981_808_640


@pytest.mark.parametrize("recompute, expected", [(False, FORWARD + BACKWARD), (True, FORWARD + BACKWARD + RECOMPUTED)])
def test_flops_per_token_by_hand(recompute, expected):
    assert estimate.flops_per_token(TINY, recompute, context=3, lora_r=1) == expected == (1456 if recompute else 1080)


def test_gemma_flops_per_token_by_hand():
    gemma = loading.gemma_2b_config()
    assert estimate.flops_per_token(gemma, False) == G_FORWARD + G_BACKWARD == 11_197_489_152
    assert estimate.flops_per_token(gemma, True) == G_FORWARD + G_BACKWARD + G_RECOMPUTED == 15_202_615_296


def test_recomputation_is_one_number_26_percent_not_a_third():
    # The layers alone would be 2N of 6N = 1/3; the 256,000-word head, never recomputed, brings it to 26 %.
    share = estimate.recompute_share(loading.gemma_2b_config())
    assert share == pytest.approx(G_RECOMPUTED / (G_FORWARD + G_BACKWARD + G_RECOMPUTED), rel=1e-12)
    assert f"{share:.0%}" == "26%"


def test_dequantization_bytes_by_hand():
    # The tiny config: 144 layer weights, 40 head weights.
    assert estimate.dequant_bytes(TINY, recompute=False) == pytest.approx(144 * (4.5 + 12.5 + 2 * 13 / 64) + 40 * 18)
    assert estimate.dequant_bytes(TINY, recompute=True) == pytest.approx(144 * (9 + 12.5 + 3 * 13 / 64) + 40 * 18)
    assert estimate.dequant_bytes(TINY, recompute=False, fp32_head=False) == pytest.approx(144 * (17 + 26 / 64))
    gemma = loading.gemma_2b_config()
    for recompute in (False, True):
        assert estimate.dequant_bytes(gemma, recompute) == pytest.approx(G_DEQUANT[recompute], rel=1e-12)


def test_the_backward_dequantizes_to_the_dtype_the_model_was_loaded_in(tmp_path):
    """BACKWARD_BYTES_PER_WEIGHT writes 4 bytes: MatMul4Bit.backward dequantizes to the quant state's dtype, fp32."""
    import bitsandbytes.functional as F
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, GemmaForCausalLM

    config = GemmaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=32)
    GemmaForCausalLM(config).to(torch.bfloat16).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(
        tmp_path, device_map="cpu", dtype=torch.float32,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float16))
    weight = model.model.layers[0].mlp.up_proj.weight
    assert weight.quant_state.dtype == torch.float32  # not the fp16 compute dtype
    assert F.dequantize_4bit(weight.data, weight.quant_state).dtype == torch.float32
    assert estimate.BACKWARD_BYTES_PER_WEIGHT == 0.5 + 4 + 4 + 2 + 2


def test_elementwise_bytes_by_hand():
    gemma = loading.gemma_2b_config()
    for recompute in (False, True):
        assert estimate.elementwise_bytes(gemma, recompute, 1024) == pytest.approx(G_ELEMENTWISE[recompute], rel=1e-12)
    # More than the dequantization: the fp32 residual stream is the largest memory cost.
    assert G_ELEMENTWISE[True] / 1e9 == pytest.approx(72.7, abs=0.1) and G_ELEMENTWISE[True] > G_DEQUANT[True]


@pytest.mark.slow
def test_the_elementwise_coefficients_are_what_the_counting_script_counts():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "elementwise_bytes.py"
    spec = importlib.util.spec_from_file_location("elementwise_bytes", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for recompute in (False, True):
        assert script.per_token_per_layer(recompute) == pytest.approx(estimate.ELEMENTWISE_COUNTED[recompute], abs=0.1)


def low_seconds_by_hand(blocks, recompute, micro_batch=2, accumulation=2, layers=18):
    """The low end by hand for Gemma-2B on one T4: FLOPs at 24e12/s, bytes at 320e9 B/s, 50 µs per sync."""
    micro_batches = math.ceil(blocks / micro_batch)
    steps = math.ceil(micro_batches / accumulation)
    flops = (G_FORWARD + G_BACKWARD + (G_RECOMPUTED if recompute else 0)) * blocks * 512
    traffic = micro_batches * G_DEQUANT[recompute] + G_ELEMENTWISE[recompute] / 1024 * blocks * 512
    syncs = micro_batches * 3 + steps * (2 * 4 * layers + 1)
    return flops / 24e12 + traffic / 320e9 + syncs * 50e-6


@pytest.mark.parametrize("preset, recompute", [("t4", True), ("t4_fast", False)])
def test_the_low_end_by_hand_in_bytes_not_gib(preset, recompute, no_h200):
    e = estimate.t4_hours(1000, preset)
    assert e["micro_batches"] == 500 and e["optimizer_steps"] == 250
    assert e["low_hours"] == round(low_seconds_by_hand(1000, recompute) / 3600, 2)


@pytest.mark.parametrize("preset, recompute", [("t4", True), ("t4_fast", False)])
def test_the_printed_bytes_per_micro_batch_are_gb_of_1e9_bytes(preset, recompute, no_h200):
    # 2 blocks of 512 per micro-batch: the dequantization plus the elementwise kernels of 1,024 tokens, in 1e9 bytes
    # (about 125.9 GB with recomputation; in GiB it would read 117.3).
    gb = (G_DEQUANT[recompute] + G_ELEMENTWISE[recompute]) / 1e9
    assert f"{gb:.1f}" != f"{gb * 1e9 / 2**30:.1f}"
    line = next(a for a in estimate.t4_hours(1000, preset)["assumptions"] if "moved per micro-batch" in a)
    assert line.startswith(f"{gb:.1f} GB (1 GB = 1e9 bytes) moved per micro-batch")

def test_a_last_partial_micro_batch_costs_its_tokens_and_a_whole_dequantization(no_h200):
    # 5 blocks in micro-batches of 2: 3 micro-batches (2, 2, 1), 2 optimizer steps; FLOPs of 5 blocks, not 6.
    e = estimate.t4_hours(5, "t4")
    assert (e["micro_batches"], e["optimizer_steps"], e["tokens"]) == (3, 2, 5 * 512)
    assert e["flops"] == (G_FORWARD + G_BACKWARD + G_RECOMPUTED) * 5 * 512
    assert e["traffic_bytes"] == pytest.approx(3 * G_DEQUANT[True] + G_ELEMENTWISE[True] / 1024 * 5 * 512, rel=1e-12)


def test_the_h200_time_is_added_per_micro_batch_and_syncs_per_step(monkeypatch):
    # A fake H200 run: 1.0 s per optimizer step of 2 micro-batches = 0.5 s per micro-batch.
    monkeypatch.setattr(training, "benchmark_reports", list)
    without = estimate.t4_hours(1000, "t4")
    row = dict(preset="t4", seconds_per_step=1.0, grad_accum=2, tokens_per_second=2048.0)
    monkeypatch.setattr(training, "benchmark_reports", lambda: [{"gpu": "NVIDIA H200", "presets": [row]}])
    with_ = estimate.t4_hours(1000, "t4")
    assert with_["high_hours"] - without["high_hours"] == pytest.approx(500 * 0.5 / 3600, abs=0.011)
    assert with_["low_hours"] == without["low_hours"]  # the low end hides the host behind the GPU
    # The syncs: 3 per micro-batch (trl) and one per trainable parameter + 1 per optimizer step (bitsandbytes).
    assert any("37,750 host synchronizations" in a for a in with_["assumptions"])  # 500 x 3 + 250 x (144 + 1)


def test_max_steps_is_honoured(no_h200):
    # 60 steps of 2 x 2 blocks = 240 blocks of the 7,167: what a workshop run with MAX_STEPS = 60 costs.
    e = estimate.t4_hours(7167, "t4", max_steps=60)
    assert (e["blocks"], e["micro_batches"], e["optimizer_steps"]) == (240, 120, 60)
    assert e["low_hours"] == round(low_seconds_by_hand(240, True) / 3600, 2)
    assert estimate.t4_hours(7167, "t4", max_steps=-1)["blocks"] == 7167  # -1: transformers' "no limit"
    assert estimate.t4_hours(100, "t4", max_steps=10_000)["blocks"] == 100  # the data ends first


def test_two_t4s_split_the_blocks_and_say_it_is_an_untried_estimate(no_h200):
    one, two = estimate.t4_hours(1000, "t4"), estimate.t4_hours(1000, "t4", gpus=2)
    # train.per_device_settings("t4", 2): 2 x 1 per GPU, so 500 blocks each in 250 micro-batches and 250 steps.
    assert (two["micro_batches"], two["optimizer_steps"], two["blocks"]) == (250, 250, 1000)
    assert two["low_hours"] == pytest.approx(one["low_hours"] / 2, abs=0.011)
    assert "never run together" in two["label"] and "never run together" not in one["label"]
    assert any("GPU 0" in a for a in two["assumptions"]) and not any("GPU 0" in a for a in one["assumptions"])
    # An odd count: the larger share (501 blocks, 251 micro-batches) decides.
    assert estimate.t4_hours(1001, "t4", gpus=2)["micro_batches"] == 251


def test_the_range_moves_the_right_way():
    blocks = 7000
    t4, fast = estimate.t4_hours(blocks, "t4"), estimate.t4_hours(blocks, "t4_fast")
    assert 0 < t4["low_hours"] < t4["high_hours"]
    assert fast["low_hours"] < t4["low_hours"] and fast["high_hours"] < t4["high_hours"]
    more = estimate.t4_hours(2 * blocks, "t4")
    assert more["low_hours"] == pytest.approx(2 * t4["low_hours"], abs=0.011)
    assert t4["tokens"] == blocks * 512 and t4["label"] == "ESTIMATE, not measured on a T4"
    assert any("7,000 blocks of 512 tokens" in a and "with activation" in a for a in t4["assumptions"])
    assert any("not anchored on a published T4 training measurement" in a for a in t4["assumptions"])


def test_the_course_times_come_from_one_place_and_the_readme_quotes_them():
    times = estimate.course_times()
    blocks = estimate.dolly_blocks_assumed()
    for preset in ("t4", "t4_fast"):
        for gpus in (1, 2):
            e = estimate.t4_hours(blocks, preset, gpus=gpus)
            assert times[preset][gpus] == (e["low_hours"], e["high_hours"])
    text = estimate.readme_time()
    for preset in ("t4", "t4_fast"):
        low, high = times[preset][1]
        assert f"{low:.1f}–{high:.1f} h (`{preset}`)" in text
    assert "not measured on a T4" in text and "two T4s" in text


def test_the_h200_run_slowed_to_a_t4_is_an_outer_bound():
    # The measured t4 row: 3,286.8 tokens/s on an H200, with 989 / 65 times a T4's fp16 peak.
    blocks = estimate.dolly_blocks_assumed()
    assert estimate.h200_scaled_hours(blocks, "t4") == pytest.approx(blocks * 512 / 3286.8 * 989 / 65 / 3600)
    assert estimate.h200_scaled_hours(blocks, "t4") > estimate.t4_hours(blocks, "t4")["high_hours"]


def test_the_h200_bound_takes_each_gpus_share_of_the_blocks(monkeypatch):
    # A fake H200 run at 2,048 tokens/s: 1,001 blocks on two GPUs, the larger share (501 blocks) decides.
    row = dict(preset="t4", seconds_per_step=1.0, grad_accum=2, tokens_per_second=2048.0)
    monkeypatch.setattr(training, "benchmark_reports", lambda: [{"gpu": "NVIDIA H200", "presets": [row]}])
    slower = 989 / 65
    assert estimate.h200_scaled_hours(1001, "t4") == pytest.approx(1001 * 512 / 2048 * slower / 3600, rel=1e-12)
    assert estimate.h200_scaled_hours(1001, "t4", gpus=2) == pytest.approx(501 * 512 / 2048 * slower / 3600, rel=1e-12)
    monkeypatch.setattr(training, "benchmark_reports", list)
    assert estimate.h200_scaled_hours(1001, "t4") is None  # no H200 run measured: no bound

def test_the_assumptions_are_korean_in_the_korean_edition():
    language.set_language("ko")
    lines = estimate.t4_hours(1000, "t4", gpus=2)["assumptions"]
    assert all(any("\uac00" <= c <= "\ud7a3" for c in line) for line in lines)


def test_the_assumed_dolly_epoch_is_about_twice_the_sample_based_one():
    blocks = estimate.dolly_blocks_assumed()
    # (15,011 - 200) rows x (987 / 4 + 1) tokens / 512; the sample-based figure was 1,810,362 tokens.
    assert blocks == 7167 and 1.9 < blocks * 512 / 1_810_362 < 2.1


@pytest.mark.parametrize("kwargs, message", [
    (dict(blocks=0), "blocks must be"), (dict(blocks=-3), "blocks must be"), (dict(blocks=True), "blocks must be"),
    (dict(blocks=10.5), "blocks must be"), (dict(blocks="10"), "blocks must be"),
    (dict(blocks=10, gpus=0), "gpus must be"), (dict(blocks=10, gpus=1.0), "gpus must be"),
    (dict(blocks=10, block_tokens=0), "block_tokens must be"), (dict(blocks=10, max_steps=0), "max_steps must be"),
    (dict(blocks=10, max_steps=-2), "max_steps must be"), (dict(blocks=10, max_steps=2.5), "max_steps must be"),
    (dict(blocks=10, preset="t5"), "preset must be one of"), (dict(blocks=10, preset=None), "preset must be one of"),
    (dict(blocks=10, preset="t4", gpus=3), "cannot share"),
])
def test_impossible_input_is_refused_with_its_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate.t4_hours(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(blocks=0), "blocks must be"), (dict(blocks=-3), "blocks must be"), (dict(blocks=True), "blocks must be"),
    (dict(blocks=10.5), "blocks must be"), (dict(blocks=10, gpus=0), "gpus must be"),
    (dict(blocks=10, gpus=2.0), "gpus must be"),
])
def test_the_h200_bound_refuses_impossible_input_measured_or_not(kwargs, message, monkeypatch):
    row = dict(preset="t4", seconds_per_step=1.0, grad_accum=2, tokens_per_second=2048.0)
    for reports in (list, lambda: [{"gpu": "NVIDIA H200", "presets": [row]}]):
        monkeypatch.setattr(training, "benchmark_reports", reports)
        with pytest.raises(ValueError, match=message):
            estimate.h200_scaled_hours(**kwargs)

def test_the_readme_table_quotes_the_estimate():
    path = Path(__file__).resolve().parent.parent / "scripts" / "sync_badges.py"
    spec = importlib.util.spec_from_file_location("sync_badges", path)
    badges = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(badges)
    assert badges.TABLE["05_gemma_qlora_t4.ipynb"][1] == estimate.readme_time()


# The prose that quotes the T4 time, each place with the way it writes a range of hours.
PROSE = {
    "README.md": "{low:.1f}–{high:.1f}",  # its Korean section (시간) as well as the English table
    "docs/workshop.md": "{low:.1f}–{high:.1f} h",
    "docs/workshop.ko.md": "{low:.1f}–{high:.1f}시간",
    "docs/facts.md": "{low:.1f}–{high:.1f} h",
    "benchmarks/README.md": "{low:.1f}–{high:.1f} h",
}


@pytest.mark.parametrize("name", sorted(PROSE))
def test_the_documents_quote_todays_estimate_and_no_older_one(name):
    text = (Path(__file__).resolve().parent.parent / name).read_text()
    times = estimate.course_times()
    for preset, gpus in (("t4", 1), ("t4_fast", 1), ("t4", 2), ("t4_fast", 2)):
        low, high = times[preset][gpus]
        if name.startswith("docs/workshop") and (preset, gpus) != ("t4", 1):
            continue  # the teacher's guide quotes one T4 with `t4` (and points to the README for the rest)
        assert PROSE[name].format(low=low, high=high) in text, f"{name} lacks {preset} on {gpus} T4(s): {low}-{high} h"
    for stale in ("0.8–1.7", "0.6–1.2", "a third of the layers", "about half"):  # ranges and words of older estimates
        assert stale not in text, f"{name} still says {stale!r}"
