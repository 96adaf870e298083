"""The token's sources, and one clear error (never holding the token) when the Hub refuses Gemma."""

import logging
import sys
import traceback
from types import ModuleType, SimpleNamespace

import httpx
import pytest
import torch
import transformers.utils.hub
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

from helpers import auth, loading
from helpers.runtime import Runtime

FAKE = "hf_FAKE_not_a_real_token_auth_0123456789"
COLAB_T4 = Runtime("colab", "Tesla T4", 1, 15.0, (7, 5), torch.float16, "full", {"": 0})
URL = "https://huggingface.co/google/gemma-2b/resolve/main/config.json"


def hub_error(cls, status: int, message: str):
    """Return a huggingface_hub error as the Hub client raises it, with an HTTP response of `status`."""
    return cls(message, response=httpx.Response(status, request=httpx.Request("GET", URL)))


class NotebookAccessError(Exception):
    """google.colab.userdata's error when the learner did not give this notebook access to the secret."""


class TimeoutException(Exception):
    """google.colab.userdata's error when the secret store does not answer (outside the Colab page)."""


class SecretNotFoundError(Exception):
    """google.colab.userdata's error when there is no such secret."""


@pytest.fixture
def secrets(monkeypatch):
    """Return a function that installs fake Colab/Kaggle secret stores (a value, an exception, or absent)."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    for name in ("google", "google.colab", "kaggle_secrets"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    asked = []

    def install(colab=None, kaggle=None):
        def answer(value):
            asked.append(value)
            if isinstance(value, Exception):
                raise value
            return value

        if colab is not None:
            google, colab_module, userdata = ModuleType("google"), ModuleType("google.colab"), ModuleType("userdata")
            userdata.get = lambda key: answer(colab)
            userdata.NotebookAccessError, userdata.TimeoutException = NotebookAccessError, TimeoutException
            userdata.SecretNotFoundError = SecretNotFoundError
            colab_module.userdata = userdata
            monkeypatch.setitem(sys.modules, "google", google)
            monkeypatch.setitem(sys.modules, "google.colab", colab_module)
        if kaggle is not None:
            kaggle_secrets = ModuleType("kaggle_secrets")
            client = SimpleNamespace(get_secret=lambda key: answer(kaggle))
            kaggle_secrets.UserSecretsClient = lambda: client
            monkeypatch.setitem(sys.modules, "kaggle_secrets", kaggle_secrets)
        auth.forget_token()
        return asked

    return install


def test_no_source_means_no_token(secrets):
    secrets()
    assert auth.hf_token() is None


def test_colab_secret_comes_first(secrets, monkeypatch):
    secrets(colab="hf_colab", kaggle="hf_kaggle")
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert auth.hf_token() == "hf_colab"


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_an_empty_secret_is_no_token(secrets, monkeypatch, value):
    secrets(colab=value, kaggle=value)
    monkeypatch.setenv("HF_TOKEN", value)
    assert auth.hf_token() is None and auth.token_status() == "not found"


def test_surrounding_blanks_are_dropped(secrets, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", " hf_env\n")
    assert auth.hf_token() == "hf_env"


def test_a_found_token_is_fetched_once_per_session(secrets, monkeypatch):
    asked = secrets(colab="hf_colab")
    for _ in range(5):  # the notebook's token cell, load_model, load_tokenizer, the reload, the merge
        assert auth.hf_token() == "hf_colab"
    assert auth.token_message() == "Hugging Face token: found (not shown)."
    assert asked == ["hf_colab"]
    auth.forget_token()
    assert auth.hf_token() == "hf_colab" and len(asked) == 2


def test_a_missing_token_is_asked_for_again_so_a_fixed_secret_is_found(secrets, monkeypatch):
    asked = secrets(colab=SecretNotFoundError("HF_TOKEN"))
    assert auth.hf_token() is None and auth.token_status() == "not found"
    assert "Add a secret named HF_TOKEN" in auth.token_message()
    monkeypatch.setenv("HF_TOKEN", "hf_added")  # the learner fixes it and reruns the cell
    assert auth.hf_token() == "hf_added" and len(asked) >= 2


def test_colab_notebook_access_denied_is_reported_with_the_fix(secrets):
    secrets(colab=NotebookAccessError("HF_TOKEN"))
    assert auth.hf_token() is None and auth.token_status() == "denied"
    message = auth.token_message()
    assert message.startswith("Hugging Face token: Colab denied this notebook access to the secret HF_TOKEN.")
    assert "switch 'Notebook access' on" in message and message.count("\n") == 0


@pytest.mark.parametrize("error", [TimeoutException("Requesting secret HF_TOKEN timed out"), TimeoutError("10 s")])
def test_a_colab_timeout_is_reported(secrets, error):
    secrets(colab=error)
    assert auth.token_status() == "timeout"
    assert "did not answer in time" in auth.token_message()


def test_the_token_message_never_holds_the_token(secrets, monkeypatch):
    for colab in (FAKE, NotebookAccessError(FAKE), TimeoutException(FAKE)):
        secrets(colab=colab)
        assert FAKE not in auth.token_message()
    monkeypatch.setenv("HF_TOKEN", FAKE)
    auth.forget_token()
    assert auth.hf_token() == FAKE and FAKE not in auth.token_message()
    assert [name for name, value in vars(auth).items() if value == FAKE] == []  # only inside the cache


def test_a_colab_timeout_falls_through_to_kaggle_then_env(secrets, monkeypatch):
    secrets(colab=TimeoutError("Requesting secret HF_TOKEN timed out"), kaggle="hf_kaggle")
    assert auth.hf_token() == "hf_kaggle"
    secrets(colab=TimeoutError("timed out"), kaggle=RuntimeError("BackendError: no secret"))
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert auth.hf_token() == "hf_env"


@pytest.mark.parametrize(
    "error, refused",
    [
        (hub_error(GatedRepoError, 401, "gated"), True),
        (hub_error(RepositoryNotFoundError, 401, "not found"), True),
        (hub_error(RepositoryNotFoundError, 404, "gated repo answered as not found"), True),
        (hub_error(GatedRepoError, 404, "gated"), True),
        (hub_error(HfHubHTTPError, 403, "forbidden"), True),
        (hub_error(HfHubHTTPError, 401, "unauthorized"), True),
        (hub_error(HfHubHTTPError, 500, "server error"), False),
        (OSError("disk full"), False),
    ],
)
def test_auth_errors_are_recognised_through_the_chain(error, refused):
    assert auth.is_auth_error(error) is refused
    try:
        try:
            raise error
        except Exception as inner:
            raise OSError("You are trying to access a gated repo.") from inner
    except OSError as outer:
        assert auth.is_auth_error(outer) is refused


@pytest.mark.timeout(10)
def test_a_looping_exception_chain_ends():
    shared = OSError("shared")
    try:
        try:
            raise shared
        except OSError as first:
            raise RuntimeError("wrapper") from first
    except RuntimeError as wrapper:
        shared.__context__ = wrapper  # re-raising a shared instance later closes the loop
        assert auth.is_auth_error(wrapper) is False


def test_the_message_says_how_to_get_access():
    message = str(auth.GatedModelError("google/gemma-2b"))
    for part in ("https://huggingface.co/google/gemma-2b", "licence", "https://huggingface.co/settings/tokens",
                 "HF_TOKEN", "Colab", "key icon", "Notebook access", "Kaggle", "Add-ons > Secrets"):
        assert part in message


@pytest.mark.parametrize(
    "error",
    [
        hub_error(GatedRepoError, 401, f"Access to google/gemma-2b is restricted. token={FAKE}"),
        hub_error(HfHubHTTPError, 403, f"403 Forbidden for token {FAKE}"),
    ],
)
@pytest.mark.parametrize("load", ["model", "tokenizer"])
def test_a_refused_download_gives_one_clear_error_without_the_token(error, load, secrets, monkeypatch, capsys,
                                                                     caplog):
    secrets()
    monkeypatch.setenv("HF_TOKEN", FAKE)
    sent = []

    def refuse(*args, token=None, **kwargs):
        sent.append(token)
        raise error

    monkeypatch.setattr(transformers.utils.hub, "hf_hub_download", refuse)
    monkeypatch.setattr(transformers.utils.hub, "snapshot_download", refuse)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(auth.GatedModelError) as err:
        if load == "model":
            loading.load_model("google/gemma-2b", COLAB_T4)
        else:
            loading.load_tokenizer("google/gemma-2b")
    assert sent and set(sent) == {FAKE}
    shown = "".join(traceback.format_exception(err.value))
    assert "accept the licence" in shown and FAKE not in shown
    out, errs = capsys.readouterr()
    assert FAKE not in out + errs
    assert not any(FAKE in record.getMessage() for record in caplog.records)


def test_without_a_token_the_refusal_is_the_same_clear_error(secrets, monkeypatch):
    secrets()
    sent = []

    def refuse(*args, token=None, **kwargs):
        sent.append(token)
        raise hub_error(GatedRepoError, 401, "gated")

    monkeypatch.setattr(transformers.utils.hub, "hf_hub_download", refuse)
    with pytest.raises(auth.GatedModelError, match="HF_TOKEN"):
        loading.load_model("google/gemma-2b", COLAB_T4)
    assert sent and set(sent) == {None}


def test_an_access_error_raised_while_handling_a_refusal_is_recognised():
    # transformers raises its OSError inside `except GatedRepoError:` without `from`: only __context__ links them.
    try:
        try:
            raise hub_error(GatedRepoError, 403, "403 gated")
        except GatedRepoError:
            raise OSError("You are trying to access a gated repo.")
    except OSError as outer:
        assert outer.__cause__ is None and isinstance(outer.__context__, GatedRepoError)
        assert auth.is_auth_error(outer)
