"""A missing file, revision or data set (a 404 that is not a gated repo) is not an access refusal: the learner gets
the library's own error, not advice about tokens and licences that cannot fix it."""

import httpx
import pytest
import transformers.utils.hub
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from helpers import auth, loading

URL = "https://huggingface.co/google/gemma-2b/resolve/main/tokenizer.model"


def hub_error(cls, status: int, message: str):
    """Return a huggingface_hub error as the Hub client raises it, with an HTTP response of `status`."""
    return cls(message, response=httpx.Response(status, request=httpx.Request("GET", URL)))


@pytest.mark.parametrize("error, refused", [
    (hub_error(RemoteEntryNotFoundError, 404, "404 Client Error. Entry Not Found for url"), False),
    (hub_error(RevisionNotFoundError, 404, "404 Client Error. Revision Not Found for url"), False),
    (hub_error(HfHubHTTPError, 404, "404 Client Error: Not Found for url"), False),
    (EntryNotFoundError("File tokenizer.model does not exist on the Hub (404)"), False),
    (FileNotFoundError("404: no such file"), False),
    (hub_error(RepositoryNotFoundError, 404, "404 Client Error. Repository Not Found"), True),  # gated answers so
    (hub_error(GatedRepoError, 403, "403 Client Error. Cannot access gated repo"), True),
])
def test_only_the_hubs_refusals_are_access_errors(error, refused):
    assert auth.is_auth_error(error) is refused
    try:
        try:
            raise error
        except Exception as inner:
            raise OSError("google/gemma-2b does not appear to have a file named tokenizer.model.") from inner
    except OSError as outer:
        assert auth.is_auth_error(outer) is refused


def test_a_missing_file_reaches_the_learner_as_the_librarys_error(monkeypatch):
    def missing(*args, **kwargs):
        raise hub_error(RemoteEntryNotFoundError, 404, "404 Client Error. Entry Not Found for url: " + URL)

    monkeypatch.setattr(transformers.utils.hub, "hf_hub_download", missing)
    monkeypatch.setattr(transformers.utils.hub, "snapshot_download", missing)
    with pytest.raises(Exception) as err:
        loading.load_tokenizer("google/gemma-2b")
    assert not isinstance(err.value, auth.GatedModelError), str(err.value)
    assert "licence" not in str(err.value)
