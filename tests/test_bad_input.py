"""Bad input a learner would plausibly type is refused by the course itself, before any library sees it: a
ValueError or TypeError raised inside helpers/ whose message names the argument, what it got and what to pass."""

import traceback
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from helpers import auth, data, loading, prompting, runtime, train, training
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
T4 = Runtime("colab", "Tesla T4", 1, 15.0, (7, 5), torch.float16, "full", {"": 0})
HELPERS = Path(training.__file__).resolve().parent
ROWS = [{"instruction": "Name a colour.", "input": "", "output": "Blue."}] * 10


@pytest.fixture(scope="module")
def env(tiny_dir, tmp_path_factory):
    """What the cases need: the tiny model (unwrapped), its tokenizer, a small Dataset and a real trainer."""
    model, tokenizer = loading.load_model(tiny_dir, SMOKE), loading.load_tokenizer(tiny_dir)
    ds = Dataset.from_list(ROWS)
    trainer = training.make_trainer(loading.load_model(tiny_dir, SMOKE), tokenizer, ds, preset="smoke", rt=SMOKE,
                                    output_dir=tmp_path_factory.mktemp("bad-input"))
    return SimpleNamespace(model=model, tok=tokenizer, ds=ds, trainer=trainer, tiny=tiny_dir)


def trainer_for(e, **kw):
    """make_trainer on the tiny model with the smoke preset, where args/kw replace what the case is about."""
    call = dict(model=e.model, tokenizer=e.tok, train_dataset=e.ds, preset="smoke", rt=SMOKE, output_dir="unused")
    call.update(kw)
    return training.make_trainer(**call)


