"""The Hugging Face token for the gated Gemma model: found in secrets, never printed, logged or saved."""

import os

from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

from helpers.language import pick

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
MESSAGES_KO = {
    "found": "Hugging Face 토큰: 찾았습니다(값은 표시하지 않습니다).",
    "not found": (
        f"Hugging Face 토큰: 찾지 못했습니다. {SECRET}라는 이름의 시크릿을 추가한 뒤(Colab: 왼쪽의 열쇠 아이콘, "
        "Kaggle: Add-ons > Secrets) 이 셀을 다시 실행하세요."
    ),
    "denied": (
        f"Hugging Face 토큰: Colab이 이 노트북의 시크릿 {SECRET} 접근을 막았습니다. 해결: 왼쪽의 열쇠 아이콘에서 "
        f"{SECRET}의 '노트북 액세스(Notebook access)'를 켠 뒤 이 셀을 다시 실행하세요."
    ),
    "timeout": (
        "Hugging Face 토큰: Colab 시크릿 저장소가 제때 응답하지 않았습니다. 해결: Colab 페이지에서 이 셀을 다시 "
        f"실행하거나(시크릿은 그 페이지에서만 응답합니다), 환경 변수 {SECRET}를 설정하세요."
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
        kind_ko, terms_ko = ("모델", "라이선스") if kind == "model" else ("데이터셋", "공유 조건")
        super().__init__(pick(
            f"Could not download {name}: it is a gated {kind} and the Hugging Face Hub refused access "
            "(no token was found, or the token has no access). To fix it:\n"
            f"  1. Log in at {where} and accept {terms} there.\n"
            "  2. Create a token with 'Read' access at https://huggingface.co/settings/tokens.\n"
            f"  3. Add it as a secret named {SECRET}:\n"
            "     Colab: the key icon in the left sidebar > Add new secret, and switch 'Notebook access' on.\n"
            "     Kaggle: Add-ons > Secrets > Add a new secret, and tick it for this notebook.\n"
            f"     Elsewhere: set the environment variable {SECRET} before starting Jupyter.\n"
            "  4. Run this cell again. Never paste the token into a notebook cell: it would be saved with it.\n"
            f"If you changed the {kind}'s name, check its spelling too: the Hub answers a wrong name the same way.",
            f"{name}을(를) 내려받지 못했습니다. 게이티드(gated) {kind_ko}이라 Hugging Face Hub가 접근을 거부했습니다"
            "(토큰이 없거나, 토큰에 접근 권한이 없습니다). 이렇게 해결하세요:\n"
            f"  1. {where}에 로그인해 {terms_ko}에 동의합니다.\n"
            "  2. https://huggingface.co/settings/tokens 에서 'Read' 권한 토큰을 만듭니다.\n"
            f"  3. 그 토큰을 {SECRET}라는 이름의 시크릿으로 추가합니다:\n"
            "     Colab: 왼쪽 사이드바의 열쇠 아이콘 > 새 보안 비밀 추가(Add new secret), '노트북 액세스'를 켭니다.\n"
            "     Kaggle: Add-ons > Secrets > Add a new secret, 이 노트북에 쓰도록 체크합니다.\n"
            f"     그 밖의 환경: Jupyter를 시작하기 전에 환경 변수 {SECRET}를 설정합니다.\n"
            "  4. 이 셀을 다시 실행합니다. 토큰을 노트북 셀에 붙여 넣지 마세요. 노트북과 함께 저장됩니다.\n"
            f"{kind_ko} 이름을 바꿨다면 철자도 확인하세요. 이름이 틀려도 Hub는 같은 식으로 답합니다."
        ))


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
    status = token_status()
    return pick(MESSAGES[status], MESSAGES_KO[status])


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
