"""The notebook's language, for the few printed lines that teach: English, or Korean in notebooks/ko/."""

LANGUAGES = ("en", "ko")
# The one piece of session state in helpers: set by the setup cell of each notebook (setup_check.check_install
# passes its edition's folder), read by the lines that teach. Code cells are the same in both editions.
_SESSION = {"language": "en"}


def edition_language(edition: str) -> str:
    """Return the language of an edition's notebook folder: "ko" for notebooks/ko/, else "en"."""
    if not isinstance(edition, str):
        raise TypeError(f"edition must be a notebook folder such as 'notebooks/' or 'notebooks/ko/', got {edition!r}.")
    return "ko" if edition.rstrip("/").endswith("/ko") or edition.rstrip("/") == "ko" else "en"


def set_language(language: str) -> None:
    """Print the teaching lines of this session in `language` ("en" or "ko")."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}.")
    _SESSION["language"] = language


def current() -> str:
    """Return the session's language ("en" unless a Korean notebook's setup cell set "ko")."""
    return _SESSION["language"]


def pick(en: str, ko: str) -> str:
    """Return the English or the Korean text, by the session's language."""
    return ko if _SESSION["language"] == "ko" else en