# (what a learner types, the exception, the argument the message must name, what it got as the message shows it)
CASES = [
    # the issue's cases
    ("empty training set", lambda e: trainer_for(e, train_dataset=Dataset.from_list([])), ValueError,
     "train_dataset", "0 rows"),
    ("rows as a list of dicts", lambda e: trainer_for(e, train_dataset=ROWS), TypeError, "train_dataset", "list"),
    ("split of one row", lambda e: data.split(e.ds.select([0])), ValueError, "ds", "1 row"),
    ("a folder that does not exist", lambda e: loading.load_tokenizer("./outputs/t4/adapter-missing"), ValueError,
     "name", "'./outputs/t4/adapter-missing'"),
    ("generate without a tokenizer", lambda e: prompting.generate(e.model, None, "Hi"), TypeError, "tokenizer",
     "None"),
    ("batch size 0", lambda e: training.sft_config("t4", "o", rt=T4, per_device_train_batch_size=0), ValueError,
     "per_device_train_batch_size", "0"),
    ("learning rate as a word", lambda e: training.sft_config("t4", "o", rt=T4, learning_rate="high"), TypeError,
     "learning_rate", "'high'"),
    ("misspelt packing strategy", lambda e: training.sft_config("t4", "o", rt=T4, packing_strategy="bdf"),
     ValueError, "packing_strategy", "'bdf'"),
    ("LoRA rank 0", lambda e: training.lora_config(r=0), ValueError, "r", "0"),
    ("limit=True", lambda e: data.load_alpaca(SMOKE, limit=True), ValueError, "limit", "True"),
    # more that a learner would plausibly type
    ("preset in capitals", lambda e: training.sft_config("T4", "o", rt=T4), ValueError, "preset", "'T4'"),
    ("misspelt optimizer", lambda e: training.sft_config("t4", "o", rt=T4, optim="paged_adam_32bit"), ValueError,
     "optim", "'paged_adam_32bit'"),
    ("misspelt scheduler", lambda e: training.sft_config("t4", "o", rt=T4, lr_scheduler_type="cosin"), ValueError,
     "lr_scheduler_type", "'cosin'"),
    ("zero steps", lambda e: training.sft_config("t4", "o", rt=T4, max_steps=0), ValueError, "max_steps", "0"),
    ("zero epochs", lambda e: training.sft_config("t4", "o", rt=T4, num_train_epochs=0), ValueError,
     "num_train_epochs", "0"),
    ("fractional accumulation", lambda e: training.sft_config("t4", "o", rt=T4, gradient_accumulation_steps=2.5),
     TypeError, "gradient_accumulation_steps", "2.5"),
    ("fp16 as a word", lambda e: training.sft_config("t4", "o", rt=T4, fp16="yes"), TypeError, "fp16", "'yes'"),
    ("negative warmup", lambda e: training.sft_config("t4", "o", rt=T4, warmup_steps=-1), ValueError,
     "warmup_steps", "-1"),
    ("the post's warmup_ratio", lambda e: training.sft_config("t4", "o", rt=T4, warmup_ratio=0.1), TypeError,
     "warmup_ratio", "warmup_steps"),
    ("output folder as a number", lambda e: training.sft_config("t4", 42, rt=T4), TypeError, "output_dir", "42"),
    ("mode name instead of a runtime", lambda e: training.sft_config("t4", "o", rt="smoke"), TypeError, "rt",
     "'smoke'"),
    ("LoRA rank as a float", lambda e: training.lora_config(r=8.0), TypeError, "r", "8.0"),
    ("dropout as a percentage", lambda e: training.lora_config(lora_dropout=10), ValueError, "lora_dropout", "10"),
    ("misspelt bias", lambda e: training.lora_config(bias="no"), ValueError, "bias", "'no'"),
    ("a DatasetDict", lambda e: trainer_for(e, train_dataset=e.ds.train_test_split(test_size=2)), TypeError,
     "train_dataset", "DatasetDict"),
    ("eval rows as a list", lambda e: trainer_for(e, eval_dataset=ROWS), TypeError, "eval_dataset", "list"),
    ("no model", lambda e: trainer_for(e, model=None), TypeError, "model", "None"),
    ("the model's name for the tokenizer", lambda e: trainer_for(e, tokenizer="google/gemma-2b"), TypeError,
     "tokenizer", "'google/gemma-2b'"),
    ("a dict as peft_config", lambda e: trainer_for(e, peft_config={"r": 8}), TypeError, "peft_config", "{'r': 8}"),
    ("misspelt LoRA targets", lambda e: trainer_for(e, peft_config=training.lora_config(target_modules=["qproj"])),
     ValueError, "target_modules", "['qproj']"),
    ("live as a word", lambda e: trainer_for(e, live="yes"), TypeError, "live", "'yes'"),
    ("run_info with an object", lambda e: trainer_for(e, run_info={"rows": e.ds}), TypeError, "run_info", "Dataset"),
    ("train of a model", lambda e: training.train(e.model), TypeError, "trainer", "GemmaForCausalLM"),
    ("resume as a word", lambda e: training.train(e.trainer, resume="yes"), TypeError, "resume", "'yes'"),
    ("latest_checkpoint of None", lambda e: training.latest_checkpoint(None), TypeError, "folder", "None"),
    ("recorder of a model", lambda e: training.recorder(e.model), TypeError, "trainer", "GemmaForCausalLM"),
    ("merge check without a model", lambda e: training.check_finite_logits(None, e.tok, "Hi"), TypeError, "model",
     "None"),
    ("limit 0", lambda e: data.load_alpaca(SMOKE, limit=0), ValueError, "limit", "0"),
    ("limit as text", lambda e: data.load_alpaca(SMOKE, limit="100"), ValueError, "limit", "'100'"),
    ("mode name for load_alpaca", lambda e: data.load_alpaca("smoke"), TypeError, "rt", "'smoke'"),
    ("split of a list", lambda e: data.split(ROWS), TypeError, "ds", "list"),
    ("hold out everything", lambda e: data.split(e.ds, eval_size=1.0), ValueError, "eval_size", "1.0"),
    ("hold out 95 % of 10 rows", lambda e: data.split(e.ds, eval_size=0.95), ValueError, "eval_size", "0.95"),
    ("seed as text", lambda e: data.split(e.ds, seed="0"), TypeError, "seed", "'0'"),
    ("column check of a list", lambda e: data.check_columns(ROWS), TypeError, "ds", "list"),
    ("prompt of a string", lambda e: prompting.format_prompt("Name a colour."), TypeError, "row", "str"),
    ("input None", lambda e: prompting.format_prompt({**ROWS[0], "input": None}), TypeError, "row['input']", "None"),
    ("prompt without input", lambda e: prompting.inference_prompt({"instruction": "x"}), ValueError, "row",
     "['input']"),
    ("generate without a model", lambda e: prompting.generate(None, e.tok, "Hi"), TypeError, "model", "None"),
    ("generate of nothing", lambda e: prompting.generate(e.model, e.tok, None), TypeError, "prompts", "None"),
    ("generate of an empty list", lambda e: prompting.generate(e.model, e.tok, []), TypeError, "prompts", "[]"),
    ("no new tokens", lambda e: prompting.generate(e.model, e.tok, "Hi", max_new_tokens=0), ValueError,
     "max_new_tokens", "0"),
    ("new tokens as text", lambda e: prompting.generate(e.model, e.tok, "Hi", max_new_tokens="64"), ValueError,
     "max_new_tokens", "'64'"),
    ("max_length next to max_new_tokens", lambda e: prompting.generate(e.model, e.tok, "Hi", max_length=100),
     TypeError, "max_length", "max_new_tokens"),
    ("more new tokens than the context", lambda e: prompting.generate(e.model, e.tok, "Hi", max_new_tokens=10_000),
     ValueError, "max_new_tokens", "10000"),
    ("load_model of None", lambda e: loading.load_model(None, SMOKE), TypeError, "name", "None"),
    ("load_model of a missing folder", lambda e: loading.load_model("/content/drive/MyDrive/gemma", SMOKE),
     ValueError, "name", "'/content/drive/MyDrive/gemma'"),
    ("a dict as quantization_config", lambda e: loading.load_model(e.tiny, SMOKE, quantization_config={"bits": 4}),
     TypeError, "quantization_config", "dict"),
    ("mode name for load_model", lambda e: loading.load_model(e.tiny, "smoke"), TypeError, "rt", "'smoke'"),
    ("padding side misspelt", lambda e: loading.load_tokenizer(e.tiny, padding_side="middle"), ValueError,
     "padding_side", "'middle'"),
    ("quant type in capitals", lambda e: loading.bnb_config(SMOKE, quant_type="NF4"), ValueError, "quant_type",
     "'NF4'"),
    ("double quant as a word", lambda e: loading.bnb_config(SMOKE, double_quant="yes"), TypeError, "double_quant",
     "'yes'"),
    ("negative tiny seed", lambda e: loading.tiny_gemma(seed=-1), ValueError, "seed", "-1"),
    ("describe of nothing", lambda e: runtime.describe(None), TypeError, "rt", "None"),
    ("zero threads", lambda e: runtime.cpu_threads("cpu", 0).__enter__(), ValueError, "n", "0"),
    ("auth check of a status code", lambda e: auth.is_auth_error(403), TypeError, "exc", "403"),
]

