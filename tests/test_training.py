"""QLoRA end to end on the tiny Gemma (CPU), the presets, checkpoints, resuming and the callbacks."""

import contextlib
import io
import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from peft import PeftModel
from transformers import TrainerControl, TrainerState

from helpers import auth, data, loading, training
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
T4 = Runtime("colab", "Tesla T4", 1, 15.0, (7, 5), torch.float16, "full", {"": 0})
A100 = replace(T4, platform="local", gpu_name="A100", compute_capability=(8, 0), dtype=torch.bfloat16)
FAKE = "hf_FAKE_not_a_real_token_training_0123456789"


@pytest.fixture(scope="module")
def run(tiny_dir, tmp_path_factory):
    """Train the smoke preset once (HF_TOKEN set to a fake), capturing everything it prints and logs."""
    out = tmp_path_factory.mktemp("smoke-run")
    shown, records = io.StringIO(), []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown):
        mp.setenv("HF_TOKEN", FAKE)
        auth.forget_token()
        print(auth.token_message())  # what notebook 05's token cell shows
        assert auth.hf_token() == FAKE  # now cached inside auth, as in a notebook session
        model, tokenizer = loading.load_model(tiny_dir, SMOKE), loading.load_tokenizer(tiny_dir)
        trainer = training.make_trainer(model, tokenizer, data.load_alpaca(SMOKE), preset="smoke", rt=SMOKE,
                                        output_dir=out)
        training.train(trainer)
    logging.getLogger().removeHandler(handler)
    auth.forget_token()
    return SimpleNamespace(trainer=trainer, tokenizer=tokenizer, out=out, shown=shown.getvalue(), records=records)


