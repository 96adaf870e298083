"""The safety nets, each seen catching an injected fault in a real smoke run of the tiny model: a NaN loss,
a disconnect, a rerun of a finished run, a rerun with other settings, running out of memory, a merged model
whose scores overflow."""

import json
import math
import shutil
from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch
from transformers import TrainerCallback

from helpers import data, loading, prompting, training
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
# Short runs: 6 steps, a loss logged every step, a checkpoint every 2.
SHORT = dict(max_steps=6, save_steps=2, logging_steps=1, disable_tqdm=True)


@pytest.fixture(scope="module")
def rows():
    return data.split(data.load_alpaca(SMOKE), eval_size=8, seed=0)


def make(tiny_dir, rows, folder, train_rows=None, run_info=None, **overrides):
    """Return a smoke trainer on a freshly loaded tiny model, writing to folder."""
    model, tokenizer = loading.load_model(tiny_dir, SMOKE), loading.load_tokenizer(tiny_dir)
    return training.make_trainer(model, tokenizer, rows["train"] if train_rows is None else train_rows, rows["test"],
                                 preset="smoke", rt=SMOKE, output_dir=folder, run_info=run_info,
                                 **{**SHORT, **overrides})


def lora_weights(trainer) -> dict:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def poison(trainer, monkeypatch, when) -> None:
    """Make the trainer's loss NaN whenever when(trainer) is true (the backward pass then spreads it)."""
    real = trainer.compute_loss

    def compute_loss(*args, **kwargs):
        out = real(*args, **kwargs)
        if not when(trainer):
            return out
        if isinstance(out, tuple):
            return (out[0] * math.nan, *out[1:])
        return out * math.nan

    monkeypatch.setattr(trainer, "compute_loss", compute_loss)


