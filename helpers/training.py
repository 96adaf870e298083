"""QLoRA training: the post's LoRA and trainer settings in today's trl API, checkpoints that survive, live loss."""

import json
import math
import os
from dataclasses import fields
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig, SFTTrainer

from helpers.data import check_columns
from helpers.prompting import format_prompt
from helpers.runtime import Runtime, cpu_threads, detect

DRIVE = Path("/content/drive/MyDrive")
KAGGLE_WORKING = Path("/kaggle/working")
# The post's keywords that today's API renamed, so a learner who types them is told the new name.
RENAMED = {
    "evaluation_strategy": "eval_strategy",
    "warmup_ratio": "warmup_steps (a float below 1 is a ratio)",
    "max_seq_length": "max_length",
    "tokenizer": "processing_class (an SFTTrainer argument)",
}

# The post's run (section 9-10) in today's API, plus the paged optimizer. "wrapped" packing is the post's ConstantLengthDataset:
# all texts joined, then cut into blocks of max_length tokens.
POST_SETTINGS = dict(
    per_device_train_batch_size=2,
    gradient_accumulation_steps=2,
    num_train_epochs=1,
    learning_rate=2e-4,
    lr_scheduler_type="cosine",
    warmup_steps=0.1,
    # The post's gradient_checkpointing(_kwargs): transformers 5 renamed it, the old name only warns.
    activation_checkpointing=True,
    activation_checkpointing_kwargs={"use_reentrant": False},
    packing=True,
    packing_strategy="wrapped",
    max_length=512,
    # Not in the post, which left the default AdamW: QLoRA's paged optimizer (the paper's and this course's
    # choice). Notebook 04 shows that at r=8 its state is too small to be paged at all.
    optim="paged_adamw_32bit",
    logging_strategy="steps",
    logging_steps=10,
    save_strategy="epoch",
    eval_strategy="no",
    report_to="none",
)
PRESETS = {
    "t4": {},
    # The post's batches (2 x 2 accumulated, 4 x 512 tokens per optimizer step, so the same run) without
    # activation checkpointing, which recomputes every forward pass and dequantizes the 4-bit weights again.
    # On an H200 capped at 15 GB with fp16 compute: 1.69x the tokens/s of "t4", peak 8.1 GB instead of 3.8 GB
    # (benchmarks/results/NVIDIA_H200.json); not yet measured on a T4.
    "t4_fast": dict(activation_checkpointing=False),
    # The same shape for the tiny model on a CPU: a few dozen short steps, a loss logged every 5, a
    # checkpoint every 10 steps (so resuming can be tried), and a learning rate a random model notices.
    "smoke": dict(
        max_steps=30,
        max_length=128,
        learning_rate=1e-2,
        logging_steps=5,
        save_strategy="steps",
        save_steps=10,
        use_cpu=True,
    ),
}
LORA_SETTINGS = dict(
    r=8,
    lora_alpha=8,
    lora_dropout=0.1,
    bias="none",
    task_type="CAUSAL_LM",
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
)


def _check_names(overrides: dict, cls: type, where: str) -> None:
    """Raise a TypeError naming any override that is not a field of the dataclass cls."""
    unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
    if unknown:
        hints = "".join(f" '{k}' is now '{RENAMED[k]}'." for k in unknown if k in RENAMED)
        raise TypeError(f"{where} got unknown setting(s) {unknown}: use {cls.__name__}'s field names.{hints}")


def lora_kwargs(**overrides) -> dict:
    """Return the keyword arguments lora_config passes to LoraConfig: the post's, then overrides."""
    _check_names(overrides, LoraConfig, "lora_config")
    return {**LORA_SETTINGS, **overrides}


def lora_config(**overrides) -> LoraConfig:
    """Return the post's LoRA config (r=8, alpha=8, dropout 0.1, q/k/v/o projections), with overrides."""
    return LoraConfig(**lora_kwargs(**overrides))


def output_dir(rt: Runtime | None = None) -> Path:
    """Return where checkpoints go: Drive on Colab if mounted, /kaggle/working on Kaggle, else local."""
    rt = rt or detect()
    if rt.platform == "colab" and DRIVE.is_dir():
        return DRIVE / "qlora-course"
    if rt.platform == "kaggle":
        return KAGGLE_WORKING / "qlora-course"
    return Path(os.environ.get("COURSE_OUTPUT_DIR") or "outputs")


_course_output_dir = output_dir  # the functions below take a parameter named output_dir


