"""The adapter's model card and its push to the Hub, built correctly without a network."""

import json
import types
from typing import ClassVar

import httpx
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from helpers import auth, hub, language, prompting

FAKE_TOKEN = "hf_FAKE_not_a_real_token_hub_0123456789"
SETTINGS = {"preset": "t4", "learning_rate": 0.0002, "max_length": 512, "LoRA r / alpha": "8 / 8"}
EVALUATION = {"eval loss before": 1.9876, "eval loss after": 1.2345, "ROUGE-L after": 0.3125}


def card(**changes) -> str:
    args = dict(repo_id="learner/gemma-2b-dolly-qlora", base_model="google/gemma-2b",
                dataset="c-s-ale/dolly-15k-instruction-alpaca-format", settings=SETTINGS, steps=3_752,
                evaluation=EVALUATION)
    return hub.model_card(**{**args, **changes})


class FakeApi:
    """Records the calls push_adapter makes instead of reaching the Hub, as HfApi 1.33 answers them.

    repo_info raises RepositoryNotFoundError for a repository that does not exist (HfApi.repo_info's docstring) and
    returns an info whose .private is the visibility; upload_folder is one commit of the folder as it is then.
    """

    calls: ClassVar[list] = []
    existing: ClassVar[dict] = {}  # repo_id -> private

    def __init__(self, token=None):
        FakeApi.calls.append(("init", token))

    def repo_info(self, repo_id, repo_type=None, **kw):
        FakeApi.calls.append(("repo_info", repo_id, repo_type))
        if repo_id not in FakeApi.existing:
            request = httpx.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
            raise RepositoryNotFoundError(f"404 {repo_id}", response=httpx.Response(404, request=request))
        return types.SimpleNamespace(id=repo_id, private=FakeApi.existing[repo_id])

    def create_repo(self, repo_id, **kw):
        FakeApi.calls.append(("create_repo", repo_id, kw))
        FakeApi.existing.setdefault(repo_id, kw.get("private", False))  # exist_ok keeps the visibility it had
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        files = {p.name: p.read_bytes() for p in sorted(kw["folder_path"].iterdir())}
        FakeApi.calls.append(("upload_folder", kw, files))

    def upload_file(self, **kw):
        FakeApi.calls.append(("upload_file", kw))


