"""The 4-bit config, loading through one path in both modes, and the offline tiny Gemma."""

import json
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import bitsandbytes as bnb
import datasets
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from helpers import data, loading, prompting
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
T4 = Runtime("colab", "Tesla T4", 1, 15.0, (7, 5), torch.float16, "full", {"": 0})
A100 = replace(T4, gpu_name="A100", compute_capability=(8, 0), dtype=torch.bfloat16)


def fake_model() -> torch.nn.Module:
    """Return a stand-in for a loaded model: a module with no layers and a config that load_model can change."""
    model = torch.nn.Module()
    model.config = SimpleNamespace()
    return model


def test_bnb_config_is_nf4_with_double_quant_in_the_runtime_dtype():
    config = loading.bnb_config(T4)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.float16
    assert loading.bnb_config(A100).bnb_4bit_compute_dtype == torch.bfloat16
    assert loading.bnb_config(SMOKE, double_quant=False, quant_type="fp4").bnb_4bit_quant_type == "fp4"
    with pytest.raises(ValueError, match="quant_type must be one of"):
        loading.bnb_config(SMOKE, quant_type="int4")


def test_tiny_gemma_has_gemma_2bs_architecture_and_a_trained_tokenizer(tiny_dir):
    config = AutoConfig.from_pretrained(tiny_dir)
    assert config.model_type == "gemma" and config.architectures == ["GemmaForCausalLM"]
    assert config.num_key_value_heads == 1 and config.tie_word_embeddings and config.num_hidden_layers == 2
    assert config.hidden_size <= 128 and 1000 <= config.vocab_size <= 4096
    tokenizer = loading.load_tokenizer(tiny_dir)
    assert (tokenizer.pad_token, tokenizer.padding_side) == ("<eos>", "right")
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (config.bos_token_id, config.eos_token_id)
    text = prompting.format_prompt({"instruction": "Say hi.", "input": "", "output": "Hi there!"})
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(ids) < len(text) / 2.5  # BPE learned the template's words: far fewer tokens than characters


@pytest.fixture
def nothing_committed(monkeypatch, tmp_path_factory):
    """Hide the committed tiny model, so tiny_gemma builds into the cache as on a checkout without it."""
    monkeypatch.setattr(loading, "committed_tiny", lambda: tmp_path_factory.mktemp("no-committed-model"))


@pytest.fixture
def short_pretraining(monkeypatch):
    """Pre-train for 3 steps on one copy of the samples: the build's logic in seconds, not its result."""
    monkeypatch.setattr(loading, "TINY_PRETRAIN", {**loading.TINY_PRETRAIN, "steps": 3, "copies": 1})


def test_the_committed_tiny_model_is_todays_recipe_and_ships_in_the_wheel(tiny_dir):
    committed = loading.committed_tiny()
    assert tiny_dir == str(committed) == str(Path(data.__file__).parent.parent / "data" / "tiny_gemma")
    # Changed the samples or the recipe? Rebuild it: python scripts/build_tiny_model.py, and commit data/tiny_gemma.
    assert json.loads((committed / "course_recipe.json").read_text()) == loading._tiny_recipe(0)
    files = {p.name: p.stat().st_size for p in committed.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "built_with.json"} <= set(files)
    assert sum(files.values()) < 8e6, files  # a few MB in git
    pyproject = (Path(data.__file__).parent.parent / "pyproject.toml").read_text()
    assert '"data/tiny_gemma" = "helpers/tiny_gemma"' in pyproject
    assert loading.tiny_gemma(seed=0, cache_dir="/nonexistent") == tiny_dir  # no cache needed, none written


def test_the_base_model_writes_on_after_a_sentence_instead_of_stopping(tiny_dir):
    """Before notebook 05, the tiny model is a base model: <eos> is unlikely after the prompt and after an answer."""
    from helpers import evaluate

    model, tokenizer = loading.load_model(tiny_dir, SMOKE, for_training=False), loading.load_tokenizer(tiny_dir)
    rows = [r for sample in loading._tiny_rows().values() for r in sample[:4]]
    prompts = [prompting.inference_prompt(r) for r in rows]
    examples = [prompting.format_prompt(r) for r in rows]
    places = evaluate.eos_places(model, tokenizer, prompts, examples)
    # measured: at most about 1e-4 at any of the three places (an <eos> only ever ended a long document)
    assert max(max(p) for p in places.values()) < 0.01, places


