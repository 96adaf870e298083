"""The Hugging Face token for the gated Gemma model: found in secrets, never printed, logged or saved."""

import os

from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

SECRET = "HF_TOKEN"


class GatedModelError(RuntimeError):
    """The Hub refused a gated model: the message says how to get access (it never holds the token)."""

    def __init__(self, name: str = "google/gemma-2b"):
        super().__init__(
            f"Could not download {name}: it is a gated model and the Hugging Face Hub refused access "
            "(no token was found, or the token has no access). To fix it:\n"
            f"  1. Log in at https://huggingface.co/{name} and accept the licence there.\n"
            "  2. Create a token with 'Read' access at https://huggingface.co/settings/tokens.\n"
            f"  3. Add it as a secret named {SECRET}:\n"
            "     Colab: the key icon in the left sidebar > Add new secret, and switch 'Notebook access' on.\n"
            "     Kaggle: Add-ons > Secrets > Add a new secret, and tick it for this notebook.\n"
            f"     Elsewhere: set the environment variable {SECRET} before starting Jupyter.\n"
            "  4. Run this cell again. Never paste the token into a notebook cell: it would be saved with it.\n"
            "If you changed the model name, check its spelling too: the Hub answers a wrong name the same way."
        )


def _colab_secret() -> str | None:
    """Return the Colab secret, or None outside Colab or when the call fails (it times out outside the UI)."""
    try:
        from google.colab import userdata

        return userdata.get(SECRET)
    except Exception:  # ImportError off Colab; SecretNotFoundError, NotebookAccessError, TimeoutException on it
        return None


def _kaggle_secret() -> str | None:
    """Return the Kaggle secret, or None outside Kaggle or when the secret is not attached."""
    try:
        from kaggle_secrets import UserSecretsClient

        return UserSecretsClient().get_secret(SECRET)
    except Exception:  # ImportError off Kaggle; BackendError when the secret is missing
        return None


def hf_token() -> str | None:
    """Return the Hugging Face token from Colab secrets, Kaggle secrets or $HF_TOKEN, or None."""
    return _colab_secret() or _kaggle_secret() or os.environ.get(SECRET) or None


def is_auth_error(exc: BaseException) -> bool:
    """Tell whether exc, or an error it was raised from, is the Hub refusing access (gated, 401, 403)."""
    while exc is not None:
        if isinstance(exc, (GatedRepoError, RepositoryNotFoundError)):
            return True
        if isinstance(exc, HfHubHTTPError) and getattr(exc.response, "status_code", None) in (401, 403):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
