"""`python -m helpers.train`: the post's optimizer step on one or two processes, and a two-process run on the CPU."""
import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import runtime, train, training

POST_TOKENS_PER_STEP = 2 * 2 * 512  # the post: batch 2 x accumulation 2 x max_seq_length 512
# Measured on one smoke epoch (86 blocks, 22 steps, lr 1e-2): the losses logged at steps 5, 10, 15 and 20 by one
# process (2 x 2) and by two (2 x 1 x 2) differed by 0.0003, 0.0020, 0.0024 and 0.0109 (each process draws its own
# LoRA dropout masks, and the difference grows with the steps), while the curve moved between 5.03 and 4.44.
LOSS_TOLERANCE = 0.03
FAKE_TOKEN = "hf_FAKE_not_a_real_token_train_0123456789"


def cpu_runtime() -> runtime.Runtime:
    """A GPU-less runtime in full mode, to build the t4 preset's config on this machine."""
    return runtime.Runtime("local", None, 0, None, None, torch.float32, "full", {"": "cpu"})


@pytest.mark.parametrize("gpus, batch, accumulation", [(1, 2, 2), (2, 2, 1)])
def test_the_optimizer_step_is_the_posts_on_one_or_two_gpus(gpus, batch, accumulation, tmp_path):
    settings = train.per_device_settings("t4", gpus)
    assert settings == dict(per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation)
    args = training.sft_config("t4", output_dir=tmp_path, rt=cpu_runtime(), **settings)
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * gpus
    assert per_step * args.max_length == POST_TOKENS_PER_STEP
    # The post's epoch of 6,001 packed blocks: the same number of optimizer steps on either.
    assert math.ceil(6001 / per_step) == math.ceil(6001 / 4) == 1501


def test_a_step_that_gpus_cannot_share_evenly_is_refused():
    with pytest.raises(ValueError, match="3 GPUs cannot share"):
        train.per_device_settings("t4", 3)
    with pytest.raises(ValueError, match="gpus must be a whole number"):
        train.per_device_settings("t4", 0)
    with pytest.raises(ValueError, match="preset must be one of"):
        train.per_device_settings("t5", 1)


def test_the_launch_command_is_accelerate_launch_with_the_options():
    cmd = train.command(2, preset="t4", max_steps=60, output_dir="/tmp/run", data_limit=None)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and "--multi_gpu" in cmd
    assert cmd[cmd.index("-m", 3):] == ["-m", "helpers.train", "--preset", "t4", "--max-steps", "60",
                                        "--output-dir", "/tmp/run"]
    assert "--multi_gpu" not in train.command(1)
    with pytest.raises(TypeError, match="unknown option"):
        train.command(1, max_seq_length=512)


def launched(gpus: int, folder) -> tuple[str, dict]:
    """Launch one smoke epoch of the sample in `gpus` processes; return what it printed and its train_run.json."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        adapter = train.launch(gpus, max_steps=-1, output_dir=folder)
    assert adapter == folder.resolve() / "adapter"
    return printed.getvalue(), json.loads((folder / "train_run.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same run in one process (2 x 2) and in two processes over gloo (2 x 1 x 2)."""
    folders = {n: tmp_path_factory.mktemp(f"run{n}") for n in (1, 2)}
    return {n: (folder, *launched(n, folder)) for n, folder in folders.items()}


@pytest.mark.slow
def test_two_processes_train_the_same_steps_and_tokens_per_step_as_one(runs):
    one, two = runs[1][2], runs[2][2]
    assert (two["processes"], two["per_device_train_batch_size"], two["gradient_accumulation_steps"]) == (2, 2, 1)
    assert (one["processes"], one["per_device_train_batch_size"], one["gradient_accumulation_steps"]) == (1, 2, 2)
    for run in (one, two):
        per_step = run["per_device_train_batch_size"] * run["gradient_accumulation_steps"] * run["processes"]
        assert per_step == 4 and run["steps"] == math.ceil(run["blocks"] / 4)
    assert one["blocks"] == two["blocks"] and one["steps"] == two["steps"] >= 10  # 53 blocks of the short sample


@pytest.mark.slow
def test_two_processes_follow_the_loss_curve_of_one(runs):
    one, two = runs[1][2]["losses"], runs[2][2]["losses"]
    assert [s for s, _ in one] == [s for s, _ in two] == [5, 10]  # a loss logged every 5 of the 14 steps
    for (step, a), (_, b) in zip(one, two):
        assert abs(a - b) <= LOSS_TOLERANCE, f"step {step}: one process {a:.4f}, two {b:.4f}"
    losses = [loss for _, loss in one]
    assert max(losses) - min(losses) > 10 * LOSS_TOLERANCE  # the curve moves far more than the tolerance


@pytest.mark.slow
def test_the_main_process_alone_writes_one_adapter_and_prints_the_progress(runs):
    folder, printed, _ = runs[2]
    adapters = sorted(p.parent for p in folder.rglob("adapter_model.safetensors") if "checkpoint-" not in str(p))
    assert adapters == [folder.resolve() / "adapter"]
    lines = printed.splitlines()
    assert lines[0].startswith("training 'smoke' on 2 process(es): 2 x 1 x 2 = 4 blocks of 128 tokens")
    steps = [line for line in lines if line.startswith("step ")]
    # One line per logged loss, from one process only.
    assert len(steps) == len(runs[2][2]["losses"]) and len(set(steps)) == len(steps)
    assert lines[-1] == f"adapter: {folder.resolve() / 'adapter'}"