@pytest.mark.xfail(strict=True, reason="issue 23, problem 2: the committed base learned its sample by heart (measured "
                   "answer loss 12.5 / 12.3, whole examples 12.6 / 12.7 against ln(4096) = 8.32); a pre-training that "
                   "generalises and still lets 30 smoke steps teach the answer's end is not found yet")
@pytest.mark.parametrize("dataset", ["dolly", "dolly-ko"])
def test_the_base_model_guesses_held_out_text_better_than_uniform(tiny_dir, dataset):
    """Notebook 06 scores the base on the rows notebook 05 holds out: its loss there must be below ln(vocabulary)."""
    import math

    from helpers import compare

    model, tokenizer = loading.load_model(tiny_dir, SMOKE, for_training=False), loading.load_tokenizer(tiny_dir)
    held_out = data.split(data.load_alpaca(SMOKE, dataset=dataset), eval_size=8, seed=0)["test"]
    answer = compare.token_stats(model, tokenizer, held_out)["answer loss"]
    with torch.no_grad():  # every token of each example and its <eos>, as notebook 06's eval loss counts them
        whole = [model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item() for ids in
                 (tokenizer(prompting.format_prompt(r)).input_ids + [tokenizer.eos_token_id] for r in held_out)]
    uniform = math.log(len(tokenizer))
    assert answer < uniform and sum(whole) / len(whole) < uniform, (answer, whole, uniform)


def test_pre_training_leaves_out_notebook_05s_held_out_rows():
    rows = loading._tiny_rows()
    text = "".join(loading._pretrain_documents(rows, seed=0))
    for name, sample in rows.items():
        held_out = data.split(datasets.Dataset.from_list(sample), eval_size=8, seed=0)["test"]
        assert not [r["output"] for r in held_out if r["output"] in text], name
        assert sum(r["output"] in text for r in sample) == len(sample) - 8
    assert "###" not in text and "<eos>" not in text  # plain text: the template is notebook 05's to teach


def test_tiny_gemma_is_cached_rebuilt_when_stale_and_deterministic(nothing_committed, short_pretraining, tmp_path,
                                                                  capfd):
    first = Path(loading.tiny_gemma(seed=0, cache_dir=tmp_path / "a"))
    weights = first / "model.safetensors"
    built = weights.stat().st_mtime_ns
    assert loading.tiny_gemma(cache_dir=tmp_path / "a") == str(first)
    assert weights.stat().st_mtime_ns == built
    stale = tmp_path / "tiny-gemma-seed0"  # as an older course version might have left it
    stale.mkdir()
    (stale / "config.json").write_text('{"initializer_range": 0.02}')
    again = loading.tiny_gemma(seed=0, cache_dir=tmp_path)
    assert again == str(stale) and (stale / "course_recipe.json").is_file()
    assert Path(again, "model.safetensors").read_bytes() == weights.read_bytes()
    assert Path(again, "tokenizer.json").read_bytes() == Path(first, "tokenizer.json").read_bytes()
    capfd.readouterr()
    other = loading.tiny_gemma(seed=1, cache_dir=tmp_path)
    # the build may run inside a notebook's model cell: no "Generating train split" bar, no log line
    assert capfd.readouterr() == ("", "")
    assert not datasets.are_progress_bars_disabled()  # and the learner's settings are as they were
    assert Path(other, "model.safetensors").read_bytes() != weights.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name not in ("a", "tiny-gemma-seed0", "tiny-gemma-seed1")]