@pytest.fixture
def adapter(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    return tmp_path


@pytest.fixture
def fake_hub(monkeypatch):
    FakeApi.calls, FakeApi.existing = [], {}
    monkeypatch.setattr(hub, "HfApi", FakeApi)
    monkeypatch.setattr(auth, "hf_token", lambda: FAKE_TOKEN)
    return FakeApi.calls


def test_the_card_records_base_model_data_settings_steps_and_evaluation():
    text = card()
    parsed = ModelCard(text)
    assert parsed.data.base_model == "google/gemma-2b"
    assert parsed.data.datasets == ["c-s-ale/dolly-15k-instruction-alpaca-format"]
    assert parsed.data.library_name == "peft" and "qlora" in parsed.data.tags
    assert "3,752 optimizer steps" in parsed.text
    for table in (SETTINGS, EVALUATION):
        for name, value in table.items():
            assert f"| {name} | {value} |" in parsed.text
    assert 'PeftModel.from_pretrained(base, "learner/gemma-2b-dolly-qlora")' in parsed.text


def test_push_is_private_by_default_writes_the_card_and_never_prints_the_token(adapter, fake_hub, capsys):
    url = hub.push_adapter(adapter, "learner/gemma-2b-dolly-qlora", card())
    assert url == "https://huggingface.co/learner/gemma-2b-dolly-qlora"
    assert fake_hub[0] == ("init", FAKE_TOKEN)
    assert fake_hub[1] == ("repo_info", "learner/gemma-2b-dolly-qlora", "model")
    assert fake_hub[2] == ("create_repo", "learner/gemma-2b-dolly-qlora",
                           {"private": True, "exist_ok": True, "repo_type": "model"})
    assert fake_hub[3][1]["folder_path"] == adapter and fake_hub[3][1]["repo_id"] == "learner/gemma-2b-dolly-qlora"
    assert (adapter / "README.md").read_text() == card()
    out = capsys.readouterr()
    assert FAKE_TOKEN not in out.out + out.err
    assert not any(FAKE_TOKEN.encode() in p.read_bytes() for p in adapter.iterdir())


def test_push_public_only_when_asked(adapter, fake_hub):
    hub.push_adapter(adapter, "learner/x", card(repo_id="learner/x"), private=False)
    assert fake_hub[2][2]["private"] is False


def test_the_card_goes_up_in_the_same_commit_as_the_adapter(adapter, fake_hub):
    hub.push_adapter(adapter, "learner/x", card(repo_id="learner/x"))
    uploads = [c for c in fake_hub if c[0].startswith("upload")]
    assert len(uploads) == 1 and uploads[0][0] == "upload_folder"
    files = uploads[0][2]
    assert files["README.md"] == card(repo_id="learner/x").encode()
    assert files["adapter_model.safetensors"] == b"weights" and "adapter_config.json" in files


def test_an_existing_public_repository_is_refused_when_private_was_asked(adapter, fake_hub, capsys):
    FakeApi.existing["learner/x"] = False
    with pytest.raises(ValueError, match="already exists and is PUBLIC.*HUB_PRIVATE = False"):
        hub.push_adapter(adapter, "learner/x", card(repo_id="learner/x"))
    assert not any(c[0] in ("create_repo", "upload_folder", "upload_file") for c in fake_hub)
    assert not (adapter / "README.md").exists()



def refused(status):
    """An HTTP error of `status` from the Hub's model API, as huggingface_hub 1.33 raises it."""
    request = httpx.Request("GET", "https://huggingface.co/api/models/learner/x")
    return HfHubHTTPError(f"{status} learner/x", response=httpx.Response(status, request=request))


@pytest.mark.parametrize("error", [
    lambda: refused(401), lambda: refused(500), lambda: httpx.ConnectError("no network"), lambda: OSError("offline"),
])
def test_a_visibility_that_cannot_be_read_stops_the_push(adapter, fake_hub, monkeypatch, error):
    # Only "no such repository" (404) means a new repository; any other failure could hide an existing public one.
    FakeApi.existing["learner/x"] = False

    def repo_info(self, repo_id, repo_type=None, **kw):
        FakeApi.calls.append(("repo_info", repo_id, repo_type))
        raise error()

    monkeypatch.setattr(FakeApi, "repo_info", repo_info)
    with pytest.raises((HfHubHTTPError, httpx.HTTPError, OSError)):  # what the Hub raised, nothing pushed
        hub.push_adapter(adapter, "learner/x", card(repo_id="learner/x"))
    assert not any(c[0] in ("create_repo", "upload_folder", "upload_file") for c in fake_hub)
    assert not (adapter / "README.md").exists()

@pytest.mark.parametrize("existing, private, says", [
    (None, True, "a new private repository"), (None, False, "a new PUBLIC repository"),
    (True, True, "the existing private repository learner/x (it stays private)"),
    (True, False, "change it on the Hub to publish"), (False, False, "the existing PUBLIC repository"),
])
def test_the_push_says_where_it_goes_before_it_pushes(adapter, fake_hub, capsys, existing, private, says):
    if existing is not None:
        FakeApi.existing["learner/x"] = existing
    hub.push_adapter(adapter, "learner/x", card(repo_id="learner/x"), private=private)
    assert says in capsys.readouterr().out


def test_push_without_a_token_says_so_before_any_call(adapter, fake_hub, monkeypatch):
    monkeypatch.setattr(auth, "hf_token", lambda: None)
    monkeypatch.setattr(auth, "token_message", lambda: "Hugging Face token: not found.")
    with pytest.raises(ValueError, match="Write.*not found"):
        hub.push_adapter(adapter, "learner/x", card())
    assert fake_hub == []


@pytest.mark.parametrize("call, error, name", [
    (lambda a: hub.push_adapter(a, "not a repo id", "card"), ValueError, "HUB_REPO"),
    (lambda a: hub.push_adapter(a, "a/b/c", "card"), ValueError, "HUB_REPO"),
    (lambda a: hub.push_adapter(a, "learner/x--y", "card"), ValueError, "HUB_REPO"),
    (lambda a: hub.push_adapter(a, True, "card"), TypeError, "HUB_REPO"),
    (lambda a: hub.push_adapter(a / "missing", "learner/x", "card"), ValueError, "adapter_dir"),
    (lambda a: hub.push_adapter(a, "learner/x", "card", private="yes"), TypeError, "private"),
    (lambda a: card(steps=-1), ValueError, "steps"),
    (lambda a: card(steps=2.5), ValueError, "steps"), (lambda a: card(steps="3752"), ValueError, "steps"),
    (lambda a: card(steps=True), ValueError, "steps"),
    (lambda a: card(evaluation={"eval loss after": float("nan")}), ValueError, "eval loss after"),
    (lambda a: card(evaluation={"eval loss after": float("inf")}), ValueError, "eval loss after"),
    (lambda a: card(evaluation={"eval loss before": float("-inf")}), ValueError, "eval loss before"),
    (lambda a: card(evaluation={"ROUGE-L": [0.3]}), ValueError, "ROUGE-L"),
    (lambda a: card(evaluation={"eval loss after": None}), ValueError, "eval loss after"),
    (lambda a: card(evaluation={"ROUGE-L": True}), ValueError, "ROUGE-L"),
    (lambda a: card(repo_id="learner/"), ValueError, "HUB_REPO"),
    (lambda a: hub.push_adapter(a, "learner/x", None), TypeError, "card"),
    (lambda a: card(settings=[("lr", 1)]), TypeError, "settings"),
])
def test_bad_input_is_refused_before_the_hub_is_called(adapter, fake_hub, call, error, name):
    with pytest.raises(error, match=name):
        call(adapter)
    assert fake_hub == []


def test_the_card_carries_licences_template_gating_and_a_four_bit_use_snippet():
    text = card()
    assert "Gemma Terms of Use" in text and "CC BY-SA 3.0" in text and "gated" in text
    ko = card(dataset="nlpai-lab/databricks-dolly-15k-ko")
    assert "CC BY-SA 3.0 (a Korean translation" in ko
    assert "### Instruction" in text and "### Response" in text
    parsed = ModelCard(text)
    assert parsed.data.license == "other" and parsed.data.license_name == "gemma-terms-of-use"
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "load_in_4bit=True" in snippet and 'bnb_4bit_quant_type="nf4"' in snippet
    assert f"TEMPLATE = {prompting.INFERENCE_TEMPLATE!r}" in snippet
    assert 'PeftModel.from_pretrained(base, "learner/gemma-2b-dolly-qlora")' in snippet
    compile(snippet, "use", "exec")  # it is Python


def write_record(folder, processes=None, **changes):
    settings = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "learning_rate": 0.0002,
                "max_length": 512, "optim": "paged_adamw_32bit", "lr_scheduler_type": "cosine",
                "activation_checkpointing": True, "fp16": True, "bf16": False, "max_steps": -1,
                "lora_config.r": 8, "lora_config.lora_alpha": 8, "lora_config.lora_dropout": 0.1,
                "lora_config.target_modules": ["v_proj", "q_proj", "k_proj", "o_proj"], "model": "google/gemma-2b",
                "DATASET": "dolly", "quantization_config.bnb_4bit_quant_type": "nf4",
                "quantization_config.bnb_4bit_use_double_quant": True, **changes}
    (folder / hub.RUN_FILE).write_text(json.dumps({"settings": settings, "finished": {"step": 1_792}}))
    if processes:
        (folder / hub.LAUNCH_FILE).write_text(json.dumps({"processes": processes}))