def test_qlora_trains_through_the_real_path_and_the_loss_falls(run):
    trainer = run.trainer
    base = trainer.model.get_base_model()
    assert base.is_loaded_in_4bit
    optimizer = trainer.optimizer.optimizer
    assert type(optimizer).__module__.startswith("bitsandbytes") and optimizer.is_paged
    assert optimizer.args.optim_bits == 32
    lora = {n.split(".")[-4] for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert all(len(ids) == 128 for ids in trainer.train_dataset["input_ids"][:-1])  # packed blocks
    history = training.recorder(trainer).history
    assert [step for step, _ in history] == [5, 10, 15, 20, 25, 30]
    losses = [loss for _, loss in history]
    assert sum(losses[:2]) / 2 - sum(losses[-2:]) / 2 > 0.2
    # the losses are the course's to show (LossRecorder): make_trainer keeps the Trainer's bar and printed logs out
    assert trainer.state.global_step == 30 and "loss" not in run.shown, run.shown


def test_the_saved_adapter_reloads_onto_a_fresh_4bit_base_with_identical_logits(run, tiny_dir, tmp_path):
    run.trainer.model.save_pretrained(tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir() if p.suffix != ".md") == [
        "adapter_config.json", "adapter_model.safetensors"]
    batch = run.tokenizer(["### Instruction\nName a colour.", "Hi"], return_tensors="pt", padding=True)
    run.trainer.model.eval()
    with torch.no_grad():
        trained = run.trainer.model(**batch).logits
        reloaded = PeftModel.from_pretrained(loading.load_model(tiny_dir, SMOKE, for_training=False),
                                             tmp_path / "adapter").eval()(**batch).logits
        base = loading.load_model(tiny_dir, SMOKE, for_training=False)(**batch).logits
    assert torch.equal(trained, reloaded)
    assert not torch.allclose(trained, base)  # the adapter changed something


def test_the_token_is_in_no_output_log_or_saved_file(run):
    assert "Hugging Face token: found (not shown)." in run.shown and FAKE not in run.shown
    assert not any(FAKE in r.getMessage() for r in run.records)
    files = [p for p in Path(run.out).rglob("*") if p.is_file()]
    assert {"adapter_model.safetensors", training.RUN_FILE} <= {p.name for p in files}
    assert not [p for p in files if FAKE.encode() in p.read_bytes()]
    # Nor in what the run leaves in a notebook's namespace: the trainer's settings, fingerprint and model config.
    args = run.trainer.args
    assert args.hub_token is None and FAKE not in repr(args) + str(args.to_dict())
    assert FAKE not in str(training.run_fingerprint(run.trainer)) + str(run.trainer.model.config.to_dict())


def test_checkpoints_every_10_steps_and_the_newest_is_found(run, tmp_path):
    assert sorted(p.name for p in Path(run.out).glob("checkpoint-*")) == [
        "checkpoint-10", "checkpoint-20", "checkpoint-30"]
    assert training.latest_checkpoint(run.out) == str(Path(run.out) / "checkpoint-30")
    assert training.latest_checkpoint(tmp_path / "missing") is None
    (tmp_path / "checkpoint-9").mkdir()
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert training.latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_t4_preset_is_the_posts_run_in_todays_api():
    config = training.sft_config("t4", output_dir="out", rt=T4)
    batches = (config.per_device_train_batch_size, config.gradient_accumulation_steps, config.num_train_epochs)
    assert batches == (2, 2, 1)
    assert (config.learning_rate, config.lr_scheduler_type.value, config.warmup_steps) == (2e-4, "cosine", 0.1)
    assert config.get_warmup_steps(100) == 10  # a float below 1 is a ratio now
    assert config.gradient_checkpointing and config.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert (config.packing, config.packing_strategy, config.max_length) == (True, "wrapped", 512)
    assert (config.optim.value, config.logging_steps, config.save_strategy.value) == ("paged_adamw_32bit", 10, "epoch")
    assert config.eval_strategy.value == "no" and config.report_to == []
    assert (config.fp16, config.bf16) == (True, False)


def test_precision_follows_the_runtime_and_overrides_win():
    # An Ampere SFTConfig cannot be built on this CPU machine (its bf16 check), so check what would be passed.
    assert {k: training.sft_kwargs("t4", "o", rt=A100)[k] for k in ("fp16", "bf16")} == {"fp16": False, "bf16": True}
    smoke = training.sft_config("smoke", "o", rt=SMOKE)
    assert (smoke.fp16, smoke.bf16, smoke.use_cpu) == (False, False, True)
    assert (smoke.max_steps, smoke.max_length, smoke.logging_steps, smoke.save_steps) == (30, 128, 5, 10)
    assert smoke.packing and smoke.optim.value == "paged_adamw_32bit"
    fast = training.sft_config("t4_fast", "o", rt=T4)
    assert fast.max_length == 512 and fast.fp16 and not fast.gradient_checkpointing
    assert training.sft_config("t4", "o", rt=T4, learning_rate=1e-4).learning_rate == 1e-4
    assert training.sft_kwargs(rt=SMOKE)["max_steps"] == 30 and "max_steps" not in training.sft_kwargs(rt=T4)


@pytest.mark.parametrize("preset", sorted(training.PRESETS))
def test_every_preset_keeps_the_posts_4_blocks_per_optimizer_step(preset):
    config = training.sft_config(preset, "o", rt=SMOKE if preset == "smoke" else T4)
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps == 4
    # the post's own shape, each factor; the "b4" presets trade accumulation for a micro-batch of 4
    shape = (4, 1) if "b4" in preset else (2, 2)
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == shape


def test_bad_preset_and_old_keywords_are_refused_with_the_new_name():
    with pytest.raises(ValueError) as err:
        training.sft_config("a100", "o", rt=T4)
    assert str(err.value) == f"preset must be one of {sorted(training.PRESETS)} (or None: the mode's own), got 'a100'."
    with pytest.raises(TypeError, match=r"\['warmup_ratio'\].*'warmup_steps \(a float below 1 is a ratio\)'"):
        training.sft_config("t4", "o", rt=T4, warmup_ratio=0.1)
    with pytest.raises(TypeError, match="'evaluation_strategy' is now 'eval_strategy'"):
        training.sft_config("t4", "o", rt=T4, evaluation_strategy="no")
    with pytest.raises(TypeError, match=r"lora_config got unknown setting\(s\) \['rank'\]"):
        training.lora_config(rank=8)


def test_the_smoke_run_teaches_the_tiny_model_where_an_answer_ends(tiny_dir, tmp_path):
    """Notebook 05's smoke run: the P(<eos>) after held-out reference answers must rise many times over."""
    from helpers import evaluate, prompting

    rows = data.split(data.load_alpaca(SMOKE), eval_size=8, seed=0)
    model, tokenizer = loading.load_model(tiny_dir, SMOKE), loading.load_tokenizer(tiny_dir)
    trainer = training.make_trainer(model, tokenizer, rows["train"], preset="smoke", rt=SMOKE, output_dir=tmp_path,
                                    peft_config=training.lora_config(**training.SMOKE_LORA), save_strategy="no",
                                    disable_tqdm=True)
    examples = [prompting.format_prompt(row) for row in rows["test"]]
    before = sum(evaluate.eos_probability(trainer.model, tokenizer, examples)) / len(examples)
    training.train(trainer)
    after = sum(evaluate.eos_probability(trainer.model, tokenizer, examples)) / len(examples)
    # measured with the committed model: below 0.0001 before, about 0.14 after (the post's q/k/v/o adapter: far less)
    assert before < 0.002 and after > 0.02, (before, after)


def test_lora_config_is_the_posts():
    config = training.lora_config()
    assert (config.r, config.lora_alpha, config.lora_dropout, config.bias) == (8, 8, 0.1, "none")
    assert config.task_type == "CAUSAL_LM" and config.target_modules == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert training.lora_config(r=16).r == 16


def test_output_dir_survives_a_disconnect_where_it_can(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_OUTPUT_DIR", raising=False)
    monkeypatch.setattr(training, "DRIVE", tmp_path / "MyDrive")
    colab = replace(T4, platform="colab")
    assert training.output_dir(colab) == Path("outputs")  # Drive not mounted
    (tmp_path / "MyDrive").mkdir()
    assert training.output_dir(colab) == tmp_path / "MyDrive" / "qlora-course"
    assert training.output_dir(replace(T4, platform="kaggle")) == Path("/kaggle/working/qlora-course")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "env"))
    assert training.output_dir(SMOKE) == tmp_path / "env"
    assert training.sft_config("smoke", rt=SMOKE).output_dir == str(tmp_path / "env" / "smoke")


