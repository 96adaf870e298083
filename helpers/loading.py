"""Loading the model in 4 bit and its tokenizer, and the offline tiny Gemma that smoke mode trains."""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import datasets
import torch
from datasets import Dataset
from datasets.utils import logging as datasets_logging
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    GemmaConfig,
    GemmaForCausalLM,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as transformers_logging

from helpers.auth import GatedModelError, hf_token, is_auth_error
from helpers.data import DATASETS, sample_path
from helpers.language import pick
from helpers.prompting import format_prompt
from helpers.runtime import HUB_MODEL, Runtime, check_runtime, course_model, cpu_threads, detect

GEMMA = HUB_MODEL
QUANT_TYPES = ("nf4", "fp4")
# Gemma's special-token ids (pad 0, eos 1, bos 2, unk 3), kept in the tiny model too.
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]
# Big enough that an English word is about one token and a Korean word two (measured on the samples: a median answer
# of 23 tokens in English and 18 in Korean), so a short answer fits in notebook 06's 40 smoke tokens.
TINY_VOCAB = 4096
# GPT-2's word split (a word keeps the space before it), except that newlines stick to the word or punctuation they
# follow: "Response\n" (the prompt's end) and ".\n" (an answer's end) are different tokens, as they are in a large
# model's context, so a 2-layer model can tell where an answer may end from the last token alone.
TINY_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+\n*| ?\p{N}+\n*| ?[^\s\p{L}\p{N}]+\n*|\s+(?!\S)|\s+"
# google/gemma-2b's config.json (docs/facts.md), so its shapes can be used without a download.
GEMMA_2B_SHAPE = dict(
    vocab_size=256_000,
    hidden_size=2048,
    intermediate_size=16_384,
    num_hidden_layers=18,
    num_attention_heads=8,
    num_key_value_heads=1,
    head_dim=256,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
)
RECIPE = "course_recipe.json"
# The committed tiny model's folder: data/tiny_gemma in the repository, helpers/tiny_gemma in the wheel.
TINY_FOLDER = "tiny_gemma"
# Gemma-2B's shape (1 KV head, tied embeddings, GeGLU MLP 8x hidden) shrunk to two small layers.
TINY_SHAPE = dict(
    hidden_size=64,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=1,
    head_dim=16,
    max_position_embeddings=512,
    tie_word_embeddings=True,
    # Wider than Gemma's 0.02, so that the tied output embedding can move the loss within a few dozen steps.
    initializer_range=0.1,
)
# The pre-training that scripts/build_tiny_model.py runs once (a few minutes on two CPU cores) before committing the
# weights in data/tiny_gemma: the samples' plain text, one language per document, many reshuffled copies of each
# sample's rows run together as paragraphs (instruction, input, answer), the <eos> only at a document's end after a
# blank line. So the model writes words of the prompt's language and knows <eos>, yet an answer never ends with it:
# before notebook 05 the base model goes on after a sentence instead of stopping, as a real base model does.
# The rows notebook 05 holds out (its split: EVAL_SIZE 8, seed 0) are left out, so notebook 06 scores text the
# model never saw.
TINY_PRETRAIN = dict(steps=800, batch=8, block=128, learning_rate=5e-3, warmup=0.05, copies=60, held_out=8,
                     split_seed=0)



def gemma_2b_config() -> GemmaConfig:
    """Return Gemma-2B's config, built locally: its shapes without a download or a token."""
    return GemmaConfig(**GEMMA_2B_SHAPE)


def bnb_kwargs(rt: Runtime | None = None, double_quant: bool = True, quant_type: str = "nf4") -> dict:
    """Return the keyword arguments bnb_config passes to BitsAndBytesConfig."""
    if quant_type not in QUANT_TYPES:
        raise ValueError(f"quant_type must be one of {QUANT_TYPES}, got {quant_type!r}.")
    if not isinstance(double_quant, bool):
        raise TypeError(f"double_quant must be True or False, got {double_quant!r}.")
    rt = check_runtime(rt) or detect()
    return dict(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=rt.dtype,
    )


