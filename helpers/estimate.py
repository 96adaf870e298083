"""How long the QLoRA run takes on a T4: an estimate from FLOPs and the bytes every kernel moves, not a measurement.

The FLOPs, per token of training, for a model whose base is frozen (QLoRA), counting a multiply-add as 2 FLOPs:
- forward: 2 FLOPs per weight a token passes (every decoder layer's projections and the LM head), plus the
  attention scores and their weighted sum (2 x 2 x heads x head_dim per attended position), plus LoRA's 2 per weight;
- backward: only the gradient with respect to the layer *inputs* (2 per frozen weight, the same as the forward) and
  twice the attention's forward; the frozen weights get no weight gradient, so the familiar 6N of full training
  is 4N here. LoRA's own weights need both (4 per weight);
- trl 1.16's fused LM head never keeps the 256,000-word logits: its backward recomputes them (2 more per head weight);
- activation checkpointing recomputes every decoder layer's forward once more in the backward: recompute_share()
  of all the work (26 % for Gemma-2B: a third of the layers' work, less because the head is not recomputed).
The bytes, per micro-batch, all of them moved through the T4's memory on one CUDA stream (so they add up with the
products, nothing overlaps):
- dequantization: bitsandbytes 0.50.2 dequantizes every 4-bit weight before each product of a 1,024-token
  micro-batch (`backends/cuda/ops.py`: past 512 rows the fused kernel is not used), to fp16 in the forward and
  its recomputation, but to the quant state's dtype in the backward (`autograd/_functions.py`, MatMul4Bit.backward:
  `F.dequantize_4bit(B, ctx.state).to(grad_output.dtype)`), and the quant state keeps the dtype the model was
  loaded in: fp32 on a T4 (loading.storage_dtype);
- the elementwise kernels: with an fp32 residual stream every 4-bit layer casts its input to fp16 and its output
  back to fp32 (bitsandbytes `nn/modules.py`, Linear4bit.forward), and the 16,384-wide GeGLU runs in fp32. Counted,
  not guessed, by benchmarks/elementwise_bytes.py;
- the fp32 tied LM head, cast to fp16 by trl's fused head.
The host: trl calls `.item()` three times per micro-batch (SFTTrainer.compute_loss) and bitsandbytes calls
`torch.cuda.synchronize()` after every parameter's update (Optimizer8bit.step -> sync_gpu): each stops the GPU
until Python launches the next kernel.
NOT anchored on a published T4 training measurement (none is available to the course with a source it can cite):
the low end is every kernel at the T4's best measured rate with the host hidden; the high end half the product
rate, three quarters of the bandwidth and the whole measured H200 time per micro-batch on top; h200_scaled_hours()
is the measured H200 run slowed down by the T4's smaller peak, an outer bound.
"""

import math

from helpers import memory, training
from helpers.language import pick

