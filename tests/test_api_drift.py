"""Every keyword the helpers pass exists in the pinned libraries, and the post's 2024 keywords are gone.

Notebook 05's "post vs today" table stands on these tests.
"""

import dataclasses
import importlib
import inspect
import re
import warnings
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
import trl
from peft import LoraConfig
from transformers import BitsAndBytesConfig, GemmaConfig, LlamaConfig, TrainingArguments
from trl import SFTConfig

from helpers import loading, training
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
T4 = Runtime("colab", "Tesla T4", 1, 15.0, (7, 5), torch.float16, "full", {"": 0})
A100 = Runtime("local", "A100", 1, 39.4, (8, 0), torch.bfloat16, "full", {"": 0})
RUNTIMES = [SMOKE, T4, A100]


def field_names(cls: type) -> set[str]:
    """Return the field names of a dataclass config."""
    return {f.name for f in dataclasses.fields(cls)}


def test_the_libraries_are_the_pinned_versions():
    pins = dict(re.findall(r"^([\w-]+)==([\w.]+)", Path(__file__).parents[1].joinpath("requirements.txt").read_text(),
                           re.MULTILINE))
    for name in ("transformers", "trl", "peft", "bitsandbytes", "huggingface_hub"):
        assert version(name) == pins[name], name


@pytest.mark.parametrize("preset", sorted(training.PRESETS))
@pytest.mark.parametrize("rt", RUNTIMES, ids=["cpu", "t4", "a100"])
def test_sft_config_keywords_exist(preset, rt):
    passed = set(training.sft_kwargs(preset, "out", rt))
    assert passed <= field_names(SFTConfig)
    # All but three are TrainingArguments' own; those three moved from SFTTrainer into SFTConfig.
    assert passed - field_names(TrainingArguments) == {"packing", "packing_strategy", "max_length"}


@pytest.mark.parametrize("preset", sorted(training.PRESETS))
def test_sft_configs_build_without_deprecation_warnings(preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        training.sft_config(preset, "out", rt=T4 if preset.startswith("t4") else SMOKE)


def test_lora_and_bitsandbytes_keywords_exist():
    assert set(training.lora_kwargs()) <= field_names(LoraConfig)
    named = {n for n, p in inspect.signature(BitsAndBytesConfig).parameters.items() if p.kind != p.VAR_KEYWORD}
    for rt in RUNTIMES:
        assert set(loading.bnb_kwargs(rt)) <= named  # not swallowed by **kwargs


def test_sft_trainer_keywords_exist(monkeypatch):
    passed = {}

    class Recorder:
        def __init__(self, **kw):
            passed.update(kw)
            self.model = torch.nn.Linear(1, 1)

        def remove_callback(self, callback):  # make_trainer drops the library's progress bars
            pass

    class Tokenizer:  # a stand-in: make_trainer refuses anything that is not callable like a tokenizer
        pad_token_id = 0

        def __call__(self, text):
            return {"input_ids": [0]}

    monkeypatch.setattr(training, "SFTTrainer", Recorder)
    from datasets import Dataset

    ds = Dataset.from_dict({"instruction": ["a"], "input": [""], "output": ["b"]})
    model = torch.nn.ModuleDict({name: torch.nn.Linear(1, 1) for name in ("q_proj", "k_proj", "v_proj", "o_proj")})
    training.make_trainer(model, Tokenizer(), ds, preset="smoke", rt=SMOKE, output_dir="out")
    accepted = set(inspect.signature(trl.SFTTrainer.__init__).parameters)
    assert set(passed) <= accepted
    assert {"processing_class", "peft_config", "formatting_func"} <= set(passed)


def test_the_posts_training_arguments_are_gone():
    with pytest.raises(TypeError, match="evaluation_strategy"):
        TrainingArguments(output_dir="out", evaluation_strategy="no")
    with pytest.raises(TypeError, match="warmup_ratio"):
        TrainingArguments(output_dir="out", warmup_ratio=0.1)
    assert "group_by_length" not in field_names(TrainingArguments)
    # gradient_checkpointing still runs, but transformers 5 renamed it activation_checkpointing.
    with pytest.warns(FutureWarning, match="activation_checkpointing"):
        TrainingArguments(output_dir="out", gradient_checkpointing=True)


def test_todays_lines_run():
    config = SFTConfig(output_dir="out", fp16=True, eval_strategy="no", warmup_steps=0.1, max_length=512,
                       packing=True, activation_checkpointing=True,
                       activation_checkpointing_kwargs={"use_reentrant": False})
    assert config.get_warmup_steps(50) == 5 and config.gradient_checkpointing


def test_the_posts_sft_trainer_arguments_are_gone():
    accepted = set(inspect.signature(trl.SFTTrainer.__init__).parameters)
    assert not {"tokenizer", "max_seq_length", "packing", "dataset_text_field"} & accepted
    assert "max_seq_length" not in field_names(SFTConfig)
    with pytest.raises(ImportError):
        from trl.trainer import ConstantLengthDataset  # noqa: F401
    assert not hasattr(importlib.import_module("trl"), "ConstantLengthDataset")


def test_pretraining_tp_is_a_llama_setting_that_gemma_lacks():
    assert LlamaConfig().pretraining_tp == 1
    assert not hasattr(GemmaConfig(), "pretraining_tp")
