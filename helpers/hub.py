"""Share the trained adapter: a model card that records the run, and a push to a (private) Hub repository."""

import json
import math
import re
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.utils import HFValidationError, validate_repo_id

from helpers import auth
from helpers.language import pick
from helpers.prompting import INFERENCE_TEMPLATE

# The licences the card must carry: the base model's terms and each data set's licence (its dataset card).
BASE_LICENCE = ("Gemma Terms of Use (https://ai.google.dev/gemma/terms), with the Gemma Prohibited Use Policy: the "
                "base model is gated, so a user of this adapter must accept them on the base model's page first")
DATA_LICENCES = {
    "c-s-ale/dolly-15k-instruction-alpaca-format": "CC BY-SA 3.0 (databricks-dolly-15k, which it reformats)",
    "databricks/databricks-dolly-15k": "CC BY-SA 3.0",
    "nlpai-lab/databricks-dolly-15k-ko": "CC BY-SA 3.0 (a Korean translation of databricks-dolly-15k)",
}
RUN_FILE = "course_run.json"  # training.RUN_FILE: the record training.train writes next to the adapter
LAUNCH_FILE = "train_run.json"  # what train.run adds under accelerate launch: the number of processes
# The data set name notebook 06 passes when the run trained on the shipped sample (smoke mode, COURSE_DATA=sample).
COURSE_SAMPLE = "the course's sample"
SAMPLE_NOTE = "a few rows written for the course, shipped in its `data/` folder"
# The tiny Gemma's folders (loading.TINY_FOLDER, the cache folder of loading.tiny_gemma): named, never by their path.
TINY_NAMES = ("tiny_gemma", "tiny-gemma-seed")
TINY_MODEL = "tiny-gemma (the course's smoke-mode model, not on the Hub)"


def card_model_name(model: str | None) -> str | None:
    """Return the base model's name for a card: a Hub id as it is, a local folder by its name, never its path."""
    if not model:
        return model
    folder = Path(model).expanduser()
    if not (folder.is_absolute() or folder.is_dir() or model.startswith((".", "~"))):
        return model  # a Hub id such as google/gemma-2b
    # A path names the learner's own machine (home folder, user name): the card is published, so it says less.
    if folder.name.startswith(TINY_NAMES):
        return TINY_MODEL
    return f"a local copy (folder {folder.name})"


def run_settings(output_dir) -> tuple[dict, int]:
    """Return the card's settings table and the optimizer steps, read from the finished run's record in output_dir."""
    folder = Path(output_dir)
    record_path = folder / RUN_FILE
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    finished = record.get("finished")
    if not finished:
        raise ValueError(pick(
            f"{record_path} records no finished run: train first (training.train or train.launch write it), and "
            "pass the run's output folder (the parent of its adapter folder).",
            f"{record_path}에 끝난 학습 기록이 없습니다. 먼저 학습하고(training.train이나 train.launch가 기록을 "
            "씁니다), 그 학습의 출력 폴더(어댑터 폴더의 상위 폴더)를 넘기세요."))
    run = record["settings"]
    launched = folder / LAUNCH_FILE
    # A run inside the notebook is one process; train.launch records how many it started.
    processes = json.loads(launched.read_text())["processes"] if launched.is_file() else 1
    batch, accumulation = run["per_device_train_batch_size"], run["gradient_accumulation_steps"]
    targets = run.get("lora_config.target_modules") or []
    settings = {
        "base model": card_model_name(run.get("model")),
        "data set": run.get("DATASET", "dolly"),
        "processes (GPUs)": processes,
        "blocks per optimizer step": f"{batch} x {accumulation} x {processes} = {batch * accumulation * processes}",
        "tokens per block (max_length)": run.get("max_length"),
        "learning rate": run.get("learning_rate"),
        "schedule": run.get("lr_scheduler_type"),
        "optimizer": run.get("optim"),
        "activation checkpointing": run.get("activation_checkpointing"),
        "fp16 / bf16": f"{run.get('fp16')} / {run.get('bf16')}",
        "LoRA": (f"r={run.get('lora_config.r')}, alpha={run.get('lora_config.lora_alpha')}, "
                 f"dropout={run.get('lora_config.lora_dropout')}, on {'/'.join(sorted(targets))}"),
        "4-bit base": f"{run.get('quantization_config.bnb_4bit_quant_type')}, double quantization "
                      f"{run.get('quantization_config.bnb_4bit_use_double_quant')}",
        "max_steps": run.get("max_steps"),
    }
    return settings, finished["step"]