T4_FP16_TFLOPS = 65.0  # NVIDIA T4 datasheet: peak fp16 with tensor cores
# A forum user's cuBLAS fp16 4096^3 loop (NVIDIA's reply explains the 70 W power cap that lowers the clock): a
# synthetic product, not a training run, so only the ceiling of what a T4's products can reach (docs/facts.md).
T4_SUSTAINED_TFLOPS = 24.0
T4_BANDWIDTH_GBS = 320.0  # NVIDIA T4 datasheet: GDDR6 memory bandwidth, GB = 1e9 bytes
H200_FP16_TFLOPS = 989.0  # NVIDIA H200 datasheet: dense fp16 tensor-core peak (1,979 with sparsity)
H200_BANDWIDTH_GBS = 4800.0  # NVIDIA H200 datasheet: HBM3e bandwidth
# Products: the low end at the measured large-product rate, the high end at half of it (ASSUMED: a step's products
# are smaller, 1,024 x 2,048). Bandwidth: the low end at the datasheet's, the high end at three quarters (ASSUMED).
PRODUCT_TFLOPS = (T4_SUSTAINED_TFLOPS, T4_SUSTAINED_TFLOPS / 2)
BANDWIDTH_SHARE = (1.0, 0.75)
# Bytes per 4-bit weight and dequantization. Forward (and its recomputation): read 0.5 (NF4), write 2 (fp16), the
# product reads 2. Backward: read 0.5, write 4 (the fp32 quant state's dtype), .to(fp16) reads 4 and writes 2, the
# product reads 2. Double quantization adds, per block of 64, the uint8 constant read (1), dequantized to fp32 (4)
# and the offset added (read 4, write 4).
FORWARD_BYTES_PER_WEIGHT = 0.5 + 2 + 2
BACKWARD_BYTES_PER_WEIGHT = 0.5 + 4 + 4 + 2 + 2
ABSMAX_BYTES_PER_WEIGHT = (1 + 4 + 4 + 4) / 64
# The tied LM head stays fp32 under fp16 compute (loading.storage_dtype); trl's fused head casts it to fp16 in the
# forward and again in the backward (read 4 + write 2, twice) and reads the fp16 copy three times (2 each).
FP32_HEAD_BYTES_PER_STEP = 2 * (4 + 2) + 3 * 2
# Elementwise bytes per token and decoder layer = a x intermediate_size + b x hidden_size, counted by
# benchmarks/elementwise_bytes.py (torch 2.13, transformers 5.24, peft 0.21, bitsandbytes 0.50.2; Gemma's
# proportions: 8 heads of hidden/8, one key/value head), without and with activation checkpointing (non-reentrant:
# torch recomputes only what the backward saved, so the GeGLU's product and cast are not recomputed).
ELEMENTWISE_COUNTED = {False: (92.0, 694.1), True: (112.1, 932.6)}
# ... plus LoRA's dropout (0.1), counted there as 0 because the CPU runs it as three kernels: CUDA's one fused kernel
# reads the input and writes the output and a 1-byte mask, on q, k, v's fp32 input (9 B) and o's fp16 input (5 B):
# 32 B per hidden unit forward, 32 backward, 32 more when recomputed.
DROPOUT_BYTES = {False: 64.0, True: 96.0}
# Host synchronizations: trl's .item() per micro-batch (entropy, token accuracy, token count); one
# torch.cuda.synchronize() per trainable parameter and one more per optimizer step (bitsandbytes, paged optimizer).
ITEM_SYNCS_PER_MICRO_BATCH = 3
# ASSUMED: what one synchronization leaves the GPU idle (the launch of the next kernel from Python), low end only.
SYNC_SECONDS = 50e-6
DOLLY_ROWS = 15_011
# ASSUMED, until notebook 05's pre-flight counts the real blocks on a GPU: the characters of one dolly-15k training
# text, template included. 11,666,769 bytes of dolly JSONL for 13,509 rows (864 per row) less about 77 of JSON keys
# and category = 787 characters of instruction, context and response, plus the course template's 200: 987, twice the
# shipped sample's 482. At about 4 characters per token (English prose, large vocabularies).
DOLLY_CHARS_PER_ROW = 987
CHARS_PER_TOKEN = 4.0
LABEL = "ESTIMATE, not measured on a T4"


def _whole(name: str, value, least: int = 1) -> int:
    """Return value if it is a whole number >= least, else raise a ValueError that names the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a whole number of at least {least}, got {value!r}.")
    return value


def _head_dim(config) -> int:
    """Return the config's head_dim (Gemma's is 256, not hidden / heads), or hidden / heads when it has none."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def matmul_weights(config) -> dict:
    """Return the weights a token multiplies in Gemma's decoder layers ("layers") and in its LM head ("head")."""
    h, heads, kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    head_dim = _head_dim(config)
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2  # q and o, k and v
    mlp = 3 * h * config.intermediate_size  # gate, up, down
    return {"layers": config.num_hidden_layers * (attention + mlp), "head": h * config.vocab_size}


def attention_flops(config, context: int) -> float:
    """Return the forward FLOPs per token of the attention scores and weighted sum over a causal block of `context`."""
    # A token attends, on average, to (context + 1) / 2 positions of its causal block.
    return 4 * config.num_hidden_layers * config.num_attention_heads * _head_dim(config) * (context + 1) / 2


def flops_per_token(config, recompute: bool, context: int = 512, lora_r: int = 8) -> float:
    """Return training FLOPs per token of QLoRA with a frozen base, with or without recomputing the layers."""
    w = matmul_weights(config)
    lora = memory.lora_params(config, r=lora_r)
    attention = attention_flops(config, context)
    forward = 2 * (w["layers"] + w["head"]) + attention + 2 * lora
    backward = 2 * w["layers"] + 4 * w["head"] + 2 * attention + 4 * lora
    recomputed = 2 * w["layers"] + attention + 2 * lora if recompute else 0
    return forward + backward + recomputed


