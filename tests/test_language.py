"""The session's language picks the teaching lines: English by default, Korean after a Korean setup cell."""

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import language, runtime


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    language.set_language("en")


@pytest.mark.parametrize(("edition", "expected"), [
    ("notebooks/", "en"), ("notebooks/ko/", "ko"), ("notebooks/ko", "ko"), ("ko", "ko"), ("notebooks/kor/", "en"),
])
def test_an_editions_folder_names_its_language(edition, expected):
    assert language.edition_language(edition) == expected


def test_english_is_the_default_and_korean_is_picked_after_set_language():
    assert language.current() == "en" and language.pick("right", "맞았습니다") == "right"
    language.set_language("ko")
    assert language.current() == "ko" and language.pick("right", "맞았습니다") == "맞았습니다"


@pytest.mark.parametrize("bad", ["kr", "KO", None, ""])
def test_an_unknown_language_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="language must be one of"):
        language.set_language(bad)


def test_the_mode_line_follows_the_language(monkeypatch):
    monkeypatch.delenv("COURSE_MODE", raising=False)
    rt = replace(runtime.detect(), platform="colab", mode="smoke", gpu_count=0)
    english = runtime.describe(rt)
    language.set_language("ko")
    korean = runtime.describe(rt)
    assert english.startswith("Smoke mode") and not re.search("[\uac00-\ud7a3]", english)
    assert korean.startswith("스모크 모드") and "런타임 > 런타임 유형 변경 > T4 GPU" in korean


def test_a_fresh_session_speaks_english_until_a_setup_cell_says_otherwise():
    # In this process other tests may have set the language: only a new interpreter shows the default.
    code = "from helpers import language; print(language.current(), language.pick('right', '맞았습니다'))"
    env = dict(os.environ, PYTHONPATH=str(Path(language.__file__).resolve().parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["en", "right"]


@pytest.mark.parametrize("bad", [None, 3, Path("notebooks/ko"), b"notebooks/ko/"])
def test_an_edition_that_is_not_a_folder_name_is_refused_by_name(bad):
    with pytest.raises(TypeError, match="edition must be a notebook folder"):
        language.edition_language(bad)
