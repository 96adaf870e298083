"""List the English sentences a Korean notebook printed: its outputs (stdout, stderr, errors, display text).

A Korean learner should read nothing they must act on in English. A line is listed when it holds four or more English
words in a row (one of them at least three letters long: "q, k, v, o" is maths) that none of these explains:
  - ALLOWED: menu paths of Colab/Kaggle's English UI, library log lines and exception text the course cannot change;
  - labels written in the code of the cell that printed them: code cells are the same in both editions, the learner
    reads the label in the code above its output, and the Korean markdown glosses it;
  - the output of a cell that shows something as it is (SHOWN_AS_IS: a library's own source; the model card, which
    is published on the Hub in English);
  - the English sample data and the post's prompt template (DATA_TEXTS), which notebook 05 prints with DATASET =
    "dolly" (the default) and notebook 06 with it.
Numbers, paths, code and identifiers end a run of words (a label such as "mean error 0.005 with the outlier" is two
runs). Text in HTML outputs (tables of answers: the model's own words) is not read.
Usage: python scripts/english_lines.py build/notebooks/ko/*.ipynb     (exit 1 when a line is listed)
"""
import json
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Four or more English words in a row, one space (or a comma and a space) apart: two spaces part a table's columns.
# A word: letters, maybe with an apostrophe or a hyphen inside.
WORD = r"[A-Za-z](?:[A-Za-z'-]*[A-Za-z])?"
ENGLISH_RUN = re.compile(rf"{WORD}(?:,? {WORD}){{3,}}")
# The end of one string literal and the start of the next (implicit concatenation across a line break).
JOINED_LITERALS = re.compile(r"""["']\s*\n\s*[frb]*["']""")
# A token that is code, not prose: a path, URL, identifier or number (a point inside it, not a full stop at its end).
CODE = re.compile(r"\S*(?:[/\\_=()\[\]{}<>`|]|\.\S)\S*")
# English the course keeps on purpose, with why.
ALLOWED = (
    # Colab's and Kaggle's menus are English in every language: the Korean markdown names them as shown.
    "Run > Restart & clear cell outputs", "Runtime > Restart session", "Runtime > Change runtime type",
    "Settings > Change visibility", "Add-ons > Secrets > Add a new secret", "Add new secret", "Notebook access",
    "Change runtime type", "T4 GPU",
    # bitsandbytes' own log line at import (harmless, docs/facts.md).
    "Failed to load CPU gemm_4bit_forward from kernels-community",
    # Python's TypeError for an argument a library dropped: notebook 05 shows the post's old keywords failing.
    "got an unexpected keyword argument",
    # labels glossed in the Korean markdown
    "ESTIMATE, not measured on a T4", "fused LM",
)
# A cell whose source holds one of these shows its output as it is, in English on purpose.
SHOWN_AS_IS = {
    "inspect.getsource": "a library's own source code (trl, bitsandbytes), quoted line by line",
    "hub.model_card(": "the model card: pushed to the Hub with the adapter, in English like the Hub's cards",
}
# The English sample (the post's data set's form) and the post's prompt template; the Korean sample is Korean.
DATA_FILES = ("sample_alpaca.jsonl",)


@cache
def data_texts() -> tuple[str, ...]:
    """The English texts a notebook may print as data: each field of the English sample's rows, the prompt template."""
    sys.path.insert(0, str(ROOT))
    from helpers import prompting

    texts = [prompting.TEMPLATE]
    for name in DATA_FILES:
        for line in (ROOT / "data" / name).read_text(encoding="utf-8").splitlines():
            texts += [v for v in json.loads(line).values() if isinstance(v, str)]
    return tuple(" ".join(t.split()) for t in texts)


def english_sentences(text: str, allowed=ALLOWED, known: tuple[str, ...] = ()) -> list[str]:
    """Return the runs of four or more English words in text that no allowed phrase covers and no known text holds."""
    for phrase in sorted(allowed, key=len, reverse=True):
        text = text.replace(phrase, " | ")
    text = CODE.sub(" | ", text)
    runs = [m.group(0) for m in ENGLISH_RUN.finditer(text)]
    return [run for run in runs if any(len(word) >= 3 for word in re.findall(WORD, run))
            and not any(" ".join(run.split()) in k for k in known)]


def output_texts(notebook: dict) -> list[tuple[str, str]]:
    """Return (cell source, text) for every text a notebook's outputs show: streams, errors, text or markdown displays.

    Cells whose output is shown as it is (SHOWN_AS_IS) are left out.
    """
    texts = []
    for cell in notebook.get("cells", []):
        source = "".join(cell.get("source", ""))
        if any(mark in source for mark in SHOWN_AS_IS):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append((source, "".join(out.get("text", ""))))
            elif out.get("output_type") == "error":
                texts.append((source, f"{out.get('ename')}: {out.get('evalue')}"))
            else:
                data = out.get("data", {})
                for kind in ("text/plain", "text/markdown"):
                    if kind in data:
                        texts.append((source, "".join(data[kind])))
    return texts


def notebook_english_lines(notebook: dict, allowed=ALLOWED, data: bool = True) -> list[str]:
    """Return each output line of an executed notebook that holds an English sentence nothing above explains.

    data: allow the English sample data and the prompt template (False for a run on the Korean data set, where
    only the template may show).
    """
    lines = []
    for source, text in output_texts(notebook):
        known = (" ".join(JOINED_LITERALS.sub("", source).split()), *(data_texts() if data else data_texts()[:1]))
        lines += [line for line in text.splitlines() if english_sentences(line, allowed, known)]
    return lines


def english_lines(path: str | Path, allowed=ALLOWED, data: bool = True) -> list[str]:
    """Return each output line of the executed notebook at path that holds an English sentence nothing explains."""
    return notebook_english_lines(json.loads(Path(path).read_text(encoding="utf-8")), allowed, data)


if __name__ == "__main__":
    found = False
    for name in sys.argv[1:]:
        for line in english_lines(name):
            found = True
            print(f"{name}: {line}")
    sys.exit(1 if found else 0)
