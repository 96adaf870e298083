"""Memory arithmetic for QLoRA: constants per parameter, model bytes from a config or a loaded model, LoRA, training."""

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

QUANT_TYPES = ("nf4", "fp4")
OPTIMIZER_BYTES = {"adamw32": 8, "adamw8": 2}
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


def _check_positive(name: str, value: int) -> None:
    """Raise unless `value` is a positive int."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def constant_bits_per_param(blocksize: int = 64, double_quant: bool = False, blocksize2: int = 256) -> float:
    """Bits per weight spent on quantization constants: 32/B in fp32, or 8/B + 32/(B*B2) with double quantization."""
    _check_positive("blocksize", blocksize)
    _check_positive("blocksize2", blocksize2)
    if not double_quant:
        return 32 / blocksize
    return 8 / blocksize + 32 / (blocksize * blocksize2)


def _meta_model(config, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """The causal LM that `config` describes, in `dtype` on the meta device: shapes and dtypes, no memory."""
    from transformers import AutoModelForCausalLM, PretrainedConfig

    if not isinstance(config, PretrainedConfig):
        raise TypeError(f"config must be a transformers config such as GemmaConfig(...), got {type(config).__name__}")
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def _quantized_linears(model: nn.Module) -> list[nn.Module]:
    """The layers transformers' bitsandbytes integration turns into Linear4bit (its skip rules: lm_head, tied)."""
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = HfQuantizer.get_modules_to_not_convert(model, None, model._keep_in_fp32_modules)
    return [
        module
        for name, module in model.named_modules()
        if (type(module) is nn.Linear or isinstance(module, Conv1D)) and should_convert_module(name, skip)
    ]


def _4bit_weight_bytes(n: int, blocksize: int, double_quant: bool) -> int:
    """Bytes bitsandbytes allocates for one 4-bit weight of n values: packed codes plus its quant_state tensors."""
    blocks = math.ceil(n / blocksize)
    packed, code = math.ceil(n / 2), 16 * 4
    if not double_quant:
        return packed + 4 * blocks + code
    # uint8 constants, an fp32 absmax per 256 of them, the fp32 offset and the 256-entry fp32 dynamic map
    return packed + blocks + 4 * math.ceil(blocks / 256) + 4 + 256 * 4 + code


def model_bytes(config, quant: str | None = None, double_quant: bool = False, blocksize: int = 64,
                dtype: torch.dtype = torch.bfloat16) -> int:
    """Bytes of the causal LM `config` describes, on the meta device: bf16, or nn.Linear layers in 4 bit with `quant`.

    quant=None: parameters in bf16, buffers in their own dtype (Gemma's rotary tables are fp32). quant="nf4"/"fp4":
    the layers transformers quantizes (every nn.Linear except lm_head and tied weights) take what
    bitsandbytes allocates: the packed 4-bit codes, and per layer its quant_state: fp32 absmax per block,
    or with double quantization uint8 absmax, fp32 absmax per 256 blocks, the fp32 offset and the 256-entry
    dynamic map; and the 16-entry fp32 NF4/FP4 table either way. A tied embedding counts once.
    This is exactly measured_bytes() of the model loaded on the CPU with BitsAndBytesConfig. For Gemma-2B
    the codes, offsets and buffers add 9,090 B to facts.md's NF4 number (2,163,504,002 B in all) and 138,618 B
    to its NF4+DQ number (2,071,220,090 B), and its buffers add 1,026 B in bf16 (5,012,345,858 B).
    `dtype` is what the parameters that stay unquantized are stored in: 16-bit by default; fp32 where the
    course loads under fp16 compute (helpers.loading.storage_dtype), which keeps Gemma's residual stream in fp32.
    """
    _check_quant(quant)
    _check_positive("blocksize", blocksize)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch dtype such as torch.bfloat16, got {dtype!r}")
    return _model_bytes(_meta_model(config, dtype), quant, double_quant, blocksize)


def _check_quant(quant: str | None) -> None:
    """Raise unless `quant` is None, "nf4" or "fp4"."""
    if quant not in (None, *QUANT_TYPES):
        raise ValueError(f"quant must be None (16-bit), 'nf4' or 'fp4', got {quant!r}")


def _model_bytes(model: nn.Module, quant: str | None, double_quant: bool, blocksize: int) -> int:
    """model_bytes of a model already built on the meta device."""
    quantized = set() if quant is None else {id(module.weight) for module in _quantized_linears(model)}
    total = 0
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if id(tensor) in quantized:
            total += _4bit_weight_bytes(tensor.numel(), blocksize, double_quant)
        else:
            total += tensor.numel() * tensor.element_size()
    return total