@pytest.mark.parametrize("disable_tqdm", [False, True])
def test_make_trainer_shows_no_progress_bar_loss_table_or_printed_logs(tiny_dir, monkeypatch, disable_tqdm):
    """The course plots its own losses: in a notebook (or not, with or without disable_tqdm) the Trainer adds none."""
    import transformers.trainer
    from transformers import PrinterCallback, ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    monkeypatch.setattr(transformers.trainer, "DEFAULT_PROGRESS_CALLBACK", NotebookProgressCallback)  # as in Jupyter
    model, tokenizer = loading.load_model(tiny_dir, SMOKE), loading.load_tokenizer(tiny_dir)
    trainer = training.make_trainer(model, tokenizer, data.load_alpaca(SMOKE), preset="smoke", rt=SMOKE,
                                    output_dir="o", disable_tqdm=disable_tqdm)
    shown = {type(c).__name__ for c in trainer.callback_handler.callbacks}
    assert not shown & {"NotebookProgressCallback", "ProgressCallback", "PrinterCallback"}, shown
    assert {"LossRecorder", "NonFiniteLossGuard"} <= shown
    trainer.add_callback(ProgressCallback)  # a caller who wants a bar back can have it
    assert ProgressCallback in {type(c) for c in trainer.callback_handler.callbacks} and PrinterCallback


def test_make_trainer_checks_the_columns_first(tiny_dir):
    from datasets import Dataset

    model, tokenizer = loading.load_model(tiny_dir, SMOKE), loading.load_tokenizer(tiny_dir)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['output'\]"):
        training.make_trainer(model, tokenizer, Dataset.from_dict({"instruction": ["a"], "input": [""]}),
                              preset="smoke", rt=SMOKE, output_dir="o")


