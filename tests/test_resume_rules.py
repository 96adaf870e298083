"""The resume rules of training.train, each with a fast test, and one real smoke run that they refuse to mix with.

A run's fingerprint (RUN_FILE) holds everything that changes its result: the rows (answers included), the base model
(a rebuilt local one included) and its 4-bit settings, the trainer's and LoRA's settings. train() then:
- trains from scratch in an empty folder, or where a run stopped before its first checkpoint;
- resumes an interrupted run from its newest checkpoint when nothing differs, and refuses when anything does;
- refuses checkpoints whose settings were not recorded;
- hands back a finished run (checkpoints or none) when nothing differs, refuses it when anything does, and says so
  when its adapter is gone;
- with resume=False deletes the folder's checkpoints and adapter and starts over.
The NaN guard stops at the first NaN or inf (training or eval) loss; a preset overrides the post's settings and the
learner's overrides win over both. The fast tests replace only Trainer.train (no step runs); the rest is real.
"""

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from transformers import GemmaForCausalLM, TrainerControl, TrainerState
from transformers.trainer_utils import TrainOutput

from helpers import data, loading, training
from helpers.runtime import Runtime

SMOKE = Runtime("local", None, 0, None, None, torch.float32, "smoke", {"": "cpu"})
T4 = Runtime("colab", "Tesla T4", 1, 15.0, (7, 5), torch.float16, "full", {"": 0})
SHORT = dict(max_steps=2, save_steps=1, logging_steps=1, disable_tqdm=True)


@pytest.fixture(scope="module")
def rows():
    return data.split(data.load_alpaca(SMOKE, limit=40), eval_size=4, seed=0)


def make(tiny, rows, folder, train_rows=None, quantization_config=None, **overrides):
    """A smoke trainer on a freshly loaded 4-bit model from the folder `tiny`, writing to `folder`."""
    model = loading.load_model(str(tiny), SMOKE, quantization_config=quantization_config)
    return training.make_trainer(model, loading.load_tokenizer(str(tiny)),
                                 rows["train"] if train_rows is None else train_rows, rows["test"], preset="smoke",
                                 rt=SMOKE, output_dir=folder, **{**SHORT, **overrides})


def no_steps(trainer, monkeypatch) -> list:
    """Replace trainer.train by a stand-in that trains no step; return the checkpoints it was asked to resume from."""
    asked = []

    def fake_train(resume_from_checkpoint=None, **kwargs):
        asked.append(resume_from_checkpoint)
        trainer.state.global_step = 2
        trainer.state.log_history = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5},
                                     {"step": 2, "train_loss": 1.75}]
        return TrainOutput(2, 1.75, {"train_loss": 1.75})

    monkeypatch.setattr(trainer, "train", fake_train)
    return asked


def refused(trainer) -> str:
    """Return train()'s refusal of trainer, after checking it names the two ways out and trained nothing."""
    with pytest.raises(ValueError) as err:
        training.train(trainer)
    message = str(err.value)
    assert "holds a run with other settings" in message or "were not recorded" in message, message
    assert "a new output_dir" in message and "resume=False" in message
    assert trainer.state.global_step == 0
    return message


def finished_run(tiny, rows, folder, monkeypatch, **overrides):
    """Leave a finished run in folder (no step trained, adapter and record written as train() writes them)."""
    trainer = make(tiny, rows, folder, **overrides)
    no_steps(trainer, monkeypatch)
    training.train(trainer)
    record = json.loads((folder / training.RUN_FILE).read_text())
    assert record["finished"]["step"] == 2 and (folder / "adapter" / "adapter_model.safetensors").is_file()
    return trainer


def with_answers_changed(ds: Dataset) -> Dataset:
    """The same rows with the same instructions and inputs; only the last row's answer differs."""
    last = len(ds) - 1
    return ds.map(lambda row, i: {"output": row["output"] + " Indeed." if i == last else row["output"]},
                  with_indices=True)