def measured_bytes(model: nn.Module) -> int:
    """Bytes a loaded model really holds: parameters, buffers and every 4-bit weight's quant_state tensors.

    The quant_state of a bitsandbytes Params4bit holds absmax, the 16-entry code table, and with double
    quantization the offset, state2.absmax and state2.code (the 256-entry dynamic map); all are counted,
    each storage once. model.get_memory_footprint() counts parameters and buffers only: it leaves the
    quant_state out and so reports the same number with and without double quantization.
    """
    tensors = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_meta:
            raise ValueError("model is on the meta device: load it for real, or use model_bytes(config) instead")
        tensors[tensor.data_ptr()] = tensor
        state = getattr(tensor, "quant_state", None)
        for part in (state, getattr(state, "state2", None)):
            for name in ("absmax", "code", "offset"):
                value = getattr(part, name, None)
                if isinstance(value, torch.Tensor):
                    tensors[value.data_ptr()] = value
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _lora_targets(model: nn.Module, target_modules: Sequence[str] | str) -> list[nn.Module]:
    """The linear layers LoRA wraps: names ending in one of `target_modules`, or "all-linear" (all but lm_head)."""
    if target_modules == "all-linear":
        output = model.get_output_embeddings()
        return [m for m in model.modules() if isinstance(m, nn.Linear) and m is not output]
    if isinstance(target_modules, str) or not all(isinstance(t, str) for t in target_modules):
        raise TypeError('target_modules must be module names such as ("q_proj", "v_proj"), or "all-linear"')
    linears = [(name.split(".")[-1], m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    found = [m for name, m in linears if name in target_modules]
    if not found:
        names = sorted({name for name, _ in linears})
        raise ValueError(f"no linear layer is named any of {tuple(target_modules)}; this model has {names}")
    return found


def lora_params(config, r: int = 8, target_modules: Sequence[str] | str = ATTENTION) -> int:
    """Trainable LoRA parameters: r * (in_features + out_features) for every targeted linear layer."""
    _check_positive("r", r)
    return _lora_params(_meta_model(config), r, target_modules)


def _lora_params(model: nn.Module, r: int, target_modules: Sequence[str] | str) -> int:
    """lora_params of a model already built on the meta device."""
    return sum(r * (m.in_features + m.out_features) for m in _lora_targets(model, target_modules))


def training_memory(
    config,
    quant: str | None = "nf4",
    double_quant: bool = True,
    r: int = 8,
    target_modules: Sequence[str] | str = ATTENTION,
    optimizer: str = "adamw32",
) -> dict[str, int]:
    """Bytes of a LoRA/QLoRA run by part: frozen "weights", fp32 "lora" adapters, "gradients", "optimizer" state.

    The adapters are float32 (peft upcasts them on a 16-bit or 4-bit base), so are their gradients.
    AdamW keeps two states per trainable parameter: 8 B in 32 bit ("adamw32", paged or not), 2 B with
    8-bit states ("adamw8", whose small block constants are left out). Activations, which depend on
    batch size, sequence length and gradient checkpointing, are not included.
    """
    if optimizer not in OPTIMIZER_BYTES:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZER_BYTES)}, got {optimizer!r}")
    _check_quant(quant)
    _check_positive("r", r)
    model = _meta_model(config)
    trainable = _lora_params(model, r, target_modules)
    return {
        "weights": _model_bytes(model, quant, double_quant, blocksize=64),
        "lora": 4 * trainable,
        "gradients": 4 * trainable,
        "optimizer": OPTIMIZER_BYTES[optimizer] * trainable,
    }


def saved_activation_bytes(model: nn.Module, input_ids: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one forward with labels (parameters excluded).

    Counts every tensor saved for backward once (views count as their base), so it sees what gradient
    checkpointing changes: without it each layer's intermediate results, with it only each layer's input.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype != torch.long or input_ids.dim() != 2:
        got = getattr(input_ids, "dtype", type(input_ids).__name__)
        raise TypeError(f"input_ids must be a 2-D torch.long tensor (batch, tokens), got {got}")
    params = {id(p) for p in model.parameters()}
    saved = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        root = tensor if tensor._base is None else tensor._base
        if id(root) not in params:
            saved[id(root)] = root  # holding it keeps its id from being reused
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=input_ids, labels=input_ids)
    return sum(t.numel() * t.element_size() for t in saved.values())


def activation_bytes(config, batch: int, seq_len: int, dtype: torch.dtype = torch.float16,
                     checkpointing: bool = False) -> int:
    """Estimated saved_activation_bytes of the causal LM `config` describes (frozen weights, input gradients on).

    Runs a 1-layer and a 2-layer copy on the meta device (no memory) to get the bytes one layer saves and
    the rest (embedding, final norm, logits and the loss, which upcasts the logits to fp32), then scales to
    all layers. With gradient checkpointing a layer keeps only its input, batch x seq_len x hidden values.
    Attention is counted as the eager implementation keeps it (the scores too); fused SDPA/flash kernels keep
    less. LoRA's own saved tensors (dropout copies of each adapted layer's input) are not included.
    """
    from transformers import AutoModelForCausalLM

    _check_positive("batch", batch)
    _check_positive("seq_len", seq_len)
    _meta_model(config, dtype)  # checks config
    totals = []
    for layers in (1, 2):
        # use_cache=True skips transformers' packed-sequence check, which reads values (.item()) meta tensors lack;
        # the cache itself saves nothing for backward.
        small = config.__class__(**{**config.to_dict(), "num_hidden_layers": layers, "use_cache": True})
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(small, dtype=dtype, attn_implementation="eager")
        model.train()
        model.requires_grad_(False)
        model.enable_input_require_grads()
        totals.append(saved_activation_bytes(model, torch.zeros(batch, seq_len, dtype=torch.long, device="meta")))
    per_layer, rest = totals[1] - totals[0], 2 * totals[0] - totals[1]
    if checkpointing:
        per_layer = batch * seq_len * config.hidden_size * torch.finfo(dtype).bits // 8
    return rest + config.num_hidden_layers * per_layer