@pytest.mark.slow
def test_a_failed_run_raises_with_its_last_lines(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)failed \(exit code [1-9].*limit must be a positive"):
        train.launch(1, data_limit=0, output_dir=tmp_path)


# Launched in place of `-m helpers.train`: the same entry point, with process 1's loss turned to NaN from step 3 on.
NAN_ON_RANK_1 = '''
import sys
from accelerate import PartialState
from helpers import train, training

make_trainer = training.make_trainer


def poisoned_trainer(*args, **kwargs):
    trainer = make_trainer(*args, **kwargs)
    if PartialState().process_index == 1:
        compute_loss = trainer.compute_loss

        def nan_loss(*a, **kw):
            loss = compute_loss(*a, **kw)
            return loss * float("nan") if trainer.state.global_step >= 3 else loss

        trainer.compute_loss = nan_loss
    return trainer


training.make_trainer = poisoned_trainer
sys.exit(train.main(sys.argv[1:]))
'''


@pytest.mark.slow
def test_a_nan_on_one_process_stops_both_at_the_same_logged_step(tmp_path):
    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(NAN_ON_RANK_1)
    cmd = train.command(2, max_steps=20, output_dir=tmp_path / "out")
    cmd[cmd.index("-m", 3):cmd.index("helpers.train") + 1] = [str(script)]
    env = dict(os.environ, PYTHONPATH=str(Path(train.__file__).resolve().parent.parent))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    # The logged loss is the mean over both processes, so both see the NaN at step 5 (the smoke preset logs every
    # 5 steps) and stop there; had only process 1 stopped, process 0 would wait for it forever (the timeout above).
    assert output.count("FloatingPointError: Training stopped at step 5") == 2, output[-3000:]
    assert not (tmp_path / "out" / "adapter").exists() and not list((tmp_path / "out").glob("checkpoint-*"))


class FakeRun:
    """Stands in for the launched subprocess: records its command and environment, prints the given lines."""

    def __init__(self, lines, returncode=0):
        self.lines, self.returncode, self.seen = lines, returncode, {}

    def __call__(self, cmd, env, **kwargs):
        self.seen.update(cmd=cmd, env=env)
        self.stdout = iter(line + "\n" for line in self.lines)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_launch_shows_only_the_progress_and_returns_the_adapter(monkeypatch, capsys):
    fake = FakeRun(["Loading weights: 100%", "training 't4' on 2 process(es): 2 x 1 x 2 = 4 blocks of 512 tokens",
                    "{'loss': 1.2}", "step 10/1792 loss 1.2345 (30 s)", "adapter: /runs/x/adapter"])
    monkeypatch.setattr(train.subprocess, "Popen", fake)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(train.auth, "hf_token", lambda: FAKE_TOKEN)
    assert train.launch(2, preset="t4") == Path("/runs/x/adapter")
    assert capsys.readouterr().out.splitlines() == fake.lines[1:2] + fake.lines[3:]
    # The token travels in the child's environment, never on its command line.
    assert fake.seen["env"]["HF_TOKEN"] == FAKE_TOKEN and not any("hf_" in c for c in fake.seen["cmd"])


def test_launch_without_an_adapter_line_fails_with_the_last_lines(monkeypatch):
    monkeypatch.setattr(train.subprocess, "Popen", FakeRun(["ValueError: something broke"], returncode=1))
    monkeypatch.setattr(train.auth, "hf_token", lambda: None)
    with pytest.raises(RuntimeError, match=r"(?s)failed \(exit code 1\).*ValueError: something broke"):
        train.launch(1)


# The preset's batch x accumulation on 1 to 8 GPUs: per GPU (batch, accumulation), or None when they cannot share it.
SHARES = {
    "t4": {1: (2, 2), 2: (2, 1), 4: (1, 1)},  # the post's 2 x 2
    "t4_b4": {1: (4, 1), 2: (2, 1), 4: (1, 1)},  # 4 x 1
    "smoke": {1: (2, 2), 2: (2, 1), 4: (1, 1)},
}


@pytest.mark.parametrize("preset", sorted(SHARES))
@pytest.mark.parametrize("gpus", range(1, 9))
def test_each_gpu_count_gets_the_presets_step_or_a_clear_refusal(preset, gpus):
    expected = SHARES[preset].get(gpus)
    if expected is None:
        with pytest.raises(ValueError, match=rf"{gpus} GPUs cannot share evenly: use gpus=1, 2 or 4"):
            train.per_device_settings(preset, gpus)
        return
    settings = train.per_device_settings(preset, gpus)
    assert (settings["per_device_train_batch_size"], settings["gradient_accumulation_steps"]) == expected
    preset_settings = {**training.POST_SETTINGS, **training.PRESETS[preset]}
    batch = preset_settings["per_device_train_batch_size"]
    # the same blocks per optimizer step, and never a bigger micro-batch (more memory) than the preset's own
    assert expected[0] * expected[1] * gpus == batch * preset_settings["gradient_accumulation_steps"]
    assert 1 <= expected[0] <= batch


@pytest.mark.parametrize("typed, read", [("1", 1), ("1.0", 1), ("200", 200), ("0.1", 0.1), ("0.5", 0.5), (None, None)])
def test_eval_size_on_the_command_line_is_a_row_count_from_1_and_a_fraction_below(typed, read):
    options = train._options([] if typed is None else ["--eval-size", typed])
    assert options.eval_size == read and type(options.eval_size) is type(read)


@pytest.mark.parametrize("typed", ["2.5", "0", "-1", "1.5"])
def test_an_eval_size_that_is_neither_is_refused_naming_the_option(typed, capsys):
    with pytest.raises(SystemExit):
        train._options(["--eval-size", typed])
    error = capsys.readouterr().err
    assert "--eval-size: pass a whole number of rows (1 or more) or a fraction between 0 and 1" in error
