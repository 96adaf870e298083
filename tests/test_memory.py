"""helpers.memory: predicted bytes against real 4-bit models built locally, and the Gemma-2B numbers of facts.md."""

import bitsandbytes as bnb
import peft
import pytest
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, GemmaConfig, LlamaConfig

from helpers import loading, memory

GEMMA_2B = loading.gemma_2b_config()
LLAMA_7B = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       vocab_size=32000)
LLAMA_65B = LlamaConfig(hidden_size=8192, intermediate_size=22016, num_hidden_layers=80, num_attention_heads=64,
                        vocab_size=32000)
# Small models with the quirks that matter: tied embedding (Gemma), biases, untied lm_head (Llama),
# and layers whose size is not a multiple of 64 * 256 (so the last second-level block is partial).
TINY = {
    "gemma": GemmaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=32),
    "gemma-bias": GemmaConfig(vocab_size=300, hidden_size=96, intermediate_size=200, num_hidden_layers=1,
                              num_attention_heads=3, num_key_value_heads=1, head_dim=32, attention_bias=True),
    "llama-untied": LlamaConfig(vocab_size=400, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2),
}


# Tiny tensors: with two threads every op waits for the second core, which other jobs keep busy.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each tiny config saved with random bf16 weights, as a folder from_pretrained can load."""
    folders = {}
    for name, config in TINY.items():
        torch.manual_seed(0)
        folders[name] = tmp_path_factory.mktemp(name)
        AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folders[name])
    return folders


def _load_4bit(folder, quant_type: str, double_quant: bool):
    """Load a saved model quantized by bitsandbytes on the CPU, the rest in bf16."""
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=torch.bfloat16)
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, dtype=torch.bfloat16,
                                                device_map="cpu")


def test_constant_bits_per_param():
    assert memory.constant_bits_per_param() == 0.5
    with_dq = memory.constant_bits_per_param(double_quant=True)
    assert with_dq == 8 / 64 + 32 / (64 * 256) and round(with_dq, 3) == 0.127
    saved_bytes = (0.5 - with_dq) * 65e9 / 8
    assert round(0.5 - with_dq, 3) == 0.373 and 2.9e9 < saved_bytes < 3.1e9  # the paper's "about 3 GB" for 65B
    assert memory.constant_bits_per_param(blocksize=256) == 0.125


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_model_bytes_is_what_a_4bit_model_holds(saved, name, quant_type):
    models = {double_quant: _load_4bit(saved[name], quant_type, double_quant) for double_quant in (False, True)}
    for double_quant, model in models.items():
        assert memory.model_bytes(TINY[name], quant_type, double_quant) == memory.measured_bytes(model)
    # get_memory_footprint() misses the quant_state, so it cannot see double quantization
    assert models[False].get_memory_footprint() == models[True].get_memory_footprint()
    assert memory.measured_bytes(models[False]) != memory.measured_bytes(models[True])


@pytest.mark.parametrize("name", TINY)
def test_model_bytes_in_bf16_is_what_the_model_holds(name):
    model = AutoModelForCausalLM.from_config(TINY[name], dtype=torch.bfloat16)
    assert memory.model_bytes(TINY[name]) == memory.measured_bytes(model) == model.get_memory_footprint()