def rebuild(tiny: Path, sample_sha256: str = "0" * 64) -> None:
    """Rebuild the tiny model in its own folder as tiny_gemma does from another recipe: new weights, new recipe."""
    model = GemmaForCausalLM.from_pretrained(tiny)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tiny)
    recipe = json.loads((tiny / loading.RECIPE).read_text())
    (tiny / loading.RECIPE).write_text(json.dumps({**recipe, "sample_sha256": sample_sha256}, indent=1))


# ----------------------------------------------------------------------------- the fingerprint's parts


def test_the_rows_hash_sees_every_column_of_the_template_and_only_those():
    ds = Dataset.from_list([{"instruction": "Name a colour.", "input": "", "output": "Blue."},
                            {"instruction": "Add 2 and 2.", "input": "", "output": "4"}])
    base = training.rows_hash(ds)
    assert base.startswith("2 rows, sha256 ") and training.rows_hash(Dataset.from_list(ds.to_list())) == base
    for column, value in (("output", "Red."), ("input", "Think."), ("instruction", "Name a fruit.")):
        changed = Dataset.from_list([{**ds[0], column: value}, ds[1]])
        assert training.rows_hash(changed) != base, f"a changed {column} left the hash as it was"
    assert training.rows_hash(with_answers_changed(ds)) != base
    # a column the template does not use changes nothing the model sees
    assert training.rows_hash(ds.add_column("category", ["open_qa", "math"])) == base


@pytest.mark.parametrize("settings, named", [
    (dict(double_quant=False), "quantization_config.bnb_4bit_use_double_quant"),
    (dict(quant_type="fp4"), "quantization_config.bnb_4bit_quant_type"),
])
def test_the_4bit_settings_are_part_of_the_models_identity(tiny_dir, settings, named):
    course = training._model_identity(loading.load_model(tiny_dir, SMOKE))
    other = training._model_identity(loading.load_model(
        tiny_dir, SMOKE, quantization_config=loading.bnb_config(SMOKE, **settings)))
    assert course["model"] == other["model"] and course["quantization_config.load_in_4bit"] is True
    assert [k for k in sorted(course) if course[k] != other.get(k)] == [named]


def test_a_local_model_rebuilt_under_the_same_folder_name_is_another_model(tiny_dir, tmp_path):
    def identity(folder):
        return training._model_identity(SimpleNamespace(config=SimpleNamespace(name_or_path=str(folder))))["model"]

    tiny = Path(shutil.copytree(tiny_dir, tmp_path / "tiny"))
    before = identity(tiny)
    assert before.startswith(f"{tiny} (course_recipe.json sha256 ")
    rebuild(tiny)
    assert identity(tiny) != before
    # a learner's own model folder (no course recipe): its config.json identifies it
    own = tmp_path / "own"
    own.mkdir()
    (own / "config.json").write_text(json.dumps({"hidden_size": 64}))
    first = identity(own)
    (own / "config.json").write_text(json.dumps({"hidden_size": 128}))
    assert identity(own) != first and first.startswith(f"{own} (config.json sha256 ")
    assert identity("google/gemma-2b") == "google/gemma-2b"  # a Hub name is its identity


def test_differences_name_settings_added_removed_and_changed():
    before = {"learning_rate": 0.01, "DATA_LIMIT": 40, "seed": 0}
    now = {"learning_rate": 0.005, "seed": 0, "EVAL_SIZE": 8}
    assert training._differences(before, now) == [
        "DATA_LIMIT: 40 there, '(not set)' now",
        "EVAL_SIZE: '(not set)' there, 8 now",
        "learning_rate: 0.01 there, 0.005 now",
    ]
    assert training._differences(before, dict(before)) == []