def test_loss_recorder_records_and_draws_a_live_plot(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    recorder, state = training.LossRecorder(live=True), TrainerState()
    for step, loss in [(1, 3.0), (2, 2.5)]:
        state.global_step = step
        recorder.on_log(None, state, TrainerControl(), logs={"loss": loss, "epoch": 0.1})
    recorder.on_log(None, state, TrainerControl(), logs={"train_runtime": 1.0})
    assert recorder.history == [(1, 3.0), (2, 2.5)]
    assert list(recorder._figure.axes[0].lines[0].get_ydata()) == [3.0, 2.5]
    recorder.on_train_end(None, state, TrainerControl())
    assert recorder._figure is None and "Figure" in capsys.readouterr().out


def test_benchmark_reports_are_read_from_the_repository_and_shipped_in_the_wheel(monkeypatch, tmp_path):
    import json
    import tomllib

    root = Path(training.__file__).resolve().parent.parent
    on_disk = sorted((root / "benchmarks" / "results").glob("*.json"))
    assert on_disk, "the repository ships at least one benchmark result"
    reports = training.benchmark_reports()
    assert reports == [json.loads(p.read_text()) for p in on_disk]
    assert all("presets" in r and "gpu" in r for r in reports)
    # An installed wheel: the reports sit next to the module, and no repository folder is there.
    (tmp_path / "helpers" / "benchmark_results").mkdir(parents=True)
    (tmp_path / "helpers" / "benchmark_results" / "T4.json").write_text('{"gpu": "Tesla T4", "presets": []}')
    monkeypatch.setattr(training, "__file__", str(tmp_path / "helpers" / "training.py"))
    assert training.benchmark_reports() == [{"gpu": "Tesla T4", "presets": []}]
    force = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "force-include"]
    assert force["benchmarks/results"] == "helpers/benchmark_results"


def test_two_visible_gpus_with_the_model_pinned_to_one_count_as_one(tmp_path):
    kaggle = replace(SMOKE, platform="kaggle", gpu_count=2, device_map={"": 0})
    single = replace(SMOKE, gpu_count=1, device_map={"": 0})
    # Without the pin transformers would multiply the batch by the visible GPUs.
    assert training.sft_config("t4", output_dir=tmp_path, rt=kaggle).n_gpu == 1
    assert training.sft_config("t4", output_dir=tmp_path, rt=single).n_gpu == 0  # this machine has none


@pytest.fixture(scope="module")
def lessons(tiny_dir):
    """Notebook 05's smoke run in each language (scripts/smoke_lesson.py), trained once per data set."""
    import smoke_lesson

    cache = {}
    return lambda dataset: cache.setdefault(dataset, smoke_lesson.measure(dataset, tiny_dir))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["dolly", "dolly-ko"])
def test_the_smoke_run_teaches_where_an_answer_ends_and_nowhere_else(lessons, dataset):
    before, after = lessons(dataset)["before"], lessons(dataset)["after"]
    end = "P(<eos>) after the reference"
    # measured (English / Korean): 0.0000 -> 0.14 / 0.0000 -> 0.30 after the reference, while after the prompt and
    # inside the reference it stays at 0.001 or below: the adapter learned where an answer ends, not "say <eos> more"
    assert after[end] > 0.05 and after[end] > 10 * before[end], (before[end], after[end])
    assert after[end] > 20 * max(after["P(<eos>) after the prompt"], after["P(<eos>) inside the reference"]), after
    assert after["empty"] <= 1, after


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["dolly", "dolly-ko"])
def test_the_smoke_run_shows_learning_in_the_answers(lessons, dataset):
    """Issue 23/24's goal: at least 5 of 8 held-out answers stop by themselves after training, none before."""
    before, after = lessons(dataset)["before"], lessons(dataset)["after"]
    assert before["stopped"] == 0 and after["stopped"] >= 5, (before, after)
    assert after["rouge_l"] > before["rouge_l"]