def check_repo_id(repo_id: object) -> str:
    """Return repo_id when it is a valid Hub repository id ("owner/name"), else raise a ValueError/TypeError."""
    if not isinstance(repo_id, str):
        raise TypeError(f"HUB_REPO must be a repository id like 'your-name/gemma-2b-dolly-qlora', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"HUB_REPO must look like 'your-name/gemma-2b-dolly-qlora', got {repo_id!r}: {e}") from None
    return repo_id


def _check_evaluation(evaluation: dict) -> None:
    """Raise unless every evaluation value is a finite number or a short text such as "12 of 48"."""
    for name, value in evaluation.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and math.isfinite(value)) and not isinstance(value, str):
            raise ValueError(f"evaluation[{name!r}] must be a finite number (or a text such as '12 of 48'), "
                             f"got {value!r}.")


def _cell(value: object) -> str:
    """Return value as a Markdown table cell: a tag such as <eos> as code (bare, it is swallowed as HTML), | escaped."""
    return re.sub(r"(?<!`)<[^<>\s]+>(?!`)", lambda tag: f"`{tag.group(0)}`", str(value)).replace("|", "\\|")


def _figure(value: object) -> str:
    """Return an evaluation value for the card: 4 decimals, or 2 significant digits when it is below 1e-3."""
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
        return f"{value:.1e}"  # a tiny P(<eos>) keeps its size instead of becoming 0.0000
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def model_card(repo_id: str, base_model: str, dataset: str, settings: dict, steps: int, evaluation: dict) -> str:
    """Return the adapter's model card (YAML metadata and Markdown): base, data, licences, template, run, eval, use."""
    check_repo_id(repo_id)
    if not isinstance(settings, dict) or not isinstance(evaluation, dict):
        raise TypeError(f"settings and evaluation must be dicts of name -> value, got {type(settings).__name__} "
                        f"and {type(evaluation).__name__}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be the number of optimizer steps trained (0 or more), got {steps!r}.")
    _check_evaluation(evaluation)
    sample = dataset == COURSE_SAMPLE
    data = ModelCardData(base_model=base_model, datasets=None if sample else [dataset], library_name="peft",
                         license="other",
                         license_name="gemma-terms-of-use", license_link="https://ai.google.dev/gemma/terms",
                         pipeline_tag="text-generation", tags=["qlora", "lora", "trl", "sft"])

    def rows(table: dict, show=str) -> str:
        """Return the Markdown table rows of name -> value, each value written by show."""
        return "\n".join(f"| {_cell(name)} | {_cell(show(value))} |" for name, value in table.items())

    data_licence = DATA_LICENCES.get(dataset, "see the data set's card")
    # The shipped sample has no Hub page or card: plain words, and no data set in the metadata.
    trained_on = f"{COURSE_SAMPLE} ({SAMPLE_NOTE})" if sample else f"`{dataset}`"
    data_line = (f"- Training data: {COURSE_SAMPLE}, {SAMPLE_NOTE}.\n\n" if sample
                 else f"- Training data `{dataset}`: {data_licence}.\n\n")
    # Google's Gemma weights carry their terms and a gate; the course's own tiny stand-in (smoke mode) has neither.
    google = base_model.startswith("google/")
    base_licence = BASE_LICENCE if google else "the licence of that model (not one of Google's Gemma checkpoints)"
    access = (f"`{base_model}` is gated: accept its terms on its Hub page and log in with a token first. "
              if google else "")
    template = INFERENCE_TEMPLATE.replace("{instruction}", "<instruction>").replace("{input}", "<input, or empty>")
    body = (
        f"# {repo_id.split('/')[-1]}\n\n"
        f"A LoRA adapter for `{base_model}`, trained with QLoRA (4-bit NF4 base, double quantization) on "
        f"{trained_on} with trl's `SFTTrainer`, in the QLoRA notebook course (notebook 05).\n\n"
        f"Trained for {steps:,} optimizer steps.\n\n"
        "## Licences\n\n"
        f"- Base model `{base_model}`: {base_licence}. This adapter is a derivative of it and is shared under the "
        "same terms.\n"
        f"{data_line}"
        "## Prompt template\n\n"
        "The adapter learned this template; prompt it the same way, ending at `### Response` and a new line, and "
        "it answers and ends with `<eos>`:\n\n"
        f"```text\n{template}```\n\n"
        f"## Settings (from the run's record)\n\n| setting | value |\n|---|---|\n{rows(settings)}\n\n"
        f"## Evaluation on held-out rows\n\n| measure | value |\n|---|---|\n{rows(evaluation, _figure)}\n\n"
        "## Use\n\n"
        f"{access}The base is loaded in 4 bit, as it was trained:\n\n"
        "```python\nimport torch\nfrom peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig\n\n"
        "four_bit = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=\"nf4\", "
        "bnb_4bit_use_double_quant=True,\n"
        "                              bnb_4bit_compute_dtype=torch.float16)  # torch.bfloat16 where supported\n"
        f'base = AutoModelForCausalLM.from_pretrained("{base_model}", quantization_config=four_bit, '
        'device_map={"": 0})\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{base_model}")\n'
        f'model = PeftModel.from_pretrained(base, "{repo_id}")\n\n'
        f"TEMPLATE = {INFERENCE_TEMPLATE!r}\n"
        'prompt = TEMPLATE.format(instruction="Why is the sky blue?", input="")\n'
        'batch = tokenizer(prompt, return_tensors="pt").to(model.device)\n'
        "answer = model.generate(**batch, max_new_tokens=128)\n"
        'print(tokenizer.decode(answer[0, batch["input_ids"].shape[1]:], skip_special_tokens=True))\n```\n'
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def _visibility(api, repo_id: str) -> bool | None:
    """Return whether repo_id exists as a private (True) or public (False) model repository, None if it does not."""
    try:
        return bool(api.repo_info(repo_id, repo_type="model").private)
    except RepositoryNotFoundError:  # missing, or someone else's private repository (create_repo then refuses)
        return None


def push_adapter(adapter_dir: str | Path, repo_id: str, card: str, private: bool = True) -> str:
    """Push the adapter and its card (README.md) to repo_id in one commit, private by default; return its URL.

    An existing public repository is refused when private=True: create_repo(exist_ok=True) leaves a repository's
    visibility as it is, so the push would publish the adapter.
    """
    check_repo_id(repo_id)
    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").is_file():
        raise ValueError(f"adapter_dir must be a saved adapter folder (with adapter_config.json), got {str(folder)!r}.")
    if not isinstance(private, bool):
        raise TypeError(f"private must be True or False, got {private!r}.")
    if not isinstance(card, str) or not card.strip():
        raise TypeError(f"card must be the model card's text (hub.model_card returns it), got {card!r:.80}.")
    token = auth.hf_token()
    if not token:
        raise ValueError(pick(
            f"Pushing to {repo_id} needs a Hugging Face token with 'Write' access: {auth.token_message()}",
            f"{repo_id}에 올리려면 'Write' 권한이 있는 Hugging Face 토큰이 필요합니다: {auth.token_message()}"))
    api = HfApi(token=token)
    existing = _visibility(api, repo_id)
    if existing is False and private:
        raise ValueError(pick(
            f"{repo_id} already exists and is PUBLIC: pushing would publish the adapter. Nothing was pushed. Make "
            "the repository private on the Hub (its Settings, Change visibility) and run this again, or set "
            "HUB_PRIVATE = False to publish it on purpose.",
            f"{repo_id}은(는) 이미 있는 공개(PUBLIC) 저장소라, 올리면 어댑터가 공개됩니다. 아무것도 올리지 "
            "않았습니다. Hub에서 저장소를 비공개로 바꾼 뒤(Settings > Change visibility) 다시 실행하거나, 일부러 "
            "공개하려면 HUB_PRIVATE = False로 두세요."))
    if existing is None:
        where = pick(f"a new {'private' if private else 'PUBLIC'} repository {repo_id}",
                     f"새 {'비공개' if private else '공개(PUBLIC)'} 저장소 {repo_id}")
    elif existing:
        where = pick(f"the existing private repository {repo_id} (it stays private"
                     f"{'; change it on the Hub to publish' if not private else ''})",
                     f"이미 있는 비공개 저장소 {repo_id}(비공개 그대로입니다"
                     f"{'. 공개하려면 Hub에서 바꾸세요' if not private else ''})")
    else:
        where = pick(f"the existing PUBLIC repository {repo_id}", f"이미 있는 공개(PUBLIC) 저장소 {repo_id}")
    print(pick(f"Pushing the adapter and its model card to {where}.",
               f"어댑터와 모델 카드를 {where}에 올립니다."))
    # The card goes in the same commit as the weights: a reader never sees an adapter without its licences.
    (folder / "README.md").write_text(card)
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",
                      commit_message="Upload the QLoRA adapter and its model card")
    return str(url)