def recompute_share(config, context: int = 512) -> float:
    """Return the share of all training FLOPs that activation checkpointing's recomputation adds (0.26 for Gemma-2B)."""
    with_, without = (flops_per_token(config, r, context) for r in (True, False))
    return (with_ - without) / with_


def dequant_bytes(config, recompute: bool, fp32_head: bool = True) -> float:
    """Return the bytes moved to dequantize the 4-bit weights (and cast the fp32 head) for one micro-batch."""
    forwards = 2 if recompute else 1  # the forward, and its recomputation in the backward
    per_weight = (forwards * FORWARD_BYTES_PER_WEIGHT + BACKWARD_BYTES_PER_WEIGHT
                  + (forwards + 1) * ABSMAX_BYTES_PER_WEIGHT)
    head = matmul_weights(config)["head"] * FP32_HEAD_BYTES_PER_STEP if fp32_head else 0
    return matmul_weights(config)["layers"] * per_weight + head


def elementwise_bytes(config, recompute: bool, tokens: int) -> float:
    """Return the bytes the decoder layers' elementwise kernels move for `tokens` tokens (fp32 residual stream)."""
    a, b = ELEMENTWISE_COUNTED[bool(recompute)]
    per_token = a * config.intermediate_size + (b + DROPOUT_BYTES[bool(recompute)]) * config.hidden_size
    return config.num_hidden_layers * per_token * tokens


def dolly_blocks_assumed(block_tokens: int = 512, held_out: int = 200) -> int:
    """Return the packed blocks of one dolly-15k epoch under the ASSUMED characters per row (see the constants)."""
    tokens = (DOLLY_ROWS - held_out) * (DOLLY_CHARS_PER_ROW / CHARS_PER_TOKEN + 1)  # + <eos> after each text
    return math.ceil(tokens / block_tokens)


def _h200_row(preset: str) -> dict | None:
    """Return the preset's row of the measured H200 run, or None."""
    for report in training.benchmark_reports():
        if "H200" not in str(report.get("gpu")):
            continue
        for row in report.get("presets", []):
            if row.get("preset") == preset and row.get("seconds_per_step"):
                return row
    return None


def overhead_per_micro_batch(preset: str) -> float:
    """Return the seconds per micro-batch of the preset's measured H200 run (0.0 when none was measured)."""
    row = _h200_row(preset)
    return row["seconds_per_step"] / row["grad_accum"] if row else 0.0


def _settings(preset: str, gpus: int) -> dict:
    """Return the preset's settings with the batch and accumulation each of `gpus` processes runs."""
    if not isinstance(preset, str) or preset not in training.PRESETS:
        raise ValueError(f"preset must be one of {sorted(training.PRESETS)}, got {preset!r}.")
    settings = {**training.POST_SETTINGS, **training.PRESETS[preset]}
    if gpus > 1:
        from helpers.train import per_device_settings

        settings.update(per_device_settings(preset, gpus))
    return settings