# Issue 26: the kinds of bad input an independent mutation run found accepted.
CASES += [
    ("negative weight_decay", lambda e: training.sft_config("t4", "o", rt=T4, weight_decay=-0.01), ValueError,
     "weight_decay", "-0.01"),
    ("weight_decay below 0 in a trainer", lambda e: trainer_for(e, weight_decay=-1e-4), ValueError,
     "weight_decay", "-0.0001"),
    ("hold out as many rows as there are", lambda e: data.split(e.ds, eval_size=10), ValueError, "eval_size", "10"),
    ("hold out True rows", lambda e: data.split(e.ds, eval_size=True), ValueError, "eval_size", "True"),
    ("hold out a fraction of 0", lambda e: data.split(e.ds, eval_size=0.0), ValueError, "eval_size", "0.0"),
    ("new tokens as many as the context", lambda e: prompting.generate(
        e.model, e.tok, "Hi", max_new_tokens=e.model.config.max_position_embeddings), ValueError, "max_new_tokens",
     "below the model's context"),
    ("GPUs that cannot share the step", lambda e: train.per_device_settings("t4", 3), ValueError, "gpus",
     "3 GPUs cannot share"),
    ("a launch on no GPU", lambda e: train.command(0), ValueError, "gpus", "got 0"),
]


@pytest.mark.parametrize("call, kind, argument, got", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_by_the_course_naming_the_argument(env, call, kind, argument, got):
    with pytest.raises((TypeError, ValueError)) as err:
        call(env)
    message = str(err.value)
    assert type(err.value) is kind, message
    assert argument in message and got in message, message
    where = Path(traceback.extract_tb(err.value.__traceback__)[-1].filename).resolve()
    assert where.parent == HELPERS, f"raised in {where}, not by the course: {message}"


def test_the_table_covers_every_helper_module_and_the_issues_cases():
    modules = {c[1].__code__.co_names for c in CASES}
    named = set().union(*modules)
    assert {"training", "data", "prompting", "loading", "runtime", "auth", "train"} <= named
    assert len(CASES) >= 10 + 10