@pytest.mark.parametrize("change", [{"seed": 1}, {"shape": {**loading.TINY_SHAPE, "hidden_size": 32}}])
def test_a_cached_tiny_model_from_another_recipe_is_rebuilt(tiny_dir, tmp_path, change, monkeypatch,
                                                          nothing_committed):
    # Only whether it rebuilds matters here: skip the rebuilt model's pre-training (tested with tiny_dir).
    monkeypatch.setattr(loading, "_pretrain_tiny", lambda *args: None, raising=False)
    cached = tmp_path / "tiny-gemma-seed0"
    shutil.copytree(tiny_dir, cached)  # copies the files' times too
    recipe = json.loads((cached / "course_recipe.json").read_text())
    (cached / "course_recipe.json").write_text(json.dumps({**recipe, **change}))
    built = (cached / "model.safetensors").stat().st_mtime_ns
    assert loading.tiny_gemma(seed=0, cache_dir=tmp_path) == str(cached)
    assert json.loads((cached / "course_recipe.json").read_text()) == recipe
    assert (cached / "model.safetensors").stat().st_mtime_ns != built


def test_load_model_uses_the_quantization_config_it_is_given(tiny_dir):
    fp4 = loading.bnb_config(SMOKE, double_quant=False, quant_type="fp4")
    model = loading.load_model(tiny_dir, SMOKE, quantization_config=fp4)
    state = next(m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)).weight.quant_state
    assert state.quant_type == "fp4" and not state.nested


def test_tiny_gemma_uses_course_cache_dir(monkeypatch, tiny_dir, tmp_path, nothing_committed):
    monkeypatch.setattr(loading, "_pretrain_tiny", lambda *args: None)  # where it goes matters here, not the weights
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    assert loading.tiny_gemma() == loading.model_name(SMOKE) == str(tmp_path / "tiny-gemma-seed0")
    assert loading.model_name(T4) == "google/gemma-2b"
    with pytest.raises(TypeError, match="seed must be an int"):
        loading.tiny_gemma(seed="0")


def test_smoke_mode_loads_the_tiny_model_in_4bit_on_the_cpu(tiny_dir):
    model = loading.load_model(tiny_dir, SMOKE)
    assert model.is_loaded_in_4bit and not model.config.use_cache
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7
    state = layers[0].weight.quant_state
    assert state.quant_type == "nf4" and state.nested and layers[0].compute_dtype == torch.float32
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert loading.load_model(tiny_dir, SMOKE, for_training=False).config.use_cache


def test_load_model_passes_the_posts_settings_and_no_remote_code(monkeypatch):
    calls = []
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        lambda name, **kw: calls.append((name, kw)) or fake_model())
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    loading.load_model("google/gemma-2b", T4)
    loading.load_model("google/gemma-2b", A100)
    (name, kw), (_, kw_a100) = calls
    assert name == "google/gemma-2b" and "trust_remote_code" not in kw
    assert kw["device_map"] == {"": 0} and kw["token"] == "hf_test"
    assert kw["quantization_config"].bnb_4bit_compute_dtype == torch.float16
    # Under fp16 compute the unquantized weights stay fp32 (as the post's transformers loaded them).
    assert kw["dtype"] == torch.float32 and kw_a100["dtype"] == torch.bfloat16


def test_a_local_folder_gets_no_token(monkeypatch, tiny_dir):
    calls = []
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda name, **kw: calls.append(kw) or fake_model())
    monkeypatch.setattr(loading, "hf_token", lambda: pytest.fail("a local folder must not look for a token"))
    loading.load_model(tiny_dir, SMOKE)
    assert calls[0]["token"] is None


def test_full_mode_without_a_gpu_says_what_to_do():
    with pytest.raises(RuntimeError, match="Full mode needs a CUDA GPU.*Change runtime type.*COURSE_MODE=smoke"):
        loading.load_model("google/gemma-2b", replace(SMOKE, mode="full"))


def test_out_of_memory_while_loading_says_what_to_free(monkeypatch):
    def oom(name, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", oom)
    with pytest.raises(torch.OutOfMemoryError, match="restart the runtime"):
        loading.load_model("google/gemma-2b", T4)


@pytest.mark.parametrize("name", ["google/gemma-2b", "google/gemma-2b-it"])
def test_hub_ids_pass_the_name_check(name, monkeypatch):
    calls = []
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda n, **kw: calls.append(n) or fake_model())
    loading.load_model(name, T4)
    assert calls == [name]