def t4_hours(blocks: int, preset: str = "t4", config=None, gpus: int = 1, block_tokens: int = 512,
             max_steps: int | None = None) -> dict:
    """Return the low and high hours of `blocks` blocks (or `max_steps` steps) on `gpus` T4s, with its assumptions."""
    _whole("blocks", blocks)
    _whole("gpus", gpus)
    _whole("block_tokens", block_tokens)
    if max_steps is not None and max_steps != -1:  # -1 is transformers' "no limit", like None
        _whole("max_steps", max_steps)
    from helpers.loading import gemma_2b_config

    config = config or gemma_2b_config()
    settings = _settings(preset, gpus)
    recompute = bool(settings["activation_checkpointing"])
    micro_batch, accumulation = settings["per_device_train_batch_size"], settings["gradient_accumulation_steps"]
    # Every GPU takes its share of the blocks (DistributedSampler: the larger share decides the time); a run with
    # max_steps stops after that many optimizer steps of micro_batch x accumulation blocks per GPU.
    per_gpu = math.ceil(blocks / gpus)
    if max_steps not in (None, -1):
        per_gpu = min(per_gpu, max_steps * micro_batch * accumulation)
    full, last = divmod(per_gpu, micro_batch)
    micro_batches = full + (1 if last else 0)
    steps = math.ceil(micro_batches / accumulation)
    tokens = per_gpu * block_tokens
    flops = flops_per_token(config, recompute, context=block_tokens) * tokens
    # A partial last micro-batch costs its tokens' FLOPs and elementwise bytes, but a whole dequantization.
    traffic = micro_batches * dequant_bytes(config, recompute) + elementwise_bytes(config, recompute, tokens)
    trainable = 2 * 4 * config.num_hidden_layers  # LoRA's A and B on q, k, v, o in every layer
    syncs = micro_batches * ITEM_SYNCS_PER_MICRO_BATCH + steps * (trainable + 1)
    low = flops / (PRODUCT_TFLOPS[0] * 1e12) + traffic / (T4_BANDWIDTH_GBS * 1e9 * BANDWIDTH_SHARE[0])
    low += syncs * SYNC_SECONDS
    high = flops / (PRODUCT_TFLOPS[1] * 1e12) + traffic / (T4_BANDWIDTH_GBS * 1e9 * BANDWIDTH_SHARE[1])
    high += micro_batches * overhead_per_micro_batch(preset)
    label = LABEL if gpus == 1 else f"{LABEL}; {gpus} T4s never run together"
    return dict(
        label=label,
        low_hours=round(low / 3600, 2),
        high_hours=round(high / 3600, 2),
        blocks=per_gpu * gpus,
        tokens=tokens * gpus,
        flops=flops * gpus,
        micro_batches=micro_batches,
        optimizer_steps=steps,
        traffic_bytes=traffic,
        assumptions=_assumptions(config, preset, recompute, per_gpu, block_tokens, micro_batch, accumulation, gpus,
                                 micro_batches, steps, traffic, syncs),
    )


def _assumptions(config, preset, recompute, per_gpu, block_tokens, micro_batch, accumulation, gpus, micro_batches,
                 steps, traffic, syncs) -> list[str]:
    """Return the estimate's assumptions as printed lines, in the session's language."""
    gflops = flops_per_token(config, recompute, block_tokens) / 1e9
    per_micro = traffic / micro_batches / 1e9
    overhead = overhead_per_micro_batch(preset)
    lines = [
        pick(f"{per_gpu:,} blocks of {block_tokens} tokens per T4 ({gpus} T4(s)), {micro_batches:,} micro-batches of "
             f"{micro_batch}, {steps:,} optimizer steps of {micro_batch} x {accumulation}, preset {preset!r}, "
             f"{'with' if recompute else 'without'} activation checkpointing",
             f"T4 한 대에 {block_tokens}토큰 블록 {per_gpu:,}개(T4 {gpus}대), 마이크로배치 {micro_batch}개씩 "
             f"{micro_batches:,}번, 옵티마이저 스텝 {steps:,}번({micro_batch} x {accumulation}), 프리셋 {preset!r}, "
             f"활성화 체크포인팅 {'켬' if recompute else '끔'}"),
        pick(f"{gflops:.2f} GFLOPs per token (frozen base: forward + input-gradient backward, attention and the fused "
             "LM head included)",
             f"토큰당 {gflops:.2f} GFLOPs(베이스 모델은 고정: 순전파 + 입력 그레이디언트 역전파, "
             "어텐션과 fused LM 헤드 포함)"),
        pick(f"products at {PRODUCT_TFLOPS[0]:.0f} TFLOPS (low; a synthetic large-product measurement, "
             f"{PRODUCT_TFLOPS[0] / T4_FP16_TFLOPS:.0%} of the {T4_FP16_TFLOPS:.0f} TFLOPS peak) to "
             f"{PRODUCT_TFLOPS[1]:.0f} TFLOPS (high; assumed)",
             f"행렬곱은 {PRODUCT_TFLOPS[0]:.0f} TFLOPS(낮은 쪽: 큰 행렬곱만 돌린 측정값, 최대 성능 "
             f"{T4_FP16_TFLOPS:.0f} TFLOPS의 {PRODUCT_TFLOPS[0] / T4_FP16_TFLOPS:.0%})에서 "
             f"{PRODUCT_TFLOPS[1]:.0f} TFLOPS(높은 쪽: 가정)"),
        pick(f"{per_micro:.1f} GB (1 GB = 1e9 bytes) moved per micro-batch outside the products (dequantization, fp16 "
             f"in the forward and fp32 in the backward; fp32 elementwise kernels; the fp32 head), at "
             f"{T4_BANDWIDTH_GBS:.0f} GB/s (low) to {BANDWIDTH_SHARE[1]:.0%} of it (high; assumed), "
             "never overlapped with the products",
             f"마이크로배치마다 행렬곱 밖에서 {per_micro:.1f} GB(1 GB = 10^9바이트)를 읽고 씁니다(순전파는 fp16, "
             f"역전파는 fp32로 하는 역양자화, fp32 원소별 연산, fp32 헤드). 속도는 {T4_BANDWIDTH_GBS:.0f} GB/s(낮은 쪽)"
             f"에서 그 {BANDWIDTH_SHARE[1]:.0%}(높은 쪽: 가정)이고, 행렬곱과 겹치지 않는다고 봅니다"),
        pick(f"low end: {syncs:,} host synchronizations (trl's .item(), bitsandbytes' synchronize per parameter) at "
             f"{SYNC_SECONDS * 1e6:.0f} µs each (assumed), the rest of the host work hidden behind the GPU; "
             f"high end: {overhead:.3f} s per micro-batch, the whole measured H200 time (0 when unmeasured), "
             "none hidden",
             f"낮은 쪽: 호스트 동기화 {syncs:,}번(trl의 .item(), bitsandbytes가 파라미터마다 하는 synchronize)에 "
             f"한 번에 {SYNC_SECONDS * 1e6:.0f} µs(가정), 나머지 호스트 작업은 GPU 뒤에 가려진다고 봅니다. "
             f"높은 쪽: 마이크로배치마다 H200에서 잰 시간 전체 {overhead:.3f}초(측정이 없으면 0)를 그대로 더합니다"),
        pick("not anchored on a published T4 training measurement: none with a source the course can cite",
             "출처를 밝힐 수 있는 T4 학습 측정값이 없어, 발표된 T4 학습 측정에 맞춰 본 값이 아닙니다"),
    ]
    if gpus > 1:
        lines.append(pick(
            f"{gpus} T4s: each trains its share with its own copy of the model (the LoRA gradients they exchange, a "
            "few MB a step, are left out). The two-GPU path has run only as CPU processes. From notebook 05 with "
            "GPUS = 2, the notebook's own 4-bit model (about 3 GB) stays on GPU 0 beside the first process's",
            f"T4 {gpus}대: 각자 모델 사본으로 자기 몫을 학습합니다(스텝마다 주고받는 몇 MB의 LoRA 그레이디언트는 "
            "뺐습니다). 두 GPU 경로는 CPU 프로세스로만 돌려 봤습니다. 노트북 05에서 GPUS = 2로 돌리면 노트북이 "
            "불러 둔 4비트 모델(약 3 GB)이 첫 프로세스의 모델과 함께 GPU 0에 남습니다"))
    return lines