def test_a_preset_overrides_the_posts_settings_and_the_learners_overrides_win():
    post, smoke = training.POST_SETTINGS, training.PRESETS["smoke"]
    kwargs = training.sft_kwargs("smoke", "o", rt=SMOKE)
    assert kwargs["learning_rate"] == smoke["learning_rate"] != post["learning_rate"]
    assert kwargs["save_strategy"] == "steps" and post["save_strategy"] == "epoch"
    assert kwargs["gradient_accumulation_steps"] == post["gradient_accumulation_steps"]  # not in the preset
    mine = training.sft_kwargs("smoke", "o", rt=SMOKE, learning_rate=5e-3, max_steps=3, save_strategy="no")
    assert (mine["learning_rate"], mine["max_steps"], mine["save_strategy"]) == (5e-3, 3, "no")
    # the runtime's precision too: fp16 on a T4 unless the learner turns it off
    assert training.sft_kwargs("t4", "o", rt=T4)["fp16"]
    assert not training.sft_kwargs("t4", "o", rt=T4, fp16=False)["fp16"]
    assert training.sft_kwargs("t4_fast", "o", rt=T4, activation_checkpointing=True)["activation_checkpointing"]


# ----------------------------------------------------------------------------- the NaN guard


@pytest.mark.parametrize("logs, what", [
    ({"loss": math.nan}, "training loss"), ({"loss": math.inf}, "training loss"),
    ({"loss": -math.inf}, "training loss"), ({"eval_loss": math.nan}, "eval loss"),
    ({"eval_loss": math.inf}, "eval loss"), ({"loss": 1.5, "eval_loss": math.inf}, "eval loss"),
])
def test_the_guard_stops_at_the_first_nan_or_inf_loss_and_keeps_no_checkpoint(logs, what):
    guard, args = training.NonFiniteLossGuard(), training.sft_config("smoke", "o", rt=SMOKE)
    state, control = TrainerState(global_step=7), TrainerControl()
    guard.on_log(args, state, control, logs={"loss": 2.0, "learning_rate": 0.01})
    assert guard.message is None and not control.should_training_stop
    control.should_save = True  # a save step
    guard.on_log(args, state, control, logs=logs)
    assert control.should_training_stop and not control.should_save
    bad = next(v for v in logs.values() if not math.isfinite(v))
    assert guard.message.startswith(f"Training stopped at step 7: the {what} logged there is {bad}.")
    # and no later save: not at the step's end, not at the epoch's
    for hook in (guard.on_step_end, guard.on_epoch_end):
        control.should_save = True
        hook(args, state, control)
        assert not control.should_save


# ----------------------------------------------------------------------------- train()'s decisions, fast


def test_an_empty_folder_trains_from_scratch_and_records_the_run(tiny_dir, rows, tmp_path, monkeypatch):
    trainer = make(tiny_dir, rows, tmp_path)
    asked = no_steps(trainer, monkeypatch)
    training.train(trainer)
    assert asked == [None]
    record = json.loads((tmp_path / training.RUN_FILE).read_text())
    assert record["settings"] == training.run_fingerprint(trainer) and record["finished"]["step"] == 2


def test_an_interrupted_run_resumes_only_with_the_same_settings(tiny_dir, rows, tmp_path, monkeypatch, capsys):
    first = make(tiny_dir, rows, tmp_path)
    (tmp_path / "checkpoint-1").mkdir(parents=True)  # what the run had saved when the tab closed
    training._write_record(tmp_path, {"settings": training.run_fingerprint(first), "finished": None})
    assert "learning_rate: 0.01 there, 0.005 now" in refused(make(tiny_dir, rows, tmp_path, learning_rate=5e-3))
    same = make(tiny_dir, rows, tmp_path)
    asked = no_steps(same, monkeypatch)
    training.train(same)
    assert asked == [str(tmp_path / "checkpoint-1")] and "Resuming from" in capsys.readouterr().out


def test_a_run_that_stopped_before_its_first_checkpoint_is_not_resumed(tiny_dir, rows, tmp_path, monkeypatch):
    old = make(tiny_dir, rows, tmp_path, learning_rate=5e-3)
    training._write_record(tmp_path, {"settings": training.run_fingerprint(old), "finished": None})
    trainer = make(tiny_dir, rows, tmp_path)  # other settings, but nothing was kept to mix with
    asked = no_steps(trainer, monkeypatch)
    training.train(trainer)
    assert asked == [None]


def test_checkpoints_without_a_record_are_refused(tiny_dir, rows, tmp_path):
    (tmp_path / "checkpoint-4").mkdir()
    assert "the settings of the run that saved checkpoint-4 were not recorded" in refused(
        make(tiny_dir, rows, tmp_path))


