"""The CPU path does not depend on the SIMD extensions: bitsandbytes' AVX512-BF16 repack, forced on, changes nothing.

bitsandbytes 0.50 decides per layer, when the layer is built, whether to repack its 4-bit weight for AVX512-BF16
at the first eval-mode forward (`Linear4bit.support_avx512bf16_for_cpu`, from `has_avx512bf16()`). Forcing that
test on makes every x86 CPU take the path that AMD Zen 4/5 and Intel Sapphire Rapids take by themselves.
"""
import contextlib
import subprocess
import sys

import bitsandbytes as bnb
import pytest
import torch
from peft import PeftModel
from run_course import ROOT, execute

from helpers import data, loading, prompting, training
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
# Run before a notebook's first cell: every Linear4bit built afterwards believes the CPU has AVX512-BF16.
FORCE_REPACK = "--IPKernelApp.exec_lines=import bitsandbytes.nn.modules as m; m.has_avx512bf16 = lambda: True"


@pytest.fixture
def forced(monkeypatch):
    """Make every Linear4bit built from now on take bitsandbytes' AVX512-BF16 path, on any CPU."""
    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return loading.tiny_gemma(cache_dir=tmp_path_factory.mktemp("tiny-cache"))


@pytest.fixture
def batch(tiny_dir):
    tokenizer = loading.load_tokenizer(tiny_dir)
    return tokenizer(["### Instruction\nName a colour.", "Hi"], return_tensors="pt", padding=True)


def _layers(model) -> list:
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def _logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def test_forcing_reaches_the_layers(forced):
    assert bnb.nn.Linear4bit(64, 32).support_avx512bf16_for_cpu


def test_without_keep_nf4_layout_the_forced_repack_breaks_the_tiny_gemma(forced, monkeypatch, tiny_dir, batch):
    monkeypatch.setattr(loading, "keep_nf4_layout", lambda model: model)
    model = loading.load_model(tiny_dir, SMOKE, for_training=False)
    assert all(layer.support_avx512bf16_for_cpu for layer in _layers(model))
    # The tiny Gemma's key/value projections are 16 wide; the repacked layout needs multiples of 32.
    with pytest.raises(AssertionError, match="divisible by block_n"):
        _logits(model, batch)


def test_without_keep_nf4_layout_the_repack_drops_double_quantization(forced):
    torch.manual_seed(0)
    layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float32, compress_statistics=True, quant_type="nf4").to("cpu")
    assert layer.weight.quant_state.nested and layer.support_avx512bf16_for_cpu
    # The repack happens before the matmul; without AVX512-BF16 the repacked layer may then fail to run at all.
    with torch.no_grad(), contextlib.suppress(Exception):
        layer.eval()(torch.randn(2, 64))
    state = layer.weight.quant_state
    assert state.packing_format_for_cpu and not state.nested and getattr(state, "state2", None) is None


def test_load_model_keeps_the_stored_nf4_state_through_eval_forward(forced, tiny_dir, batch):
    model = loading.load_model(tiny_dir, SMOKE, for_training=False)
    layers = _layers(model)
    assert layers and not any(layer.support_avx512bf16_for_cpu for layer in layers)
    logits = _logits(model, batch)
    # what notebook 03 teaches is what ran: uint8 absmax, double-quantized with its own state2
    for layer in layers:
        state = layer.weight.quant_state
        assert state.nested and state.state2 is not None and state.absmax.dtype == torch.uint8
        assert not getattr(state, "packing_format_for_cpu", False)
    assert torch.isfinite(logits).all()


def test_the_same_logits_with_and_without_forcing(tiny_dir, batch, monkeypatch):
    plain = _logits(loading.load_model(tiny_dir, SMOKE, for_training=False), batch)
    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)
    assert torch.equal(_logits(loading.load_model(tiny_dir, SMOKE, for_training=False), batch), plain)


def test_generation_works_under_forcing(forced, tiny_dir):
    model = loading.load_model(tiny_dir, SMOKE, for_training=False)
    tokenizer = loading.load_tokenizer(tiny_dir, padding_side="left")
    prompts = [prompting.inference_prompt(row) for row in data.load_alpaca(SMOKE, limit=2)]
    texts = prompting.generate(model, tokenizer, prompts, max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


@pytest.mark.slow
def test_a_trained_adapter_reloads_with_identical_logits_under_forcing(forced, tiny_dir, batch, tmp_path):
    model, tokenizer = loading.load_model(tiny_dir, SMOKE), loading.load_tokenizer(tiny_dir)
    trainer = training.make_trainer(model, tokenizer, data.load_alpaca(SMOKE, limit=16), preset="smoke", rt=SMOKE,
                                    output_dir=tmp_path / "run", max_steps=3)
    training.train(trainer)
    trainer.model.save_pretrained(tmp_path / "adapter")
    trained = _logits(trainer.model, batch)
    reloaded = PeftModel.from_pretrained(loading.load_model(tiny_dir, SMOKE, for_training=False), tmp_path / "adapter")
    assert torch.equal(_logits(reloaded, batch), trained)
    assert not any(layer.support_avx512bf16_for_cpu for layer in _layers(reloaded))


@pytest.mark.slow
@pytest.mark.parametrize("number", ["03", "04", "05"])
def test_notebooks_that_build_4bit_layers_run_under_forcing(number, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))
    path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    nb = execute(path, tmp_path / "executed", kernel_args=[FORCE_REPACK])
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


ADVICE = ("import logging; logging.getLogger('bitsandbytes.backends.cpu.ops').warning("
          "'Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
          "`pip install kernels`', 'No module named kernels')")


@pytest.mark.parametrize("first, shown", [("", True), ("import helpers; ", False)])
def test_bitsandbytes_advice_to_install_kernels_is_kept_out_once_helpers_is_imported(first, shown):
    # the exact record bitsandbytes logs at import on a CPU with AVX512-BF16, sent on any CPU
    run = subprocess.run([sys.executable, "-c", first + ADVICE], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert ("kernels-community" in run.stderr) is shown


def test_importing_the_course_and_bitsandbytes_prints_nothing():
    run = subprocess.run([sys.executable, "-c", "import helpers.loading, bitsandbytes"], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    assert run.stdout == run.stderr == ""