def bnb_config(rt: Runtime | None = None, double_quant: bool = True, quant_type: str = "nf4") -> BitsAndBytesConfig:
    """Return the 4-bit config: NF4 weights, double-quantized constants, the runtime's compute dtype."""
    return BitsAndBytesConfig(**bnb_kwargs(rt, double_quant, quant_type))


def storage_dtype(rt: Runtime) -> torch.dtype:
    """Return the dtype of the weights bitsandbytes leaves unquantized (embedding, norms): bf16 or fp32."""
    # fp32 under fp16 compute, as the post's run had it: 2024 transformers loaded a 4-bit model's other weights
    # in fp16 when no dtype was given, and trl 0.7.x's SFTTrainer then called peft's
    # prepare_model_for_kbit_training on every 4-bit model, which cast every unquantized weight (embedding,
    # norms) to fp32. trl 1.16's SFTTrainer no longer calls it (trl/trainer/sft_trainer.py), so the course sets
    # the dtype itself. The fp32 embedding keeps the residual stream in fp32 under fp16 autocast, where Gemma's
    # activations can overflow.
    return torch.bfloat16 if rt.dtype == torch.bfloat16 else torch.float32


def _check_name(name) -> str:
    """Return name as a string if it can name a model (a Hub id or an existing folder), else raise."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name.strip():
        raise TypeError(
            "name must be a Hub model id such as 'google/gemma-2b' or a model folder (loading.model_name(rt) gives "
            f"the course's), got {name!r:.80}."
        )
    # A Hub id is "org/name": anything else that is not a folder here is a folder that does not exist.
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_like_path and not os.path.isdir(os.path.expanduser(name)):
        raise ValueError(
            f"name {name!r} looks like a folder, but there is no such folder: check the path (a relative one starts "
            f"from {os.getcwd()}), or pass a Hub id such as 'google/gemma-2b'."
        )
    return os.path.expanduser(name) if looks_like_path else name


def _token_for(name: str) -> str | None:
    """Return the Hub token for a Hub name, None for a local folder (nothing to send)."""
    return None if os.path.isdir(name) else hf_token()


@contextmanager
def _without_progress_bars() -> Iterator[None]:
    """Run the block with transformers' progress bars off, then restore them as they were."""
    # A "Loading weights" or "Writing model shards" bar that takes a second stays frozen in a saved notebook.
    was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            transformers_logging.enable_progress_bar()


@contextmanager
def _quietly() -> Iterator[None]:
    """Run the block with datasets' and transformers' progress bars and datasets' logging off, then restore them."""
    # The one-time tiny-model build runs inside whichever notebook first needs it (notebook 02): it must print nothing.
    bars_off, level = datasets.are_progress_bars_disabled(), datasets_logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets_logging.set_verbosity_error()
    try:
        with _without_progress_bars():
            yield
    finally:
        datasets_logging.set_verbosity(level)
        if not bars_off:
            datasets.enable_progress_bars()


def load_model(name: str, rt: Runtime | None = None, quantization_config=None, for_training: bool = True):
    """Load `name` in 4 bit on the runtime's device (cache off for training), with clear errors."""
    name = _check_name(name)
    rt = check_runtime(rt) or detect()
    if quantization_config is not None and not isinstance(quantization_config, BitsAndBytesConfig):
        raise TypeError(
            "quantization_config must be a BitsAndBytesConfig (loading.bnb_config(rt) gives the course's) or None, "
            f"got {type(quantization_config).__name__} {quantization_config!r:.80}."
        )
    if not isinstance(for_training, bool):
        raise TypeError(f"for_training must be True or False, got {for_training!r}.")
    if rt.mode == "full" and not rt.gpu_count:
        raise RuntimeError(pick(
            "Full mode needs a CUDA GPU and none was found. Colab: Runtime > Change runtime type > T4 GPU; "
            "Kaggle: Settings > Accelerator > GPU T4 x2; or set COURSE_MODE=smoke to run the tiny model on the CPU.",
            "전체 모드에는 CUDA GPU가 필요한데 찾지 못했습니다. Colab: 런타임 > 런타임 유형 변경 > T4 GPU, "
            "Kaggle: Settings > Accelerator > GPU T4 x2를 고르거나, CPU에서 작은 모델로 실행하려면 "
            "COURSE_MODE=smoke로 설정하세요.",
        ))
    try:
        with _without_progress_bars():
            model = AutoModelForCausalLM.from_pretrained(
                name,
                quantization_config=bnb_config(rt) if quantization_config is None else quantization_config,
                device_map=rt.device_map,
                dtype=storage_dtype(rt),
                token=_token_for(name),
            )
    except torch.OutOfMemoryError as e:
        raise torch.OutOfMemoryError(
            f"The GPU ran out of memory while loading {name}. Free it first: restart the runtime (Colab: "
            "Runtime > Restart session; Kaggle: Run > Restart) so no earlier model holds memory, then load again. "
            "The 4-bit Gemma-2B needs about 3 GB; if it still fails, the GPU is too small or shared."
        ) from e
    except OSError as e:
        if is_auth_error(e):
            raise GatedModelError(name) from None
        raise
    keep_nf4_layout(model)
    if for_training:
        # The key/value cache only speeds up generation; in training it holds memory for nothing.
        model.config.use_cache = False
    return model