def test_the_cards_figures_come_from_the_run_that_was_trained(tmp_path):
    # The launched two-GPU run: 2 x 1 per process x 2 processes = 4 blocks a step (not the notebook's 2 x 2 x 2).
    write_record(tmp_path, processes=2)
    settings, steps = hub.run_settings(tmp_path)
    assert steps == 1_792 and settings["processes (GPUs)"] == 2
    assert settings["blocks per optimizer step"] == "2 x 1 x 2 = 4"
    assert settings["LoRA"] == "r=8, alpha=8, dropout=0.1, on k_proj/o_proj/q_proj/v_proj"
    assert settings["optimizer"] == "paged_adamw_32bit" and settings["base model"] == "google/gemma-2b"
    # The same record without a launch: one process.
    (tmp_path / hub.LAUNCH_FILE).unlink()
    write_record(tmp_path, gradient_accumulation_steps=2)
    assert hub.run_settings(tmp_path)[0]["blocks per optimizer step"] == "2 x 2 x 1 = 4"
    text = card(settings=settings, steps=steps)
    assert "| blocks per optimizer step | 2 x 1 x 2 = 4 |" in text and "1,792 optimizer steps" in text


def test_a_run_that_did_not_finish_has_no_card_figures(tmp_path):
    with pytest.raises(ValueError, match="no finished run"):
        hub.run_settings(tmp_path)
    (tmp_path / hub.RUN_FILE).write_text(json.dumps({"settings": {}, "finished": None}))
    with pytest.raises(ValueError, match="no finished run"):
        hub.run_settings(tmp_path)
    language.set_language("ko")
    try:
        with pytest.raises(ValueError, match="끝난 학습 기록이 없습니다"):
            hub.run_settings(tmp_path)
    finally:
        language.set_language("en")