class Disconnect(TrainerCallback):
    """Interrupt training at the end of one step, as a closed Colab tab would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("disconnected")


@pytest.mark.slow
def test_a_nan_loss_stops_a_real_run_within_one_logging_interval(tiny_dir, rows, tmp_path, monkeypatch):
    trainer = make(tiny_dir, rows, tmp_path, max_steps=30, logging_steps=5, save_steps=10)
    poison(trainer, monkeypatch, lambda t: t.state.global_step >= 6 and t.model.training)  # from step 7 on
    with pytest.raises(FloatingPointError) as err:
        training.train(trainer)
    assert trainer.state.global_step == 10  # the first log after step 7: no later step ran
    logged = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    assert logged[0][0] == 5 and math.isfinite(logged[0][1])
    assert logged[1][0] == 10 and math.isnan(logged[1][1])
    # Nothing finite was made up after the NaN: not a step loss, not the run's mean.
    assert [step for step, loss in logged if math.isfinite(loss)] == [5]
    assert all(not math.isfinite(h["train_loss"]) for h in trainer.state.log_history if "train_loss" in h)
    message = str(err.value)
    assert message.startswith("Training stopped at step 10: the training loss logged there is nan.")
    assert message.index("learning_rate") < message.index("max_grad_norm=0.3")
    assert "resume=False" in message and "embedding" not in message
    # No checkpoint of the broken weights (step 10 is a save step), and the run is not marked finished.
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == []
    assert json.loads((tmp_path / training.RUN_FILE).read_text())["finished"] is None
    assert not (tmp_path / "adapter").exists()
    # Nothing was kept, so following the advice in the same folder is not refused.
    calmer = make(tiny_dir, rows, tmp_path, max_steps=2, learning_rate=5e-3)
    training.train(calmer)
    assert calmer.state.global_step == 2


@pytest.mark.slow
def test_a_nan_eval_loss_is_logged_as_nan_and_caught(tiny_dir, rows, tmp_path, monkeypatch):
    trainer = make(tiny_dir, rows, tmp_path, per_device_eval_batch_size=2)
    calls = []
    # Only the second eval batch: transformers' default filter would drop it and report the others' mean.
    poison(trainer, monkeypatch, lambda t: calls.append(1) or len(calls) == 2)
    assert math.isnan(trainer.evaluate()["eval_loss"])
    assert training.guard(trainer).message.startswith("Training stopped at step 0: the eval loss logged there is nan")


def test_the_advice_fits_the_course_loading():
    t4 = training.sft_config("t4", "o", rt=Runtime("colab", "Tesla T4", 1, 15.0, (7, 5), torch.float16, "full",
                                                    {"": 0}))
    message = training.nonfinite_message("training loss", math.inf, 120, t4)
    assert message.startswith("Training stopped at step 120: the training loss logged there is inf.")
    order = [message.index(part) for part in ("learning_rate (now 0.0002; e.g. 0.0001 or 5e-05)",
                                              "max_grad_norm=0.3 (now 1.0)", "bnb_4bit_compute_dtype=torch.float32")]
    assert order == sorted(order)
    # load_model already keeps the unquantized weights in fp32 under fp16: that is not advice.
    assert "unquantized" not in message and "embedding" not in message
    smoke = training.sft_config("smoke", "o", rt=SMOKE)
    assert "fp16" not in training.nonfinite_message("eval loss", math.nan, 3, smoke)


@pytest.mark.slow
def test_resume_continues_a_disconnected_run_skips_a_finished_one_and_refuses_other_settings(
        tiny_dir, rows, tmp_path, capsys):
    folder = tmp_path / "run"
    first = make(tiny_dir, rows, folder)
    first.add_callback(Disconnect(step=3))
    with pytest.raises(KeyboardInterrupt):
        training.train(first)
    assert training.latest_checkpoint(folder) == str(folder / "checkpoint-2")

    resumed = make(tiny_dir, rows, folder)
    training.train(resumed)
    assert f"Resuming from {folder / 'checkpoint-2'}" in capsys.readouterr().out
    assert [step for step, _ in training.recorder(resumed).history] == [3, 4, 5, 6]
    trained = lora_weights(resumed)
    # The same run without the disconnect ends with the same bits.
    straight = make(tiny_dir, rows, tmp_path / "straight")
    training.train(straight)
    assert all(torch.equal(trained[n], w) for n, w in lora_weights(straight).items())

    # A rerun of the finished run trains nothing, says so, and hands back the trained adapter and history.
    files = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    again = make(tiny_dir, rows, folder)
    output = training.train(again)
    shown = capsys.readouterr().out
    assert f"Already trained: this run finished at step 6; its adapter is in {folder / 'adapter'}." in shown
    assert "Resuming" not in shown and output.global_step == again.state.global_step == 6
    assert all(torch.equal(trained[n], w) for n, w in lora_weights(again).items())
    history = training.recorder(again).history  # the whole run's, the steps before the disconnect included
    assert [step for step, _ in history] == [1, 2, 3, 4, 5, 6] and history[2:] == training.recorder(resumed).history
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == files

    # Other settings are refused before anything trains, naming what differs and the two ways out.
    for overrides, named in [
        (dict(learning_rate=5e-3), "learning_rate: 0.01 there, 0.005 now"),
        (dict(max_steps=8), "max_steps: 6 there, 8 now"),
        (dict(run_info={"DATA_LIMIT": 40}), "DATA_LIMIT: '(not set)' there, 40 now"),
        (dict(train_rows=rows["train"].select(range(40))), "training rows: "),
    ]:
        other = make(tiny_dir, rows, folder, **overrides)
        with pytest.raises(ValueError) as err:
            training.train(other)
        message = str(err.value)
        assert message.startswith(f"output_dir {folder} holds a run with other settings: ") and named in message
        assert "a new output_dir" in message and "resume=False" in message
        assert other.state.global_step == 0
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == files

    # resume=False starts over in the same folder, from step 1, and records the new settings.
    restart = make(tiny_dir, rows, folder, learning_rate=5e-3, max_steps=2)
    training.train(restart, resume=False)
    assert "Starting over in" in capsys.readouterr().out
    assert [step for step, _ in training.recorder(restart).history] == [1, 2]
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-2"]
    record = json.loads((folder / training.RUN_FILE).read_text())
    assert record["settings"]["learning_rate"] == 5e-3 and record["finished"]["step"] == 2
    # A finished run whose adapter was deleted says so instead of claiming it is trained.
    shutil.rmtree(folder / "adapter")
    with pytest.raises(FileNotFoundError, match="its adapter is gone .*resume=False"):
        training.train(make(tiny_dir, rows, folder, learning_rate=5e-3, max_steps=2))


@pytest.mark.slow
def test_checkpoints_without_a_record_are_not_resumed_blindly(tiny_dir, rows, tmp_path):
    (tmp_path / "checkpoint-4").mkdir()  # as an older course version left them
    with pytest.raises(ValueError, match="the settings of the run that saved checkpoint-4 were not recorded"):
        training.train(make(tiny_dir, rows, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["paged optimizer", "forward"])
def test_running_out_of_memory_in_a_real_run_says_what_to_shrink(where, tiny_dir, rows, tmp_path, monkeypatch):
    trainer = make(tiny_dir, rows, tmp_path, max_steps=1)
    if where == "paged optimizer":  # bitsandbytes reports a failed paged allocation as a plain RuntimeError
        def step(self, closure=None):
            raise RuntimeError("CUDA error: out of memory")

        # transformers builds paged_adamw_32bit from bitsandbytes.optim.AdamW(is_paged=True)
        monkeypatch.setattr(bnb.optim.AdamW, "step", step)
    else:
        def forward(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        monkeypatch.setattr(trainer, "compute_loss", forward)
    with pytest.raises(torch.OutOfMemoryError, match="Shrink, in this order: per_device_train_batch_size") as err:
        training.train(trainer)
    assert "out of memory" in str(err.value.__cause__)


def test_other_runtime_errors_are_not_called_out_of_memory(tiny_dir, rows, tmp_path, monkeypatch):
    trainer = make(tiny_dir, rows, tmp_path, max_steps=1)

    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(trainer, "compute_loss", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        training.train(trainer)


def test_the_merge_check_passes_a_finite_model_and_stops_an_overflowing_one(tiny_dir):
    model, tokenizer = loading.load_model(tiny_dir, SMOKE, for_training=False), loading.load_tokenizer(tiny_dir)
    prompts = [prompting.inference_prompt({"instruction": "Name a colour.", "input": ""}), "Hi"]
    largest = training.check_finite_logits(model, tokenizer, prompts)
    assert 0 < largest < 1e4 and tokenizer.padding_side == "right"
    with torch.no_grad():  # what fp16 overflow does to one layer's output
        model.model.norm.weight[0] = math.inf
    with pytest.raises(FloatingPointError, match=r"non-finite values .*Use the adapter on the 4-bit model"):
        training.check_finite_logits(model, tokenizer, prompts)
    assert tokenizer.padding_side == "right"


def test_the_guard_and_the_recorder_are_found_on_the_trainer(tiny_dir, rows, tmp_path):
    trainer = make(tiny_dir, rows, tmp_path)
    assert training.guard(trainer).message is None and training.recorder(trainer).history == []
    assert Path(trainer.args.output_dir) == tmp_path and not trainer.args.logging_nan_inf_filter