def h200_scaled_hours(blocks: int, preset: str = "t4", gpus: int = 1) -> float | None:
    """Return the measured H200 time of `blocks` blocks slowed by the T4's smaller peak (an outer bound), or None."""
    _whole("blocks", blocks)
    _whole("gpus", gpus)
    row = _h200_row(preset)
    if row is None:
        return None
    # The H200 has 15.2 times the T4's fp16 peak and 15 times its bandwidth: every part of its step slowed by 15.2.
    slower = H200_FP16_TFLOPS / T4_FP16_TFLOPS
    return math.ceil(blocks / gpus) * 512 / row["tokens_per_second"] * slower / 3600


def course_times(blocks: int | None = None) -> dict:
    """Return the course's T4 times, {preset: {gpus: (low_hours, high_hours)}}, for one dolly-15k epoch."""
    blocks = dolly_blocks_assumed() if blocks is None else blocks
    times = {}
    for preset in ("t4", "t4_fast"):
        for gpus in (1, 2):
            e = t4_hours(blocks, preset, gpus=gpus)
            times.setdefault(preset, {})[gpus] = (e["low_hours"], e["high_hours"])
    return times


def readme_time() -> str:
    """Return the README's T4 time for notebook 05, from course_times()."""
    t = course_times()
    one = ", ".join(f"{t[p][1][0]:.1f}–{t[p][1][1]:.1f} h (`{p}`)" for p in ("t4", "t4_fast"))
    two = " and ".join(f"{t[p][2][0]:.1f}–{t[p][2][1]:.1f} h" for p in ("t4", "t4_fast"))
    return f"{one}; on Kaggle's two T4s {two} (never tried): estimated (`helpers/estimate.py`), not measured on a T4"