def test_only_googles_gemma_is_called_gated_or_put_under_the_gemma_terms():
    gemma = card(base_model="google/gemma-2b")
    tiny = card(base_model="tiny-gemma")
    assert "is gated" in gemma and hub.BASE_LICENCE in gemma
    assert "is gated" not in tiny and hub.BASE_LICENCE not in tiny
    assert "loaded in 4 bit" in tiny  # the Use snippet stays


def test_the_cards_evaluation_keeps_small_values_and_shows_tags_as_code():
    evaluation = {"P(<eos>) after the prompt (base)": 1.234e-05, "eval loss (base)": 2.345678, "zero": 0.0,
                  "stopped by itself (base)": "3 of 8", "answer tokens": 1_024}
    text = card(evaluation=evaluation)
    # A bare <eos> is an HTML tag to Markdown (the row would read "P()"); 1.2e-05 rounded to 4 places is 0.0.
    assert "| P(`<eos>`) after the prompt (base) | 1.2e-05 |" in text
    assert "| eval loss (base) | 2.3457 |" in text and "| zero | 0.0000 |" in text
    assert "| stopped by itself (base) | 3 of 8 |" in text and "| answer tokens | 1024 |" in text
    assert "P(<eos>)" not in text.replace("`<eos>`", "")


def test_a_local_base_model_is_named_never_by_its_path(tmp_path):
    from helpers import loading

    for folder in (loading.committed_tiny(), tmp_path / "cache" / "tiny-gemma-seed3"):
        write_record(tmp_path, model=str(folder))
        name = hub.run_settings(tmp_path)[0]["base model"]
        assert name == hub.TINY_MODEL and str(tmp_path) not in name and "/" not in name
    (tmp_path / "gemma-2b").mkdir()
    write_record(tmp_path, model=str(tmp_path / "gemma-2b"))  # COURSE_MODEL's folder
    assert hub.run_settings(tmp_path)[0]["base model"] == "a local copy (folder gemma-2b)"
    write_record(tmp_path, model="google/gemma-2b")
    assert hub.run_settings(tmp_path)[0]["base model"] == "google/gemma-2b"


def test_the_courses_sample_is_named_in_plain_words_with_no_data_set_card():
    text = card(dataset=hub.COURSE_SAMPLE, base_model="tiny-gemma")
    assert f"`{hub.COURSE_SAMPLE}`" not in text and "see the data set's card" not in text
    assert "written for the course" in text and "`data/`" in text
    assert ModelCard(text).data.datasets is None  # no Hub data set to link
