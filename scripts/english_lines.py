"""List the English sentences a Korean notebook printed: its outputs (stdout, stderr, errors, display text).

A Korean learner should read nothing they must act on in English. Labels, library names, paths, commands and
library output the course cannot change are allowed (ALLOWED); anything else with four or more English words in a
row is listed.
Usage: python scripts/english_lines.py build/notebooks/ko/*.ipynb     (exit 1 when a line is listed)
"""
import json
import re
import sys
from pathlib import Path

# Four or more English words in a row (a word: letters, maybe with an apostrophe or a hyphen inside).
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'-]*(?:[ ,]+[A-Za-z][A-Za-z'-]*){3,}")
# English the course keeps on purpose: menu paths of Colab/Kaggle's English UI, library names and log lines that
# come from the libraries themselves, print labels glossed in the Korean markdown.
ALLOWED = (
    "Run > Restart & clear cell outputs", "Runtime > Restart session", "Runtime > Change runtime type",
    "Settings > Change visibility", "Add-ons > Secrets > Add a new secret", "Add new secret", "Notebook access",
    "Failed to load CPU gemm_4bit_forward from kernels-community", "ESTIMATE, not measured on a T4",
    "fused LM", "Change runtime type", "T4 GPU",
)


def english_sentences(text: str, allowed=ALLOWED) -> list[str]:
    """Return the runs of four or more English words in text that no allowed phrase covers."""
    for phrase in sorted(allowed, key=len, reverse=True):
        text = text.replace(phrase, " ")
    text = re.sub(r"\S*[/\\._=()\[\]{}<>`]\S*", " ", text)  # paths, code, identifiers, URLs
    return [m.group(0) for m in ENGLISH_RUN.finditer(text)]


def output_texts(notebook: dict) -> list[str]:
    """Return every text a notebook's outputs show: streams, errors and text/plain or text/markdown displays."""
    texts = []
    for cell in notebook.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append("".join(out.get("text", "")))
            elif out.get("output_type") == "error":
                texts.append(f"{out.get('ename')}: {out.get('evalue')}")
            else:
                data = out.get("data", {})
                for kind in ("text/plain", "text/markdown"):
                    if kind in data:
                        texts.append("".join(data[kind]))
    return texts


def english_lines(path: str | Path, allowed=ALLOWED) -> list[str]:
    """Return each output line of the notebook at path that holds an English sentence outside the allow-list."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    lines = []
    for text in output_texts(notebook):
        lines += [line for line in text.splitlines() if english_sentences(line, allowed)]
    return lines


if __name__ == "__main__":
    found = False
    for name in sys.argv[1:]:
        for line in english_lines(name):
            found = True
            print(f"{name}: {line}")
    sys.exit(1 if found else 0)