def sft_kwargs(preset: str | None = None, output_dir: str | os.PathLike | None = None, rt: Runtime | None = None,
               **overrides) -> dict:
    """Return the keyword arguments sft_config passes to SFTConfig for a preset, runtime and overrides."""
    rt = rt or detect()
    preset = preset or ("smoke" if rt.mode == "smoke" else "t4")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)} (or None: the mode's own), got {preset!r}.")
    _check_names(overrides, SFTConfig, "sft_config")
    folder = output_dir if output_dir is not None else _course_output_dir(rt) / preset
    # Mixed precision follows the hardware: fp16 on a T4, bf16 from Ampere on, neither on a CPU.
    precision = dict(fp16=rt.dtype == torch.float16, bf16=rt.dtype == torch.bfloat16)
    return {**POST_SETTINGS, **PRESETS[preset], **precision, "output_dir": str(folder), **overrides}


def sft_config(preset: str | None = None, output_dir: str | os.PathLike | None = None, rt: Runtime | None = None,
               **overrides) -> SFTConfig:
    """Return the SFTConfig of a preset ("t4", "t4_fast", "smoke"; None: smoke or t4 by mode), with overrides."""
    rt = rt or detect()
    config = SFTConfig(**sft_kwargs(preset, output_dir, rt, **overrides))
    if rt.gpu_count > 1 and rt.device_map == {"": 0}:
        # transformers multiplies the batch by every visible GPU, but a 4-bit model pinned to GPU 0 never gets
        # DataParallel: on Kaggle's two T4s GPU 0 would take batches of 4. Count the one GPU the model uses.
        _ = config.device  # devices are set up lazily; set them up now so the count below sticks
        config._n_gpu = 1
    return config


class LossRecorder(TrainerCallback):
    """Record (step, loss) at each log; with live=True redraw a loss plot in the notebook as it trains."""

    def __init__(self, live: bool = False):
        self.history: list[tuple[int, float]] = []
        self.live = live
        self._figure = self._handle = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.history.append((state.global_step, float(logs["loss"])))
            if self.live:
                self._redraw()

    def _redraw(self) -> None:
        """Draw the losses so far into one notebook output that is updated in place."""
        import matplotlib.pyplot as plt
        from IPython.display import DisplayHandle

        if self._figure is None:
            self._figure, _ = plt.subplots(figsize=(6, 3))
            self._handle = DisplayHandle()
            self._handle.display(self._figure)
        ax = self._figure.axes[0]
        ax.clear()
        ax.plot(*zip(*self.history), marker=".")
        ax.set(xlabel="step", ylabel="training loss", title="Training loss")
        self._handle.update(self._figure)

    def on_train_end(self, args, state, control, **kwargs):
        if self._figure is not None:
            import matplotlib.pyplot as plt

            # The display handle keeps the last drawing; closing stops the figure being shown a second time.
            plt.close(self._figure)
            self._figure = None


class NonFiniteLossGuard(TrainerCallback):
    """Stop training at the first NaN or inf loss and say what to change."""

    def __init__(self):
        self.message: str | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.message = (
                f"Training stopped: the loss became {loss} at step {state.global_step}. In fp16, Gemma's "
                "activations can overflow. Try, in order: bf16 instead of fp16 if the GPU supports it (Ampere or "
                "newer: A100, L4); a lower learning_rate (e.g. 1e-4 or 5e-5); max_grad_norm=0.3; and keep the "
                "unquantized weights (embedding, norms) in fp32, as load_model does under fp16."
            )
            print(self.message)
            control.should_training_stop = True


def make_trainer(model, tokenizer, train_dataset, eval_dataset=None, preset: str | None = None,
                 output_dir: str | os.PathLike | None = None, rt: Runtime | None = None, peft_config=None,
                 live: bool = False, **overrides) -> SFTTrainer:
    """Return an SFTTrainer for QLoRA: the post's template, LoRA and preset, a loss recorder and a NaN guard."""
    check_columns(train_dataset)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(preset, output_dir, rt, **overrides),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config or lora_config(),
        formatting_func=format_prompt,
        callbacks=[LossRecorder(live=live), NonFiniteLossGuard()],
    )
    # trl 1.16 casts a quantized model's LoRA weights to bf16. Keep them in fp32, as peft creates them and the
    # post's run had them: a T4 has no bf16, small optimizer updates survive, and the saved adapter loads back
    # (peft loads adapters in fp32) to exactly the model that was trained.
    for param in trainer.model.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    return trainer


def recorder(trainer: SFTTrainer) -> LossRecorder:
    """Return the trainer's LossRecorder (its .history holds (step, loss) pairs)."""
    return next(c for c in trainer.callback_handler.callbacks if isinstance(c, LossRecorder))


def benchmark_reports() -> list[dict]:
    """Return the T4 benchmark's reports (benchmarks/t4_qlora.py), from the package or the repository."""
    here = Path(__file__).resolve().parent
    # An installed wheel carries them next to this file; a checkout keeps them in benchmarks/results.
    for folder in (here / "benchmark_results", here.parent / "benchmarks" / "results"):
        if folder.is_dir():
            return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return []


def latest_checkpoint(folder: str | os.PathLike) -> str | None:
    """Return the newest checkpoint-N folder inside folder, or None when there is none."""
    return get_last_checkpoint(folder) if os.path.isdir(folder) else None


def train(trainer: SFTTrainer, resume: bool = True):
    """Train (one thread on a CPU), resuming from the newest checkpoint in the output folder when there is one."""
    checkpoint = latest_checkpoint(trainer.args.output_dir) if resume else None
    if checkpoint:
        print(f"Resuming from {checkpoint} (pass resume=False or use a new output_dir to start over).")
    try:
        with cpu_threads(trainer.args.device):
            return trainer.train(resume_from_checkpoint=checkpoint)
    except torch.OutOfMemoryError as e:
        raise torch.OutOfMemoryError(
            "The GPU ran out of memory while training. Shrink, in this order: per_device_train_batch_size "
            "(raise gradient_accumulation_steps to keep the same effective batch), max_length, the LoRA r; turn "
            "activation_checkpointing=True back on if you turned it off (the t4_fast preset does); then restart "
            "the runtime so the failed run frees its memory."
        ) from e
