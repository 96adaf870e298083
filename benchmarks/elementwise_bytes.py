"""Count the bytes the elementwise kernels of one QLoRA training step move, per token and decoder layer, on the CPU.

helpers/estimate.py needs the memory traffic outside the matrix products: with the course's T4 loading (fp32
embedding and norms, so an fp32 residual stream, fp16 compute) every bitsandbytes layer casts its input to fp16 and
its output back to fp32, and Gemma's GeGLU runs in fp32 on 16,384-wide tensors. This script counts that traffic
instead of guessing it: a TorchDispatchMode adds up the bytes read and written by every aten operation of a forward
and backward of a Gemma-architecture model loaded the course's way (NF4 + double quantization, dtype=float32,
bnb_4bit_compute_dtype=float16, the post's LoRA on q, k, v, o), under fp16 autocast. Matrix products, attention
and bitsandbytes' own kernels are left out (estimate.py counts those); views move nothing. Two layers minus one
gives one layer, two sequence lengths give the part that grows with tokens, three (hidden, intermediate) pairs
give its coefficients. The model code is the same on a GPU; LoRA dropout is set to 0 here because the CPU runs
dropout as three kernels where CUDA fuses it into one (estimate.py adds CUDA's fused dropout by hand).
Usage: python benchmarks/elementwise_bytes.py      (about a minute on two cores)
"""
import collections
import tempfile

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, GemmaConfig, GemmaForCausalLM

MATMULS = {"mm", "addmm", "bmm", "baddbmm", "_scaled_dot_product_flash_attention_for_cpu",
           "_scaled_dot_product_flash_attention_for_cpu_backward"}
# Operations that allocate or re-view memory without moving data.
NO_TRAFFIC = {"view", "t", "transpose", "expand", "_unsafe_view", "slice", "select", "unsqueeze", "permute",
              "as_strided", "detach", "alias", "squeeze", "split", "split_with_sizes", "unbind", "lift_fresh",
              "_reshape_alias", "reshape", "empty", "empty_like", "new_empty", "new_empty_strided", "empty_strided"}


def _bytes(x) -> int:
    """Bytes of every tensor in x (a tensor or a nested list/tuple of them)."""
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, (list, tuple)):
        return sum(_bytes(y) for y in x)
    return 0


class ElementwiseBytes(TorchDispatchMode):
    """Add up the bytes read and written by every operation that is not a matrix product or a view."""

    def __init__(self):
        super().__init__()
        self.total = 0
        self.by_op = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        if func.namespace == "bitsandbytes" or name in MATMULS or name in NO_TRAFFIC:
            return out
        moved = _bytes(list(args)) + _bytes(list((kwargs or {}).values())) + _bytes(out)
        self.total += moved
        self.by_op[name] += moved
        return out


def step_bytes(layers: int, hidden: int, intermediate: int, tokens: int, recompute: bool) -> int:
    """Elementwise bytes of one forward + backward of a 2 x (tokens / 2) micro-batch."""
    config = GemmaConfig(vocab_size=512, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=1, head_dim=hidden // 8)
    torch.manual_seed(0)
    folder = tempfile.mkdtemp()
    GemmaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(
        folder, device_map="cpu", dtype=torch.float32,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float16))
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    if recompute:  # as training.POST_SETTINGS: non-reentrant activation checkpointing
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    ids = torch.randint(0, 512, (2, tokens // 2))
    counter = ElementwiseBytes()
    with counter, torch.autocast("cpu", dtype=torch.float16):
        model.base_model.model.model(input_ids=ids).last_hidden_state.float().sum().backward()
    return counter.total


def per_token_per_layer(recompute: bool) -> tuple[float, float]:
    """Return (a, b): the elementwise bytes per token and decoder layer are a x intermediate + b x hidden."""
    shapes = [(256, 1024), (256, 2048), (512, 2048)]
    slopes = []
    for hidden, intermediate in shapes:
        layer = [step_bytes(2, hidden, intermediate, t, recompute) - step_bytes(1, hidden, intermediate, t, recompute)
                 for t in (128, 256)]
        slopes.append((layer[1] - layer[0]) / 128)
    (a, b), *_ = np.linalg.lstsq(np.array([[i, h] for h, i in shapes], float), np.array(slopes), rcond=None)
    return float(a), float(b)


if __name__ == "__main__":
    for recompute in (False, True):
        a, b = per_token_per_layer(recompute)
        print(f"activation checkpointing {'on ' if recompute else 'off'}: {a:.1f} x intermediate + {b:.1f} x hidden "
              "bytes per token and decoder layer")
