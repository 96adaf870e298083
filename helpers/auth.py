"""The Hugging Face token for the gated Gemma model: found in secrets, never printed, logged or saved."""

import os

from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

SECRET = "HF_TOKEN"
# The one place the token lives, so no notebook variable holds it (Colab's variable inspector shows those) and
# Colab's secret store, which can prompt or take 10 s to time out, is asked once: a found token is kept for the
# session; while none is found every call asks again, so fixing the secret and rerunning a cell is enough.
_cache: dict[str, str | None] = {}
MESSAGES = {
    "found": "Hugging Face token: found (not shown).",
    "not found": (
        f"Hugging Face token: not found. Add a secret named {SECRET} (Colab: the key icon on the left; Kaggle: "
        "Add-ons > Secrets), then run this cell again."
    ),
    "denied": (
        f"Hugging Face token: Colab denied this notebook access to the secret {SECRET}. Fix: the key icon on the "
        f"left > switch 'Notebook access' on for {SECRET}, then run this cell again."
    ),
    "timeout": (
        "Hugging Face token: Colab's secret store did not answer in time. Fix: run this cell again from the Colab "
        f"page (secrets only answer there), or set {SECRET} in the environment."
    ),
}


class GatedModelError(RuntimeError):
    """The Hub refused a gated model: the message says how to get access (it never holds the token)."""

    def __init__(self, name: str = "google/gemma-2b", kind: str = "model"):
        if not isinstance(name, str):
            raise TypeError(f"name must be the model's Hub name as a string, e.g. 'google/gemma-2b', got {name!r}.")
        if kind not in ("model", "data set"):
            raise ValueError(f"kind must be 'model' or 'data set', got {kind!r}.")
        where = f"https://huggingface.co/{'datasets/' if kind == 'data set' else ''}{name}"
        terms = "the licence" if kind == "model" else "its conditions"
        super().__init__(
            f"Could not download {name}: it is a gated {kind} and the Hugging Face Hub refused access "
            "(no token was found, or the token has no access). To fix it:\n"
            f"  1. Log in at {where} and accept {terms} there.\n"
            "  2. Create a token with 'Read' access at https://huggingface.co/settings/tokens.\n"
            f"  3. Add it as a secret named {SECRET}:\n"
            "     Colab: the key icon in the left sidebar > Add new secret, and switch 'Notebook access' on.\n"
            "     Kaggle: Add-ons > Secrets > Add a new secret, and tick it for this notebook.\n"
            f"     Elsewhere: set the environment variable {SECRET} before starting Jupyter.\n"
            "  4. Run this cell again. Never paste the token into a notebook cell: it would be saved with it.\n"
            f"If you changed the {kind}'s name, check its spelling too: the Hub answers a wrong name the same way."
        )


def _clean(value) -> str | None:
    """Return a secret's value without surrounding blanks, or None when it is missing or blank."""
    return value.strip() or None if isinstance(value, str) else None


def _colab_secret() -> tuple[str | None, str]:
    """Return (the Colab secret or None, why: "found", "not found", "denied" or "timeout")."""
    try:
        from google.colab import userdata
    except ImportError:  # not on Colab
        return None, "not found"
    try:
        token = _clean(userdata.get(SECRET))
    except Exception as e:  # noqa: BLE001 (SecretNotFoundError, NotebookAccessError, TimeoutException, ...)
        if isinstance(e, getattr(userdata, "NotebookAccessError", ())):
            return None, "denied"
        if isinstance(e, (TimeoutError, getattr(userdata, "TimeoutException", ()))):
            return None, "timeout"
        return None, "not found"
    return token, "found" if token else "not found"


def _kaggle_secret() -> str | None:
    """Return the Kaggle secret, or None outside Kaggle or when the secret is not attached."""
    try:
        from kaggle_secrets import UserSecretsClient

        return _clean(UserSecretsClient().get_secret(SECRET))
    except Exception:  # noqa: BLE001 (ImportError off Kaggle; BackendError when the secret is missing)
        return None


def _fetch() -> None:
    """Ask Colab secrets, Kaggle secrets, then $HF_TOKEN, and keep the answer (and why none) in _cache."""
    token, why = _colab_secret()
    token = token or _kaggle_secret() or _clean(os.environ.get(SECRET))
    _cache.update(token=token, status="found" if token else why)


def hf_token() -> str | None:
    """Return the Hugging Face token from Colab secrets, Kaggle secrets or $HF_TOKEN (cached), or None."""
    if not _cache.get("token"):
        _fetch()
    return _cache["token"]


def token_status() -> str:
    """Return "found", "not found", "denied" (Colab notebook access off) or "timeout" (Colab did not answer)."""
    hf_token()
    return _cache["status"]


def token_message() -> str:
    """Return one line saying whether the token was found and, if not, how to fix it (never the token)."""
    return MESSAGES[token_status()]


def forget_token() -> None:
    """Drop the cached token, so the next hf_token() asks the secret stores again."""
    _cache.clear()


def is_auth_error(exc: BaseException) -> bool:
    """Tell whether exc, or an error it was raised from, is the Hub refusing access (gated, 401, 403, 404)."""
    if not isinstance(exc, BaseException):
        raise TypeError(f"exc must be an exception (the one you caught), got {type(exc).__name__} {exc!r}.")
    seen = set()
    # A chain can loop (re-raising a shared exception instance does it): stop at the first exception seen twice.
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (GatedRepoError, RepositoryNotFoundError)):
            return True
        if isinstance(exc, HfHubHTTPError) and getattr(exc.response, "status_code", None) in (401, 403):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