def test_measured_bytes_counts_the_whole_quant_state(saved):
    model = _load_4bit(saved["gemma"], "nf4", True)
    states = [m.weight.quant_state for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(states) == 14  # 2 layers x 7 linear layers
    parts = [t for s in states for t in (s.absmax, s.code, s.offset, s.state2.absmax, s.state2.code)]
    assert memory.measured_bytes(model) == model.get_memory_footprint() + sum(t.nbytes for t in parts)


def test_gemma_2b_numbers_of_facts_md():
    buffers = 2 + 2 * 128 * 4  # embed_scale (bf16) and the two rotary inv_freq tables (fp32)
    linears = 18 * 7
    assert memory.model_bytes(GEMMA_2B) == 5_012_344_832 + buffers
    # facts.md counts packed weights, constants and the bf16 rest; bitsandbytes also keeps each layer's
    # 16-entry code table, and with double quantization the offset and the 256-entry dynamic map
    assert memory.model_bytes(GEMMA_2B, "nf4") == 2_163_494_912 + linears * 64 + buffers == 2_163_504_002
    nf4_dq = memory.model_bytes(GEMMA_2B, "nf4", double_quant=True)
    assert nf4_dq == 2_071_081_472 + linears * (64 + 4 + 1024) + buffers == 2_071_220_090
    assert memory.lora_params(GEMMA_2B) == 18 * 8 * ((2048 + 2048) + (2048 + 256) + (2048 + 256) + (2048 + 2048))


def test_lm_head_and_embedding_stay_16_bit(saved):
    untied = _load_4bit(saved["llama-untied"], "nf4", False)
    assert type(untied.lm_head) is torch.nn.Linear and untied.lm_head.weight.dtype == torch.bfloat16
    tied = _load_4bit(saved["gemma"], "nf4", False)
    assert tied.lm_head.weight is tied.model.embed_tokens.weight


def test_lora_params_equal_peft(saved):
    for name, config in TINY.items():
        for r, targets in ((8, memory.ATTENTION), (4, ("q_proj", "v_proj")), (16, "all-linear")):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
            peft_targets = targets if targets == "all-linear" else list(targets)
            lora = peft.get_peft_model(model, peft.LoraConfig(r=r, target_modules=peft_targets))
            trainable, _ = lora.get_nb_trainable_parameters()
            assert memory.lora_params(config, r=r, target_modules=targets) == trainable, (name, r, targets)


def test_training_memory_parts():
    parts = memory.training_memory(GEMMA_2B)
    trainable = memory.lora_params(GEMMA_2B)
    assert parts == {"weights": 2_071_220_090, "lora": 4 * trainable, "gradients": 4 * trainable,
                     "optimizer": 8 * trainable}
    assert memory.training_memory(GEMMA_2B, optimizer="adamw8")["optimizer"] == 2 * trainable
    assert memory.training_memory(GEMMA_2B, quant=None)["weights"] == memory.model_bytes(GEMMA_2B)


def test_training_memory_of_llama_65b_fits_one_48gb_gpu_only_in_4bit():
    four_bit = memory.training_memory(LLAMA_65B, r=64, target_modules="all-linear")
    sixteen_bit = memory.training_memory(LLAMA_65B, quant=None, r=64, target_modules="all-linear")
    assert sum(four_bit.values()) < 48e9
    assert sum(sixteen_bit.values()) > 130e9
    seven_b = memory.training_memory(LLAMA_7B)
    assert 3.5e9 < seven_b["weights"] < 4e9


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: memory.model_bytes(GEMMA_2B, quant="int8"), ValueError, "quant must be None"),
        (lambda: memory.model_bytes({"hidden_size": 8}), TypeError, "config must be a transformers config"),
        (lambda: memory.model_bytes(GEMMA_2B, "nf4", blocksize=0), ValueError, "blocksize must be a positive int"),
        (lambda: memory.constant_bits_per_param(blocksize2=-1), ValueError, "blocksize2 must be a positive int"),
        (lambda: memory.lora_params(GEMMA_2B, r=0), ValueError, "r must be a positive int"),
        (lambda: memory.lora_params(GEMMA_2B, target_modules=("query",)), ValueError, "no linear layer is named"),
        (lambda: memory.lora_params(GEMMA_2B, target_modules="q_proj"), TypeError, "target_modules must be"),
        (lambda: memory.training_memory(GEMMA_2B, optimizer="sgd"), ValueError, "optimizer must be one of"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_measured_bytes_refuses_a_meta_model():
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(TINY["gemma"])
    with pytest.raises(ValueError, match="meta device"):
        memory.measured_bytes(model)


def test_model_bytes_follows_the_storage_dtype_of_the_unquantized_weights(tmp_path):
    import dataclasses

    from helpers import loading, runtime

    rt = dataclasses.replace(runtime.detect(), mode="smoke", dtype=torch.float32, device_map={"": "cpu"})
    folder = loading.tiny_gemma(cache_dir=tmp_path)
    model = loading.load_model(folder, rt)
    assert loading.storage_dtype(rt) == torch.float32
    predicted = memory.model_bytes(model.config, quant="nf4", double_quant=True, dtype=torch.float32)
    assert predicted == memory.measured_bytes(model)
    assert predicted > memory.model_bytes(model.config, quant="nf4", double_quant=True)
    with pytest.raises(TypeError, match="dtype"):
        memory.model_bytes(model.config, dtype=torch.int8)


def _frozen_tiny(attn: str = "eager"):
    """The tiny Gemma shape in fp32 with frozen weights and input gradients on, as LoRA training runs it."""
    config = GemmaConfig(vocab_size=1024, **loading.TINY_SHAPE)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    model.train()
    model.requires_grad_(False)
    model.enable_input_require_grads()
    return model


def test_activation_estimate_equals_what_autograd_saves_on_the_tiny_model():
    torch.manual_seed(0)
    model = _frozen_tiny()
    ids = torch.randint(0, 1024, (2, 96))
    config = model.config
    assert memory.saved_activation_bytes(model, ids) == memory.activation_bytes(config, 2, 96, torch.float32)
    model.config.use_cache = False
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    measured = memory.saved_activation_bytes(model, ids)
    estimated = memory.activation_bytes(config, 2, 96, torch.float32, checkpointing=True)
    assert abs(estimated - measured) <= 0.02 * measured
    assert measured < memory.activation_bytes(config, 2, 96, torch.float32) / 3


def test_activation_bytes_of_gemma_2b_at_the_posts_two_by_512_tokens():
    fp32_logits = 2 * 512 * 256_000 * 4
    plain = memory.activation_bytes(GEMMA_2B, 2, 512)
    checkpointed = memory.activation_bytes(GEMMA_2B, 2, 512, checkpointing=True)
    assert fp32_logits == 1_048_576_000
    assert 3.5e9 < plain < 4.5e9
    # checkpointing keeps 18 layer inputs of 2 x 512 x 2048 fp16 values; the logits stay
    assert fp32_logits < checkpointed < fp32_logits + 18 * 2 * 512 * 2048 * 2 + 0.1e9


def test_saved_activation_bytes_refuses_token_lists():
    with pytest.raises(TypeError, match="input_ids must be a 2-D torch.long tensor"):
        memory.saved_activation_bytes(_frozen_tiny(), [[1, 2, 3]])