def test_a_path_object_names_a_local_model(tiny_dir):
    assert loading.load_tokenizer(Path(tiny_dir)).padding_side == "right"


def test_bad_padding_side_is_refused(tiny_dir):
    with pytest.raises(ValueError, match="padding_side must be 'right'"):
        loading.load_tokenizer(tiny_dir, padding_side="middle")
    assert loading.load_tokenizer(tiny_dir, padding_side="left").padding_side == "left"


def test_the_tiny_tokenizer_covers_hangul(tiny_dir):
    tokenizer = loading.load_tokenizer(tiny_dir)
    text = data.sample_path("dolly-ko").read_text(encoding="utf-8").splitlines()[0]
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text
    # trained on the Korean sample too: common Korean words are tokens of their own, not 3 bytes per syllable
    pieces = [tokenizer.decode([i]) for i in tokenizer("시간이 지나면 때문입니다", add_special_tokens=False).input_ids]
    assert len(pieces) <= 6 and "�" not in "".join(pieces), pieces


def test_the_tiny_model_is_built_from_both_samples_and_tells_the_prompts_end_from_an_answers_end(tiny_dir):
    recipe = json.loads(Path(tiny_dir, "course_recipe.json").read_text())
    assert sorted(recipe["samples_sha256"]) == sorted(data.DATASETS)
    rows = loading._tiny_rows()
    assert {name: len(r) for name, r in rows.items()} == {"dolly": 83, "dolly-ko": 85}
    assert all(set(row) >= {"instruction", "input", "output"} for sample in rows.values() for row in sample)
    tokenizer = loading.load_tokenizer(tiny_dir)
    ids = tokenizer(prompting.format_prompt({"instruction": "Why?", "input": "", "output": "Because."})).input_ids
    pieces = [tokenizer.decode([i]) for i in ids]
    assert pieces[-1] == ".\n" and " Response\n" in pieces  # an answer's end and the prompt's end differ


def test_a_cached_tiny_model_is_rebuilt_when_the_courses_shape_changes(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "_pretrain_tiny", lambda *args: None)  # only the shape matters here
    cached = tmp_path / "tiny-gemma-seed0"
    shutil.copytree(tiny_dir, cached)
    monkeypatch.setattr(loading, "TINY_SHAPE", {**loading.TINY_SHAPE, "hidden_size": 32})
    assert loading.tiny_gemma(seed=0, cache_dir=tmp_path) == str(cached)
    assert AutoConfig.from_pretrained(cached).hidden_size == 32


def test_course_model_replaces_gemma_2b_in_full_mode_only(monkeypatch, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setattr(loading, "tiny_gemma", lambda: "the tiny Gemma's folder")
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    assert (loading.model_name(T4), loading.model_name(SMOKE)) == ("google/gemma-2b", "the tiny Gemma's folder")
    monkeypatch.setenv("COURSE_MODEL", str(tmp_path))
    assert (loading.model_name(T4), loading.model_name(SMOKE)) == (str(tmp_path), "the tiny Gemma's folder")
    monkeypatch.setenv("COURSE_MODEL", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="is not a model folder"):
        loading.model_name(T4)


@pytest.mark.slow
def test_the_build_script_rebuilds_the_committed_tiny_model_bit_for_bit():
    """scripts/build_tiny_model.py --check rebuilds data/tiny_gemma in a scratch folder (about 2-4 minutes)."""
    import os
    import subprocess
    import sys

    root = Path(data.__file__).parent.parent
    done = subprocess.run([sys.executable, "scripts/build_tiny_model.py", "--check"], check=False, cwd=root,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    # Float sums can round differently on another CPU family: a difference there is the machine, not the recipe.
    assert done.returncode == 0 and "identical" in done.stdout, done.stdout + done.stderr[-2000:]
