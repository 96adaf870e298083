"""How long the QLoRA run takes on a T4: an estimate from FLOPs, a measured T4 rate and the dequantization traffic.

The rule, per token of training, for a model whose base is frozen (QLoRA), counting a multiply-add as 2 FLOPs:
- forward: 2 FLOPs per weight a token passes (every decoder layer's projections and the LM head), plus the
  attention scores and their weighted sum (2 x 2 x heads x head_dim per attended position), plus LoRA's 2 per weight;
- backward: only the gradient with respect to the layer *inputs* (2 per frozen weight, the same as the forward) and
  twice the attention's forward; the frozen weights get no weight gradient, so the familiar 6N of full training
  is 4N here. LoRA's own weights need both (4 per weight);
- trl 1.16's fused LM head never keeps the 256,000-word logits: its backward recomputes them (2 more per head weight);
- activation checkpointing recomputes every decoder layer's forward once more in the backward: 6N instead of 4N for
  the layers, about a third of all the work.
The time adds the FLOPs at an achievable T4 rate and, since bitsandbytes dequantizes every 4-bit weight to fp16 in a
separate kernel before each matrix product (forward, backward and each recomputation), the bytes that moves at the
T4's memory bandwidth. The high end also adds, per micro-batch, the whole step time measured on an H200 (where the
FLOPs and the traffic take a tenth of it: the rest is kernel launches and Python), as if a T4 could hide none of it.
A range, not a measurement: docs/facts.md ("T4 throughput") holds the sources.
"""

import math

from helpers import memory, training

T4_FP16_TFLOPS = 65.0  # NVIDIA T4 datasheet: peak fp16 with tensor cores
# NVIDIA's forum, answered by NVIDIA: cuBLAS fp16 4096^3 matrix products sustain about 24 TFLOPS on a T4, because
# its 70 W power cap lowers the clock under continuous matrix work.
T4_SUSTAINED_TFLOPS = 24.0
T4_BANDWIDTH_GBS = 320.0  # NVIDIA T4 datasheet: GDDR6 memory bandwidth
# The high end assumes the measured large-GEMM rate; the low end half of it (an assumption, not a measurement): a
# training step's products are smaller (1,024 tokens x 2,048) and norms, GeGLU, RoPE and the optimizer add kernels.
FRACTIONS = (T4_SUSTAINED_TFLOPS / T4_FP16_TFLOPS / 2, T4_SUSTAINED_TFLOPS / T4_FP16_TFLOPS)
# Bytes moved per 4-bit weight per dequantization: read 0.5 (NF4) + write 2 (fp16) + the product reads 2.
NF4_BYTES_PER_PASS = 4.5
# The tied LM head stays fp32 under fp16 compute (loading.storage_dtype); trl's fused head casts it to fp16 in the
# forward and again in the backward (read 4 + write 2, twice) and reads the fp16 copy three times (2 each).
FP32_HEAD_BYTES_PER_STEP = 2 * (4 + 2) + 3 * 2
DOLLY_ROWS = 15_011
# ASSUMED, until notebook 05's pre-flight counts the real blocks on a GPU: the characters of one dolly-15k training
# text, template included. 11,666,769 bytes of dolly JSONL for 13,509 rows (864 per row) less about 77 of JSON keys
# and category = 787 characters of instruction, context and response, plus the course template's 200: 987, twice the
# shipped sample's 482. At about 4 characters per token (English prose, large vocabularies).
DOLLY_CHARS_PER_ROW = 987
CHARS_PER_TOKEN = 4.0


def matmul_weights(config) -> dict:
    """Return the weights a token multiplies in Gemma's decoder layers ("layers") and in its LM head ("head")."""
    h, heads, kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2  # q and o, k and v
    mlp = 3 * h * config.intermediate_size  # gate, up, down
    return {"layers": config.num_hidden_layers * (attention + mlp), "head": h * config.vocab_size}