def test_a_finished_run_without_checkpoints_is_handed_back_or_refused(tiny_dir, rows, tmp_path, monkeypatch, capsys):
    finished_run(tiny_dir, rows, tmp_path, monkeypatch, save_strategy="no")
    assert not list(tmp_path.glob("checkpoint-*"))
    # other settings: refused, though no checkpoint is there to mix with (its adapter is)
    assert "learning_rate: 0.01 there, 0.005 now" in refused(
        make(tiny_dir, rows, tmp_path, save_strategy="no", learning_rate=5e-3))
    assert "training rows: " in refused(
        make(tiny_dir, rows, tmp_path, save_strategy="no", train_rows=with_answers_changed(rows["train"])))
    assert "quantization_config.bnb_4bit_use_double_quant: True there, False now" in refused(make(
        tiny_dir, rows, tmp_path, save_strategy="no",
        quantization_config=loading.bnb_config(SMOKE, double_quant=False)))
    # the same settings: handed back, nothing trained
    again = make(tiny_dir, rows, tmp_path, save_strategy="no")
    asked = no_steps(again, monkeypatch)
    output = training.train(again)
    assert asked == [] and output.global_step == 2 and "Already trained" in capsys.readouterr().out
    assert training.recorder(again).history == [(1, 2.0), (2, 1.5)]


def test_a_finished_run_whose_adapter_is_gone_says_so(tiny_dir, rows, tmp_path, monkeypatch):
    finished_run(tiny_dir, rows, tmp_path, monkeypatch)
    shutil.rmtree(tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="its adapter is gone .*resume=False"):
        training.train(make(tiny_dir, rows, tmp_path))


def test_resume_false_deletes_the_old_run_and_starts_over(tiny_dir, rows, tmp_path, monkeypatch, capsys):
    finished_run(tiny_dir, rows, tmp_path, monkeypatch)
    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    trainer = make(tiny_dir, rows, tmp_path, learning_rate=5e-3)
    asked = no_steps(trainer, monkeypatch)
    training.train(trainer, resume=False)
    assert asked == [None] and "removed 1 earlier checkpoint(s)" in capsys.readouterr().out
    assert not (tmp_path / "checkpoint-1").exists() and (tmp_path / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / training.RUN_FILE).read_text())["settings"]["learning_rate"] == 5e-3


# ----------------------------------------------------------------------------- end to end: a real smoke run


@pytest.mark.slow
def test_a_real_finished_run_is_not_mixed_with_other_answers_quantization_or_a_rebuilt_model(
        tiny_dir, rows, tmp_path, capsys):
    tiny = Path(shutil.copytree(tiny_dir, tmp_path / "tiny-gemma-seed0"))
    folder = tmp_path / "run"
    first = make(tiny, rows, folder, save_strategy="no")  # finished, and no checkpoint left
    training.train(first)
    assert first.state.global_step == 2 and not list(folder.glob("checkpoint-*"))
    trained = {n: p.detach().clone() for n, p in first.model.named_parameters() if p.requires_grad}
    files = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}

    assert "training rows: " in refused(
        make(tiny, rows, folder, save_strategy="no", train_rows=with_answers_changed(rows["train"])))
    assert "quantization_config.bnb_4bit_quant_type: 'nf4' there, 'fp4' now" in refused(
        make(tiny, rows, folder, save_strategy="no", quantization_config=loading.bnb_config(SMOKE, quant_type="fp4")))
    assert "max_steps: 2 there, 3 now" in refused(make(tiny, rows, folder, save_strategy="no", max_steps=3))
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == files  # nothing touched

    # The same settings get the trained adapter back; after the model is rebuilt in its folder they are refused.
    again = make(tiny, rows, folder, save_strategy="no")
    assert training.train(again).global_step == 2 and "Already trained" in capsys.readouterr().out
    assert all(torch.equal(trained[n], p) for n, p in again.model.named_parameters() if p.requires_grad)
    rebuild(tiny)
    assert "model: " in refused(make(tiny, rows, folder, save_strategy="no"))
