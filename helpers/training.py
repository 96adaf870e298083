"""QLoRA training: the post's LoRA and trainer settings in today's trl API, checkpoints that survive, live loss."""

import difflib
import enum
import hashlib
import importlib.metadata
import json
import math
import os
import re
import shutil
import types
import typing
from dataclasses import fields
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import PreTrainedModel, PrinterCallback, ProgressCallback, Trainer, TrainerCallback
from transformers.trainer_utils import TrainOutput, get_last_checkpoint
from transformers.utils.notebook import NotebookProgressCallback
from trl import SFTConfig, SFTTrainer

from helpers.data import COLUMNS, check_columns, check_dataset
from helpers.language import pick
from helpers.prompting import check_tokenizer, format_prompt, left_padded
from helpers.runtime import Runtime, check_runtime, cpu_threads, detect

DRIVE = Path("/content/drive/MyDrive")
KAGGLE_WORKING = Path("/kaggle/working")
# The post's keywords that today's API renamed, so a learner who types them is told the new name.
RENAMED = {
    "evaluation_strategy": "eval_strategy",
    "warmup_ratio": "warmup_steps (a float below 1 is a ratio)",
    "max_seq_length": "max_length",
    "tokenizer": "processing_class (an SFTTrainer argument)",
}

# The post's run (section 9-10) in today's API, plus the paged optimizer. "wrapped" packing is the post's
# ConstantLengthDataset: all texts joined, then cut into blocks of max_length tokens.
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
    # Log each loss as it is: by default transformers replaces a NaN/inf step loss (and drops a NaN eval loss)
    # before logging it, which would hide exactly what NonFiniteLossGuard watches for.
    logging_nan_inf_filter=False,
)
PRESETS = {
    "t4": {},
    # The post's batches (2 x 2 accumulated, 4 x 512 tokens per optimizer step, so the same run) without
    # activation checkpointing, which recomputes every forward pass and dequantizes the 4-bit weights again.
    # On an H200 capped at 15 GB with fp16 compute: 1.69x the tokens/s of "t4", peak 8.1 GB instead of 3.8 GB
    # (benchmarks/results/NVIDIA_H200.json); not yet measured on a T4. Kept as it is until benchmarks/t4_qlora.py has
    # measured the variants below side by side on a GPU and picked the fastest under 12 GB (issue 15).
    "t4_fast": dict(activation_checkpointing=False),
    # Variants for that measurement, not yet measured: the post's 2,048 tokens per optimizer step as one micro-batch
    # of 4 blocks (each 4-bit weight dequantized once per 4 blocks instead of per 2), with and without checkpointing;
    # and Liger's Triton kernels for Gemma's RMSNorm, GeGLU and RoPE (`pip install liger-kernel`, CUDA only; trl 1.16
    # already fuses the LM head and the loss itself, and marks use_liger_kernel deprecated).
    "t4_b4": dict(per_device_train_batch_size=4, gradient_accumulation_steps=1),
    "t4_b4_fast": dict(per_device_train_batch_size=4, gradient_accumulation_steps=1, activation_checkpointing=False),
    "t4_liger": dict(use_liger_kernel=True),
    "t4_fast_liger": dict(activation_checkpointing=False, use_liger_kernel=True),
    "t4_b4_fast_liger": dict(per_device_train_batch_size=4, gradient_accumulation_steps=1,
                             activation_checkpointing=False, use_liger_kernel=True),
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
# The smoke run's adapter (notebook 05): on all seven linear layers of each block, as the QLoRA paper and its code
# do (docs/facts.md), r=16. On the 2-layer tiny model the post's q/k/v/o adapter hardly moves in 30 steps
# (measured: P(<eos>) after a held-out answer from 0.0003 to 0.002); this one lifts it to about 0.07.
SMOKE_LORA = dict(r=16, lora_alpha=16,
                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


# Settings that must be positive (> 0) or at least 0; max_steps is -1 (one epoch per num_train_epochs) or >= 1.
POSITIVE = {
    "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate",
    "num_train_epochs", "max_length", "logging_steps", "save_steps", "eval_steps", "max_grad_norm", "r",
    "lora_alpha",
}
NOT_NEGATIVE = {"warmup_steps", "weight_decay", "seed", "lora_dropout"}
# Where a run records its settings, and the SFTConfig values that do not change the trained weights (where and how
# often it logs, saves and evaluates), so changing them does not stop a run from resuming.
RUN_FILE = "course_run.json"
NOT_IN_FINGERPRINT = (
    "output_dir", "log", "save_", "eval_", "per_device_eval_batch_size", "report_to", "disable_tqdm", "run_name",
    "hub_", "push_to_hub", "resume_from_checkpoint", "overwrite_output_dir", "dataloader_", "include_", "project",
    "trackio", "skip_memory_metrics",
)
LORA_FINGERPRINT = (*LORA_SETTINGS, "use_rslora", "use_dora", "init_lora_weights", "modules_to_save", "rank_pattern",
                    "alpha_pattern", "layers_to_transform")
OOM_ADVICE = (
    "The GPU ran out of memory while training. Shrink, in this order: per_device_train_batch_size "
    "(raise gradient_accumulation_steps to keep the same effective batch), max_length, the LoRA r; turn "
    "activation_checkpointing=True back on if you turned it off (the t4_fast preset does); then restart "
    "the runtime so the failed run frees its memory."
)
OOM_ADVICE_KO = (
    "학습 중에 GPU 메모리가 부족합니다. 다음 순서로 줄이세요: per_device_train_batch_size(같은 유효 배치를 "
    "유지하려면 gradient_accumulation_steps를 늘리세요), max_length, LoRA의 r. activation_checkpointing을 껐다면 "
    "(t4_fast 프리셋이 끕니다) 다시 True로 켜세요. 그런 다음 런타임을 다시 시작해 실패한 학습이 잡은 메모리를 "
    "비우세요."
)


def _allowed(cls: type, name: str) -> tuple[set, tuple]:
    """Return (the choices, the plain types) the dataclass field cls.name accepts, from its metadata and type."""
    field = next(f for f in fields(cls) if f.name == name)
    kind = typing.get_type_hints(cls).get(name, field.type)
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    choices, plain = set(field.metadata.get("choices") or ()), []
    for t in typing.get_args(kind) if union else (kind,):
        if typing.get_origin(t) is typing.Literal:
            choices |= set(typing.get_args(t))
        elif isinstance(t, type) and issubclass(t, enum.Enum):
            choices |= {e.value for e in t}
        elif t in (bool, int, float, str, type(None)):
            plain.append(t)
    return choices, tuple(plain)


def _check_values(settings: dict, cls: type, where: str) -> None:
    """Raise a TypeError/ValueError naming the first setting whose value cls's field (or the course) refuses."""
    for key, value in settings.items():
        choices, plain = _allowed(cls, key)
        if value is None and type(None) in plain:
            continue
        if choices and (str in plain or not plain):
            if value not in choices:
                names = sorted(map(str, choices))
                close = difflib.get_close_matches(str(value), names, n=3)
                shown = f"{len(names)} known names (closest: {close})" if close and len(names) > 8 else names
                raise ValueError(f"{where}: {key} must be one of {shown}, got {value!r}.")
            continue
        numbers = (int,) if int in plain and float not in plain else (int, float)
        if bool in plain and int not in plain and float not in plain and not isinstance(value, bool):
            raise TypeError(f"{where}: {key} must be True or False, got {value!r}.")
        if int in plain or float in plain:
            if isinstance(value, bool) or not isinstance(value, numbers):
                kind = "a whole number" if numbers == (int,) else "a number"
                raise TypeError(f"{where}: {key} must be {kind}, got {type(value).__name__} {value!r}.")
            if key in POSITIVE and not value > 0:
                raise ValueError(f"{where}: {key} must be above 0, got {value!r}.")
            if key in NOT_NEGATIVE and not value >= 0:
                raise ValueError(f"{where}: {key} must be 0 or more, got {value!r}.")
            if key == "max_steps" and not (value == -1 or value >= 1):
                raise ValueError(
                    f"{where}: max_steps must be -1 (train num_train_epochs) or at least 1, got {value!r}."
                )
            if key == "lora_dropout" and not value < 1:
                raise ValueError(f"{where}: lora_dropout must be below 1 (a probability), got {value!r}.")


def _check_names(overrides: dict, cls: type, where: str) -> None:
    """Raise a TypeError naming any override that is not a field of the dataclass cls."""
    unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
    if unknown:
        hints = "".join(pick(f" '{k}' is now '{RENAMED[k]}'.", f" '{k}'은(는) 이제 '{RENAMED[k]}'입니다.")
                        for k in unknown if k in RENAMED)
        raise TypeError(pick(f"{where} got unknown setting(s) {unknown}: use {cls.__name__}'s field names.{hints}",
                             f"{where}가 모르는 설정 {unknown}: {cls.__name__}의 필드 이름을 쓰세요.{hints}"))


def lora_kwargs(**overrides) -> dict:
    """Return the keyword arguments lora_config passes to LoraConfig: the post's, then overrides."""
    _check_names(overrides, LoraConfig, "lora_config")
    _check_values(overrides, LoraConfig, "lora_config")
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


def _preset(preset: str | None, rt: Runtime) -> str:
    """Return preset, or when it is None the mode's own: "smoke" in smoke mode, else the post's "t4"."""
    return preset or ("smoke" if rt.mode == "smoke" else "t4")


def sft_kwargs(preset: str | None = None, output_dir: str | os.PathLike | None = None, rt: Runtime | None = None,
               **overrides) -> dict:
    """Return the keyword arguments sft_config passes to SFTConfig for a preset, runtime and overrides."""
    rt = check_runtime(rt) or detect()
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)} (or None: the mode's own), got {preset!r}.")
    preset = _preset(preset, rt)
    if output_dir is not None and (not isinstance(output_dir, (str, os.PathLike)) or not str(output_dir).strip()):
        raise TypeError(f"output_dir must be a folder path (str or Path) or None for the course's, got {output_dir!r}.")
    _check_names(overrides, SFTConfig, "sft_config")
    _check_values(overrides, SFTConfig, "sft_config")
    folder = output_dir if output_dir is not None else _course_output_dir(rt) / preset
    # Mixed precision follows the hardware: fp16 on a T4, bf16 from Ampere on, neither on a CPU.
    precision = dict(fp16=rt.dtype == torch.float16, bf16=rt.dtype == torch.bfloat16)
    return {**POST_SETTINGS, **PRESETS[preset], **precision, "output_dir": str(folder), **overrides}


def sft_config(preset: str | None = None, output_dir: str | os.PathLike | None = None, rt: Runtime | None = None,
               **overrides) -> SFTConfig:
    """Return the SFTConfig of a preset ("t4", "t4_fast", "smoke"; None: smoke or t4 by mode), with overrides."""
    rt = check_runtime(rt) or detect()
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


def nonfinite_message(what: str, value: float, step: int, args) -> str:
    """Return what the guard says when the loss `what` logged at `step` is `value` (NaN or inf)."""
    fp16 = bool(getattr(args, "fp16", False))
    lr, clip = getattr(args, "learning_rate", None), getattr(args, "max_grad_norm", None)
    advice = [f"a lower learning_rate (now {lr}; e.g. {lr / 2:g} or {lr / 4:g})" if lr else "a lower learning_rate",
              f"max_grad_norm=0.3 (now {clip}) to clip the large updates that come before a divergence"]
    if fp16:
        # The unquantized weights are fp32 already (loading.storage_dtype); what is left in fp16 is the 4-bit
        # layers' compute, which only bf16 or fp32 avoid.
        advice.append("compute in fp32: fp16=False and a BitsAndBytesConfig with bnb_4bit_compute_dtype="
                      "torch.float32 (slower, more memory); on a GPU with bf16 (Ampere or newer: A100, L4) the "
                      "course uses bf16 by itself")
    why = " In fp16, Gemma's activations can overflow." if fp16 else ""
    steps = "; ".join(f"{i}. {a}" for i, a in enumerate(advice, 1))
    advice_ko = [f"learning_rate 낮추기(지금 {lr}, 예: {lr / 2:g} 또는 {lr / 4:g})" if lr else "learning_rate 낮추기",
                 f"max_grad_norm=0.3(지금 {clip})으로 발산에 앞서 오는 큰 업데이트 자르기"]
    if fp16:
        advice_ko.append("fp32로 계산하기: fp16=False와 bnb_4bit_compute_dtype=torch.float32인 BitsAndBytesConfig"
                         "(느리고 메모리를 더 씁니다). bf16을 지원하는 GPU(Ampere 이후: A100, L4)에서는 코스가 알아서 "
                         "bf16을 씁니다")
    why_ko = " fp16에서는 Gemma의 활성값이 넘칠(overflow) 수 있습니다." if fp16 else ""
    steps_ko = "; ".join(f"{i}. {a}" for i, a in enumerate(advice_ko, 1))
    return pick(
        f"Training stopped at step {step}: the {what} logged there is {value}.{why} Try, in this order: {steps}. "
        "Then train again with a new output_dir or resume=False: this folder's checkpoints lead to the same "
        "divergence.",
        f"{step} 스텝에서 학습을 멈췄습니다: 거기서 기록된 {what}이(가) {value}입니다.{why_ko} 다음 순서로 해 "
        f"보세요: {steps_ko}. 그런 다음 새 output_dir로, 또는 resume=False로 다시 학습하세요. 이 폴더의 "
        "체크포인트에서 이어 가면 똑같이 발산합니다.")


class NonFiniteLossGuard(TrainerCallback):
    """Stop training at the first NaN or inf training or eval loss, keep no checkpoint of it, and keep a message."""

    def __init__(self):
        self.message: str | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key, what in (("loss", "training loss"), ("eval_loss", "eval loss")):
            value = (logs or {}).get(key)
            if self.message is None and value is not None and not math.isfinite(value):
                self.message = nonfinite_message(what, value, state.global_step, args)
        if self.message:
            control.should_training_stop = True
            control.should_save = False  # a checkpoint of broken weights would be what a rerun resumes from

    def on_step_end(self, args, state, control, **kwargs):
        if self.message:
            control.should_save = False

    on_epoch_end = on_step_end


def guard(trainer: SFTTrainer) -> NonFiniteLossGuard | None:
    """Return the trainer's NonFiniteLossGuard (its .message says why training stopped), or None."""
    return next((c for c in trainer.callback_handler.callbacks if isinstance(c, NonFiniteLossGuard)), None)


def rows_hash(ds) -> str:
    """Return a short description of ds's rows (count and a hash of the prompt template's columns)."""
    digest = hashlib.sha256()
    for batch in ds.select_columns(list(COLUMNS)).iter(batch_size=1000):
        digest.update(json.dumps(batch, sort_keys=True).encode())
    return f"{len(ds)} rows, sha256 {digest.hexdigest()[:12]}"


def _check_trainer_args(model, tokenizer, train_dataset, eval_dataset, peft_config, live, run_info) -> None:
    """Raise a TypeError/ValueError naming the first argument of make_trainer that cannot work."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a loaded model (loading.load_model(name, rt)), got {model!r:.80}.")
    if isinstance(model, PeftModel):
        raise TypeError("model must be the 4-bit base model from loading.load_model: it already has a LoRA adapter "
                        "(make_trainer adds one), so load it again.")
    check_tokenizer(tokenizer, needs="pad_token_id")
    check_columns(check_dataset(train_dataset, "train_dataset"))
    if eval_dataset is not None:
        check_columns(check_dataset(eval_dataset, "eval_dataset"))
    if peft_config is not None and not isinstance(peft_config, LoraConfig):
        raise TypeError(
            f"peft_config must be a LoraConfig (training.lora_config(...)) or None, got {peft_config!r:.80}."
        )
    targets = (peft_config or lora_config()).target_modules
    names = [n for n, _ in model.named_modules()]
    # peft reads a single string as a pattern ("all-linear", a regex): only a list of names can be checked here.
    missing = [] if isinstance(targets, str) or targets is None else sorted(
        t for t in targets if not any(n == t or n.endswith("." + t) for n in names))
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if hasattr(m, "weight")
                         and getattr(m.weight, "ndim", 0) == 2} - {"embed_tokens", "lm_head"})
        raise ValueError(
            f"peft_config: target_modules {missing} are not layers of this model; its layers are {linear}."
        )
    if not isinstance(live, bool):
        raise TypeError(f"live must be True (redraw a loss plot) or False, got {live!r}.")
    if run_info is not None:
        if not isinstance(run_info, dict) or not all(isinstance(k, str) for k in run_info):
            raise TypeError(
                f"run_info must be a dict with string keys, e.g. {{'DATA_LIMIT': 2000}}, got {run_info!r:.80}."
            )
        try:
            json.dumps(run_info)
        except TypeError as e:
            raise TypeError(f"run_info must hold plain values (numbers, strings, None, lists): {e}.") from None


def make_trainer(model, tokenizer, train_dataset, eval_dataset=None, preset: str | None = None,
                 output_dir: str | os.PathLike | None = None, rt: Runtime | None = None, peft_config=None,
                 live: bool = False, run_info: dict | None = None, **overrides) -> SFTTrainer:
    """Return an SFTTrainer for QLoRA: the post's template, LoRA and preset, a loss recorder and a NaN guard.

    run_info names the caller's settings that shaped the data (e.g. {"DATA_LIMIT": 2000, "EVAL_SIZE": 200}); with
    the rows' hashes and the trainer's own settings they are the run's fingerprint (see train).
    """
    _check_trainer_args(model, tokenizer, train_dataset, eval_dataset, peft_config, live, run_info)
    args = sft_config(preset, output_dir, rt, **overrides)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config or lora_config(),
        formatting_func=format_prompt,
        callbacks=[LossRecorder(live=live), NonFiniteLossGuard()],
    )
    # The course draws its own loss plot (live=True) and prints its own numbers: no progress bar and loss table
    # (NotebookProgressCallback in a notebook, tqdm's ProgressCallback elsewhere) and, with disable_tqdm=True, no
    # printed dict per log (PrinterCallback). A caller who wants one back: trainer.add_callback(ProgressCallback).
    for progress in (NotebookProgressCallback, ProgressCallback, PrinterCallback):
        trainer.remove_callback(progress)
    # trl 1.16 casts a quantized model's LoRA weights to bf16. Keep them in fp32, as peft creates them and the
    # post's run had them: a T4 has no bf16, small optimizer updates survive, and the saved adapter loads back
    # (peft loads adapters in fp32) to exactly the model that was trained.
    for param in trainer.model.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    rt = check_runtime(rt) or detect()
    # What train() cannot read off the trainer: the preset's name and the rows before trl tokenized them.
    trainer.run_info = {
        "preset": _preset(preset, rt),
        "training rows": rows_hash(train_dataset),
        "held-out rows": rows_hash(eval_dataset) if eval_dataset is not None else None,
        **(run_info or {}),
    }
    return trainer


def recorder(trainer: SFTTrainer) -> LossRecorder:
    """Return the trainer's LossRecorder (its .history holds (step, loss) pairs)."""
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be the trainer make_trainer returns, got a {type(trainer).__name__}.")
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
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a folder path (str or Path), e.g. trainer.args.output_dir, got {folder!r}.")
    return get_last_checkpoint(folder) if os.path.isdir(folder) else None


def course_version() -> str:
    """Return the installed course package's version ("unknown" when helpers runs from a plain checkout)."""
    try:
        return importlib.metadata.version("qlora-course-helpers")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _plain(value):
    """Return value as JSON can hold it (sets sorted, enums by value, the rest as text)."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value.value if isinstance(value, enum.Enum) else str(value)


def _model_identity(model) -> dict:
    """Return what identifies the base model: its name, and for a local folder the hash of its recipe/config."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    name = str(getattr(base.config, "name_or_path", ""))
    identity = {"model": name}
    for file in ("course_recipe.json", "config.json"):
        if os.path.isfile(os.path.join(name, file)):
            digest = hashlib.sha256(Path(name, file).read_bytes()).hexdigest()[:12]
            identity["model"] = f"{name} ({file} sha256 {digest})"
            break
    quant = getattr(base.config, "quantization_config", None)
    quant = quant.to_dict() if hasattr(quant, "to_dict") else quant or {}
    identity.update({f"quantization_config.{k}": v for k, v in quant.items() if k.startswith(("bnb_4bit", "load_in"))})
    return identity


def run_fingerprint(trainer: SFTTrainer) -> dict:
    """Return everything that changes a run's result: model, settings, LoRA, rows, run_info, course version."""
    settings = {k: v for k, v in trainer.args.to_dict().items() if not k.startswith(NOT_IN_FINGERPRINT)}
    lora = getattr(trainer.model, "peft_config", {}).get("default")
    lora = {f"lora_config.{k}": v for k, v in (lora.to_dict() if lora else {}).items() if k in LORA_FINGERPRINT}
    every = {"course version": course_version(), **_model_identity(trainer.model), **settings, **lora,
             **getattr(trainer, "run_info", {})}
    return json.loads(json.dumps(every, default=_plain, sort_keys=True))


def _differences(before: dict, now: dict) -> list[str]:
    """Return one "name: old there, new now" line for each setting that differs."""
    missing = "(not set)"
    return [f"{k}: {before.get(k, missing)!r} there, {now.get(k, missing)!r} now"
            for k in sorted(set(before) | set(now)) if before.get(k, missing) != now.get(k, missing)]


def _start_over(folder: Path) -> int:
    """Delete the folder's checkpoints, adapter and run record; return how many checkpoints went."""
    checkpoints = [p for p in folder.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    for path in [*checkpoints, folder / "adapter"]:
        shutil.rmtree(path, ignore_errors=True)
    (folder / RUN_FILE).unlink(missing_ok=True)
    return len(checkpoints)


def _restore_finished(trainer: SFTTrainer, folder: Path, finished: dict) -> TrainOutput:
    """Load a finished run's adapter and history into trainer, and say so; return its TrainOutput."""
    adapter = folder / finished["adapter"]
    if not (adapter / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(pick(
            f"This run finished at step {finished['step']}, but its adapter is gone from {adapter}: pass "
            "resume=False to train it again, or use a new output_dir.",
            f"이 학습은 {finished['step']} 스텝에서 끝났지만 어댑터가 {adapter}에 없습니다. 다시 학습하려면 "
            "resume=False를 넘기거나 새 output_dir를 쓰세요."
        ))
    set_peft_model_state_dict(trainer.model, load_file(adapter / "adapter_model.safetensors"))
    trainer.state.global_step = finished["step"]
    trainer.state.log_history = finished["log_history"]
    losses = recorder(trainer)
    losses.history = [(h["step"], h["loss"]) for h in finished["log_history"] if "loss" in h]
    print(pick(f"Already trained: this run finished at step {finished['step']}; its adapter is in {adapter}. Nothing "
               "to train (a new output_dir or resume=False trains again).",
               f"이미 학습했습니다: 이 학습은 {finished['step']} 스텝에서 끝났고 어댑터는 {adapter}에 있습니다. 더 "
               "학습할 것이 없습니다(새 output_dir나 resume=False로 다시 학습합니다)."))
    summary = next((h for h in reversed(finished["log_history"]) if "train_loss" in h), {})
    return TrainOutput(finished["step"], summary.get("train_loss"), summary)


def _is_out_of_memory(error: BaseException) -> bool:
    """Tell whether error is running out of GPU memory, whatever class it surfaced as."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def _write_record(folder: Path, record: dict) -> None:
    """Write the run's record whole or not at all (a disconnect mid-write must not leave half a file)."""
    scratch = folder / (RUN_FILE + ".tmp")
    scratch.write_text(json.dumps(record, indent=1))
    scratch.replace(folder / RUN_FILE)


def train(trainer: SFTTrainer, resume: bool = True) -> TrainOutput:
    """Train (one thread on a CPU), resuming an interrupted run with the same settings; see the docs below.

    The output folder records the run's fingerprint (RUN_FILE). A finished run with the same settings trains
    nothing and loads its adapter; other settings are refused (new output_dir, or resume=False to start over).
    A NaN/inf loss raises FloatingPointError with advice; running out of GPU memory says what to shrink.
    """
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be the trainer make_trainer returns, got a {type(trainer).__name__}.")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True (continue this folder's run) or False (start over), got {resume!r}.")
    folder = Path(trainer.args.output_dir)
    settings, main = run_fingerprint(trainer), trainer.is_world_process_zero()
    checkpoint = None
    if not resume:
        removed = _start_over(folder) if main else 0
        if removed:
            print(pick(f"Starting over in {folder} (resume=False): removed {removed} earlier checkpoint(s).",
                       f"{folder}에서 처음부터 다시 학습합니다(resume=False): 이전 체크포인트 {removed}개를 "
                       "지웠습니다."))
    else:
        record = json.loads((folder / RUN_FILE).read_text()) if (folder / RUN_FILE).is_file() else None
        checkpoint = latest_checkpoint(folder)
        if record is None and checkpoint:
            differ = [f"the settings of the run that saved {Path(checkpoint).name} were not recorded"]
        elif record and (checkpoint or record.get("finished")):
            differ = _differences(record["settings"], settings)
        else:  # no run here, or one that stopped before its first checkpoint: nothing to mix with
            differ = []
        if differ:
            listed = f"{'; '.join(differ[:8])}{'; ...' if len(differ) > 8 else ''}"
            raise ValueError(pick(
                f"output_dir {folder} holds a run with other settings: {listed}. Resuming would mix the two runs. "
                "Either use a new output_dir (make_trainer(..., output_dir=...)), or pass resume=False to train() "
                "to start over there (this deletes its checkpoints and adapter).",
                f"output_dir {folder}에 설정이 다른 학습이 있습니다: {listed}. 이어서 학습하면 두 학습이 섞입니다. "
                "새 output_dir를 쓰거나(make_trainer(..., output_dir=...)), train()에 resume=False를 넘겨 그 "
                "폴더에서 처음부터 다시 학습하세요(그 폴더의 체크포인트와 어댑터를 지웁니다)."
            ))
        if record and record.get("finished"):
            return _restore_finished(trainer, folder, record["finished"])
        if checkpoint:
            print(pick(f"Resuming from {checkpoint} (same settings; resume=False or a new output_dir starts over).",
                       f"{checkpoint}에서 이어서 학습합니다(설정이 같습니다. resume=False나 새 output_dir로 처음부터 "
                       "다시 할 수 있습니다)."))
    # Under a multi-GPU launch every process has read the record above before the main process rewrites it.
    trainer.accelerator.wait_for_everyone()
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        _write_record(folder, {"settings": settings, "finished": None})
    try:
        with cpu_threads(trainer.args.device):
            output = trainer.train(resume_from_checkpoint=checkpoint)
    except RuntimeError as e:  # torch.OutOfMemoryError is one; the paged optimizer's is a plain RuntimeError
        if _is_out_of_memory(e):
            raise torch.OutOfMemoryError(pick(OOM_ADVICE, OOM_ADVICE_KO)) from e
        raise
    stopped = guard(trainer)
    if stopped and stopped.message:
        raise FloatingPointError(stopped.message)
    if main:
        trainer.model.save_pretrained(folder / "adapter")
        finished = {"step": trainer.state.global_step, "adapter": "adapter", "log_history": trainer.state.log_history}
        _write_record(folder, {"settings": settings, "finished": finished})
    return output


def check_finite_logits(model: PreTrainedModel, tokenizer, prompts: str | list[str]) -> float:
    """Return the largest |next-token score| of model on prompts; raise FloatingPointError if any is NaN/inf."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a loaded model (e.g. the merged one), got {model!r:.80}.")
    check_tokenizer(tokenizer)
    prompts = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be a string or a non-empty list of strings, got {prompts!r:.80}.")
    with left_padded(model, tokenizer):
        batch = tokenizer(list(prompts), return_tensors="pt", padding=True).to(model.device)
        logits = model(**batch).logits[:, -1].float()
    bad = int((~torch.isfinite(logits)).sum())
    if bad:
        raise FloatingPointError(pick(
            f"The model's next-token scores contain {bad} non-finite values (nan/inf): in fp16, Gemma's activations "
            "overflowed, so this model's answers are garbage. Use the adapter on the 4-bit model instead (it is "
            "saved and works), or merge onto a base loaded in bf16 (a GPU of Ampere or newer) or in fp32 "
            "(dtype=torch.float32, about 10 GB of memory for Gemma-2B).",
            f"모델의 다음 토큰 점수에 유한하지 않은 값(nan/inf)이 {bad}개 있습니다. fp16에서 Gemma의 활성값이 "
            "넘쳤으니 이 모델의 답은 믿을 수 없습니다. 대신 4비트 모델에 어댑터를 얹어 쓰거나(어댑터는 저장되어 있고 "
            "잘 작동합니다), bf16(Ampere 이후 GPU)이나 fp32(dtype=torch.float32, Gemma-2B는 메모리 약 10 GB)로 "
            "불러온 베이스 모델에 병합하세요."
        ))
    return logits.abs().max().item()


def find_run(rt: Runtime | None = None, folder: str | os.PathLike | None = None) -> tuple[Path, dict] | None:
    """Return (folder, record) of the newest finished run that notebook 05 saved for this mode, or None.

    It looks in folder, or else in output_dir(rt) (Drive on Colab when mounted, /kaggle/working on Kaggle, else
    local outputs) and its sub-folders one level down (05 trains into <output_dir>/<preset>, two GPUs into
    <output_dir>/<preset>-2gpus). In smoke mode only runs of the "smoke" preset count, on a GPU only the others.
    """
    rt = check_runtime(rt) or detect()
    if folder is not None and not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a folder path (str or Path) or None for the course's, got {folder!r}.")
    root = Path(folder) if folder is not None else output_dir(rt)
    found = []
    for path in [root / RUN_FILE, *sorted(root.glob(f"*/{RUN_FILE}"))] if root.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a half-written or foreign file is not a finished run
        finished = record.get("finished") if isinstance(record, dict) else None
        smoke = record.get("settings", {}).get("preset") == "smoke" if finished else None
        if finished and smoke == (rt.mode == "smoke") and (path.parent / finished["adapter"]).is_dir():
            found.append((path.stat().st_mtime, path.parent, record))
    if not found:
        return None
    _, where, record = max(found, key=lambda item: item[0])
    return where, record