def keep_nf4_layout(model: torch.nn.Module) -> torch.nn.Module:
    """Keep every 4-bit layer of model in the stored NF4 (+ double-quantized) layout when it runs on a CPU."""
    import bitsandbytes as bnb

    # On a CPU with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit weight at its first eval-mode forward into a
    # layout that needs widths divisible by 32 and drops the double-quantized constants: turning that off keeps
    # what the course teaches as what runs, on every x86 CPU.
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
    return model


def load_tokenizer(name: str, padding_side: str = "right"):
    """Load the tokenizer of `name` with pad = eos (as in the post) and the given padding side."""
    name = _check_name(name)
    if padding_side not in ("left", "right"):
        raise ValueError(
            f"padding_side must be 'right' (training) or 'left' (generation), got {padding_side!r}."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, token=_token_for(name))
    except OSError as e:
        if is_auth_error(e):
            raise GatedModelError(name) from None
        raise
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def _train_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """Train a small byte-level BPE tokenizer on texts, adding <bos> in front like Gemma's."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(TINY_WORDS), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def _tiny_rows() -> dict[str, list[dict]]:
    """Return each shipped sample's rows (English and Korean), read as plain JSON, with the template's columns."""
    rows = {}
    for name, source in DATASETS.items():
        lines = sample_path(name).read_text(encoding="utf-8").splitlines()
        rows[name] = [{source["rename"].get(k, k): v for k, v in json.loads(line).items()} for line in lines]
    return rows


def _tiny_recipe(seed: int) -> dict:
    """Return what the tiny model is built from, so a cached copy built another way is rebuilt."""
    samples = {name: hashlib.sha256(sample_path(name).read_bytes()).hexdigest() for name in DATASETS}
    return {"seed": seed, "shape": TINY_SHAPE, "vocab": TINY_VOCAB, "words": TINY_WORDS, "samples_sha256": samples,
            "pretrain": TINY_PRETRAIN}


def _pretrain_documents(rows: dict[str, list[dict]], seed: int) -> list[str]:
    """Return the pre-training documents: per sample, reshuffled copies of its training rows as plain paragraphs."""
    import random

    from helpers.data import split

    documents, rng = [], random.Random(seed)
    for sample in rows.values():  # one language per document
        held_out = split(Dataset.from_list(sample), eval_size=TINY_PRETRAIN["held_out"],
                         seed=TINY_PRETRAIN["split_seed"])["test"]
        unseen = {(r["instruction"], r["input"]) for r in held_out}
        paragraphs = ["\n".join(t for t in (r["instruction"], r["input"], r["output"]) if t)
                      for r in sample if (r["instruction"], r["input"]) not in unseen]
        for _ in range(TINY_PRETRAIN["copies"]):
            rng.shuffle(paragraphs)
            # Paragraphs end with a blank line, the document too: "\n\n" then <eos>, never an answer's ".\n".
            documents.append("".join(p + "\n\n" for p in paragraphs))
    rng.shuffle(documents)
    return documents


def _pretrain_tiny(model: GemmaForCausalLM, tokenizer: PreTrainedTokenizerFast, rows: dict[str, list[dict]],
                   seed: int) -> None:
    """Pre-train the tiny model with transformers' Trainer on the samples' plain text (no template)."""
    from transformers import PrinterCallback, Trainer, TrainingArguments, default_data_collator

    # Plain text, neither the "###" template nor an <eos> after each answer: those are what the QLoRA step of
    # notebook 05 has to teach.
    ids = []
    for document in _pretrain_documents(rows, seed):
        ids += tokenizer(document, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    block = TINY_PRETRAIN["block"]
    blocks = [ids[i : i + block] for i in range(0, len(ids) - block + 1, block)]
    data = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            use_cpu=True,
            per_device_train_batch_size=TINY_PRETRAIN["batch"],
            max_steps=TINY_PRETRAIN["steps"],
            learning_rate=TINY_PRETRAIN["learning_rate"],
            lr_scheduler_type="cosine",
            warmup_steps=TINY_PRETRAIN["warmup"],
            seed=seed,
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator)
        trainer.remove_callback(PrinterCallback)  # it would print the run's final metrics into the notebook
        with cpu_threads("cpu"):
            trainer.train()
    model.config.use_cache = True  # the Trainer turned the cache off for training; a base model ships with it on


def committed_tiny() -> Path:
    """Return the folder of the committed tiny Gemma: inside the installed package (wheel) first, else data/."""
    packaged = Path(__file__).with_name(TINY_FOLDER)
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "data" / TINY_FOLDER


def build_tiny(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Build the tiny Gemma (tokenizer, pre-trained weights, recipe) into folder; minutes on a CPU."""
    folder = Path(folder)
    rows = _tiny_rows()
    tokenizer = _train_tokenizer([format_prompt(row) for sample in rows.values() for row in sample])
    config = GemmaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **TINY_SHAPE,
    )
    # A private RNG stream: the same seed gives the same weights, and the caller's RNG is left alone.
    with torch.random.fork_rng(devices=[]), _quietly():
        torch.manual_seed(seed)
        model = GemmaForCausalLM(config)
        _pretrain_tiny(model, tokenizer, rows, seed)  # Trainer seeds every RNG: keep that inside the fork too
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / RECIPE).write_text(json.dumps(_tiny_recipe(seed), indent=1) + "\n")
    return folder


