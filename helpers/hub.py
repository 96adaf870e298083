"""Share the trained adapter: a model card that records the run, and a push to a (private) Hub repository."""

from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from helpers import auth


def check_repo_id(repo_id: object) -> str:
    """Return repo_id when it is a valid Hub repository id ("owner/name"), else raise a ValueError/TypeError."""
    if not isinstance(repo_id, str):
        raise TypeError(f"HUB_REPO must be a repository id like 'your-name/gemma-2b-dolly-qlora', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"HUB_REPO must look like 'your-name/gemma-2b-dolly-qlora', got {repo_id!r}: {e}") from None
    return repo_id


def model_card(repo_id: str, base_model: str, dataset: str, settings: dict, steps: int, evaluation: dict) -> str:
    """Return the adapter's model card (YAML metadata and Markdown): base model, data, settings, steps, eval."""
    check_repo_id(repo_id)
    if not isinstance(settings, dict) or not isinstance(evaluation, dict):
        raise TypeError(f"settings and evaluation must be dicts of name -> value, got {type(settings).__name__} "
                        f"and {type(evaluation).__name__}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be the number of optimizer steps trained (0 or more), got {steps!r}.")
    data = ModelCardData(base_model=base_model, datasets=[dataset], library_name="peft",
                         pipeline_tag="text-generation", tags=["qlora", "lora", "trl", "sft"])

    def rows(table: dict) -> str:
        """Return the Markdown table rows of name -> value."""
        return "\n".join(f"| {name} | {value} |" for name, value in table.items())

    body = (
        f"# {repo_id.split('/')[-1]}\n\n"
        f"A LoRA adapter for `{base_model}`, trained with QLoRA (4-bit NF4 base, double quantization) on "
        f"`{dataset}` with trl's `SFTTrainer`, in the QLoRA notebook course (notebook 05).\n\n"
        f"Trained for {steps:,} optimizer steps.\n\n"
        f"## Settings\n\n| setting | value |\n|---|---|\n{rows(settings)}\n\n"
        f"## Evaluation on held-out rows\n\n| measure | value |\n|---|---|\n{rows(evaluation)}\n\n"
        "## Use\n\n```python\nfrom peft import AutoPeftModelForCausalLM\n\n"
        f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}")\n```\n'
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def push_adapter(adapter_dir: str | Path, repo_id: str, card: str, private: bool = True) -> str:
    """Write card as the adapter's README.md, push the folder to repo_id (private by default); return its URL."""
    check_repo_id(repo_id)
    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").is_file():
        raise ValueError(f"adapter_dir must be a saved adapter folder (with adapter_config.json), got {str(folder)!r}.")
    if not isinstance(private, bool):
        raise TypeError(f"private must be True or False, got {private!r}.")
    token = auth.hf_token()
    if not token:
        raise ValueError(f"Pushing to {repo_id} needs a Hugging Face token with 'Write' access: {auth.token_message()}")
    (folder / "README.md").write_text(card)
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",
                      commit_message="Upload the QLoRA adapter and its model card")
    return str(url)