def attention_flops(config, context: int) -> float:
    """Return the forward FLOPs per token of the attention scores and weighted sum over a causal block of `context`."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    # A token attends, on average, to (context + 1) / 2 positions of its causal block.
    return 4 * config.num_hidden_layers * config.num_attention_heads * head_dim * (context + 1) / 2


def flops_per_token(config, recompute: bool, context: int = 512, lora_r: int = 8) -> float:
    """Return training FLOPs per token of QLoRA with a frozen base, with or without recomputing the layers."""
    w = matmul_weights(config)
    lora = memory.lora_params(config, r=lora_r)
    attention = attention_flops(config, context)
    forward = 2 * (w["layers"] + w["head"]) + attention + 2 * lora
    backward = 2 * w["layers"] + 4 * w["head"] + 2 * attention + 4 * lora
    recomputed = 2 * w["layers"] + attention + 2 * lora if recompute else 0
    return forward + backward + recomputed


def dequant_bytes(config, recompute: bool, fp32_head: bool = True) -> float:
    """Return the bytes moved to dequantize the 4-bit weights (and cast the fp32 head) for one micro-batch."""
    passes = 3 if recompute else 2  # forward, backward, and the recomputed forward
    head = matmul_weights(config)["head"] * FP32_HEAD_BYTES_PER_STEP if fp32_head else 0
    return matmul_weights(config)["layers"] * NF4_BYTES_PER_PASS * passes + head


def dolly_blocks_assumed(block_tokens: int = 512, held_out: int = 200) -> int:
    """Return the packed blocks of one dolly-15k epoch under the ASSUMED characters per row (see the constants)."""
    tokens = (DOLLY_ROWS - held_out) * (DOLLY_CHARS_PER_ROW / CHARS_PER_TOKEN + 1)  # + <eos> after each text
    return math.ceil(tokens / block_tokens)


def overhead_per_micro_batch(preset: str) -> float:
    """Return the seconds per micro-batch of the preset's measured H200 run (0.0 when none was measured)."""
    for report in training.benchmark_reports():
        if "H200" not in str(report.get("gpu")):
            continue
        for row in report.get("presets", []):
            if row.get("preset") == preset and row.get("seconds_per_step"):
                return row["seconds_per_step"] / row["grad_accum"]
    return 0.0


def t4_hours(blocks: int, preset: str = "t4", config=None, gpus: int = 1, block_tokens: int = 512) -> dict:
    """Return the low and high hours of one epoch of `blocks` packed blocks on `gpus` T4s, with its assumptions."""
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be the number of packed blocks (a positive whole number), got {blocks!r}.")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be a whole number of T4s (1 or more), got {gpus!r}.")
    if preset not in training.PRESETS:
        raise ValueError(f"preset must be one of {sorted(training.PRESETS)}, got {preset!r}.")
    from helpers.loading import gemma_2b_config

    config = config or gemma_2b_config()
    settings = {**training.POST_SETTINGS, **training.PRESETS[preset]}
    recompute = bool(settings["activation_checkpointing"])
    micro_batch = settings["per_device_train_batch_size"]
    if gpus > 1:
        from helpers.train import per_device_settings

        micro_batch = per_device_settings(preset, gpus)["per_device_train_batch_size"]
    tokens = blocks * block_tokens
    flops = flops_per_token(config, recompute, context=block_tokens) * tokens
    micro_batches = math.ceil(blocks / micro_batch)
    traffic_seconds = micro_batches * dequant_bytes(config, recompute) / (T4_BANDWIDTH_GBS * 1e9)
    overhead_seconds = micro_batches * overhead_per_micro_batch(preset)
    # Each GPU does its share; the LoRA gradients they exchange per step (a few MB) are left out.
    low, high = (flops / (T4_FP16_TFLOPS * 1e12 * f) + traffic_seconds for f in reversed(FRACTIONS))
    hours = [low / gpus / 3600, (high + overhead_seconds) / gpus / 3600]
    return dict(
        label="ESTIMATE, not measured on a T4",
        low_hours=round(hours[0], 2),
        high_hours=round(hours[1], 2),
        tokens=tokens,
        flops=flops,
        assumptions=[
            (f"{blocks:,} blocks of {block_tokens} tokens, {'with' if recompute else 'without'} recomputation "
             f"(preset {preset!r}), micro-batch {micro_batch}, {gpus} T4(s) sharing the work evenly"),
            (f"{flops_per_token(config, recompute, block_tokens) / 1e9:.2f} GFLOPs per token (frozen base: "
             "forward + input-gradient backward, attention and the fused LM head included)"),
            (f"{FRACTIONS[0]:.0%} to {FRACTIONS[1]:.0%} of the T4's {T4_FP16_TFLOPS:.0f} TFLOPS fp16 peak "
             f"(a measured {T4_SUSTAINED_TFLOPS:.0f} TFLOPS on large matrix products, and half of it)"),
            (f"{dequant_bytes(config, recompute) / 1e9:.1f} GB of dequantization traffic per micro-batch at "
             f"{T4_BANDWIDTH_GBS:.0f} GB/s, not overlapped with the products"),
            (f"high end only: {overhead_per_micro_batch(preset):.3f} s per micro-batch of launch and host time "
             "(the whole H200 step time of this preset; 0 when unmeasured), none of it hidden"),
        ],
    )