def tiny_gemma(seed: int = 0, cache_dir: str | os.PathLike | None = None) -> str:
    """Return the tiny Gemma's folder: the committed one (data/tiny_gemma), else one built once into the cache."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}.")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more (torch.manual_seed's range), got {seed!r}.")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder path (str or Path) or None, got {cache_dir!r}.")
    recipe = _tiny_recipe(seed)
    # The committed model (scripts/build_tiny_model.py) serves every machine the same weights, when it was built
    # from today's recipe (samples, shape, pre-training); any other seed or recipe is built here once.
    committed = committed_tiny()
    if (committed / RECIPE).is_file() and json.loads((committed / RECIPE).read_text()) == recipe:
        return str(committed)
    root = Path(cache_dir or os.environ.get("COURSE_CACHE_DIR") or Path.home() / ".cache" / "qlora-course")
    folder = root / f"tiny-gemma-seed{seed}"
    if (folder / RECIPE).is_file() and json.loads((folder / RECIPE).read_text()) == recipe:
        return str(folder)
    root.mkdir(parents=True, exist_ok=True)
    # Build in a scratch folder and rename it into place, so a half-written model is never reused.
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=folder.name + "."))
    build_tiny(scratch, seed)
    if folder.is_dir():  # built from another recipe (an older course version): move it aside
        stale = Path(tempfile.mkdtemp(dir=root, prefix=folder.name + ".stale."))
        folder.rename(stale / folder.name)
        shutil.rmtree(stale)
    try:
        scratch.rename(folder)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(scratch)
    return str(folder)


def model_name(rt: Runtime | None = None) -> str:
    """Return the model to load: Gemma-2B (or COURSE_MODEL's folder) in full mode, the tiny Gemma's in smoke mode."""
    rt = check_runtime(rt) or detect()
    if rt.mode == "smoke":
        return tiny_gemma()
    return course_model() or GEMMA
