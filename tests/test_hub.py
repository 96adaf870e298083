"""The adapter's model card and its push to the Hub, built correctly without a network."""

from typing import ClassVar

import pytest
from huggingface_hub import ModelCard

from helpers import auth, hub

FAKE_TOKEN = "hf_FAKE_not_a_real_token_hub_0123456789"
SETTINGS = {"preset": "t4", "learning_rate": 0.0002, "max_length": 512, "LoRA r / alpha": "8 / 8"}
EVALUATION = {"eval loss before": 1.9876, "eval loss after": 1.2345, "ROUGE-L after": 0.3125}


def card(**changes) -> str:
    args = dict(repo_id="learner/gemma-2b-dolly-qlora", base_model="google/gemma-2b",
                dataset="c-s-ale/dolly-15k-instruction-alpaca-format", settings=SETTINGS, steps=3_752,
                evaluation=EVALUATION)
    return hub.model_card(**{**args, **changes})


class FakeApi:
    """Records the calls push_adapter makes instead of reaching the Hub."""

    calls: ClassVar[list] = []

    def __init__(self, token=None):
        FakeApi.calls.append(("init", token))

    def create_repo(self, repo_id, **kw):
        FakeApi.calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        FakeApi.calls.append(("upload_folder", kw))


@pytest.fixture
def adapter(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    return tmp_path


@pytest.fixture
def fake_hub(monkeypatch):
    FakeApi.calls = []
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
    assert 'from_pretrained("learner/gemma-2b-dolly-qlora")' in parsed.text


def test_push_is_private_by_default_writes_the_card_and_never_prints_the_token(adapter, fake_hub, capsys):
    url = hub.push_adapter(adapter, "learner/gemma-2b-dolly-qlora", card())
    assert url == "https://huggingface.co/learner/gemma-2b-dolly-qlora"
    assert fake_hub[0] == ("init", FAKE_TOKEN)
    assert fake_hub[1] == ("create_repo", "learner/gemma-2b-dolly-qlora",
                           {"private": True, "exist_ok": True, "repo_type": "model"})
    assert fake_hub[2][1]["folder_path"] == adapter and fake_hub[2][1]["repo_id"] == "learner/gemma-2b-dolly-qlora"
    assert (adapter / "README.md").read_text() == card()
    out = capsys.readouterr()
    assert FAKE_TOKEN not in out.out + out.err
    assert not any(FAKE_TOKEN.encode() in p.read_bytes() for p in adapter.iterdir())


def test_push_public_only_when_asked(adapter, fake_hub):
    hub.push_adapter(adapter, "learner/x", card(repo_id="learner/x"), private=False)
    assert fake_hub[1][2]["private"] is False


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
    (lambda a: card(settings=[("lr", 1)]), TypeError, "settings"),
])
def test_bad_input_is_refused_before_the_hub_is_called(adapter, fake_hub, call, error, name):
    with pytest.raises(error, match=name):
        call(adapter)
    assert fake_hub == []
