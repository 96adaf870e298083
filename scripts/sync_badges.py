"""Point every badge, the README's notebook table and each notebook's setup cell at the repository in course.toml.

Writes colab_badges.md, rewrites each notebook's "badges" and "setup" cells (nothing else) and the
README table between <!-- notebooks:start --> and <!-- notebooks:end -->.
Usage: python scripts/sync_badges.py           # write
       python scripts/sync_badges.py --check   # exit 1 and list what is out of date
"""
import argparse
import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
# What each notebook teaches and how long it runs: the README's table shows these. The CPU times
# are smoke-mode runs measured with `make course` on an idle 2-core machine (2026-11-28: 14, 19, 20,
# 19 and 24 s, most of it imports); T4 times stay "not measured" until someone runs the notebook on a
# T4 and writes the figure here (05's is the benchmark's projection, labelled as such).
TABLE = {
    "01_absmax_int8.ipynb": ("Absmax int8, row-wise and block-wise, checked bit for bit against bitsandbytes",
                             "not measured", "about 15 s"),
    "02_nf4.ipynb": ("NF4 built from normal quantiles; NF4 vs FP4 vs Int4 error", "not measured", "about 20 s"),
    "03_double_quantization.ipynb": ("Double quantization, bits per parameter, Gemma-2B's 4-bit memory predicted",
                                     "not measured", "about 20 s"),
    "04_paged_optimizers.ipynb": ("Optimizer state is memory; what paged optimizers do (and what they don't)",
                                  "not measured", "about 20 s"),
    "05_gemma_qlora_t4.ipynb": ("The post's Gemma-2B QLoRA run on today's libraries: train, generate, save, reload",
                                "about 2.3 h (`t4`) / 1.4 h (`t4_fast`): projected from an H200 run, not measured on a T4", "about 25 s"),
}
COLAB_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_SVG = "https://kaggle.com/static/images/open-in-kaggle.svg"
SETUP = '''# On Colab or Kaggle: install the course's pinned libraries and its `helpers` package.
# Locally, `make course` has already done this, so the cell does nothing.
import os, sys
if "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
    %pip install -q -r https://raw.githubusercontent.com/{repo}/{branch}/requirements.txt "git+https://github.com/{repo}@{branch}"'''


def read_setting(root: Path) -> tuple[str, str]:
    """The repository ("owner/name") and branch from course.toml."""
    setting = tomllib.loads((root / "course.toml").read_text())
    repo, branch = setting.get("repo", ""), setting.get("branch", "")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ValueError(f'course.toml: repo must look like "owner/name", got {repo!r}')
    if not re.fullmatch(r"[\w./-]+", branch):
        raise ValueError(f"course.toml: branch must be a branch name, got {branch!r}")
    return repo, branch


def notebooks(root: Path) -> list[Path]:
    """The course's notebooks, in order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def colab_url(repo: str, branch: str, file: str) -> str:
    """The Open-in-Colab link of a notebook."""
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{file}"


def kaggle_url(repo: str, branch: str, file: str) -> str:
    """The Open-in-Kaggle link of a notebook: Kaggle imports it from its GitHub page."""
    return f"https://www.kaggle.com/kernels/welcome?src=https://github.com/{repo}/blob/{branch}/notebooks/{file}"


def badges(repo: str, branch: str, file: str, sep: str = "\n") -> str:
    """The two badges of a notebook, as markdown."""
    return (f"[![Open In Colab]({COLAB_SVG})]({colab_url(repo, branch, file)}){sep}"
            f"[![Open In Kaggle]({KAGGLE_SVG})]({kaggle_url(repo, branch, file)})")


def title(path: Path) -> str:
    """The first heading of the notebook's first markdown cell without its number (the file name if it has none)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    # the table and the page number the notebooks themselves: "04 · Paged ..." -> "Paged ..."
                    return re.sub(r"^(Notebook\s+)?\d+\s*[·.:\-–—]\s*", "", line[2:].strip())
            break
    return path.stem


def table(root: Path, repo: str, branch: str) -> str:
    """The README's notebook table: one row per notebook."""
    rows = ["| # | Notebook | What you learn | T4 time | CPU time (smoke mode) | Open |",
            "|---|---|---|---|---|---|"]
    for path in notebooks(root):
        learn, t4, cpu = TABLE.get(path.name, ("", "not measured", "not measured"))
        rows.append(f"| {path.name[:2]} | [{title(path)}](notebooks/{path.name}) | {learn} | {t4} | {cpu} | "
                    f"{badges(repo, branch, path.name, sep=' ')} |")
    return "\n".join(rows)


def badges_page(root: Path, repo: str, branch: str) -> str:
    """colab_badges.md: both badges for every notebook."""
    parts = ["# Open the notebooks on Colab or Kaggle", "",
             f"Generated by `scripts/sync_badges.py` from `course.toml` (repository `{repo}`, branch "
             f"`{branch}`): do not edit by hand. On Colab pick a T4 GPU runtime; on Kaggle turn on the "
             "GPU T4 x2 accelerator (the course uses one of the two) and Settings > Internet (it needs a "
             "phone-verified account). On a GPU, notebooks 02-05 load the gated google/gemma-2b: add your "
             "Hugging Face token as a secret named HF_TOKEN (see the README).", ""]
    for path in notebooks(root):
        parts += [f"## {path.name[:2]} · {title(path)}", "", badges(repo, branch, path.name), ""]
    return "\n".join(parts)


def synced_notebook(path: Path, repo: str, branch: str) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook with its badges and setup cells rewritten, and what had to change."""
    nb = nbformat.read(path, as_version=4)
    wanted = {"badges": badges(repo, branch, path.name), "setup": SETUP.format(repo=repo, branch=branch)}
    changed = []
    for cell in nb.cells:
        if cell.get("id") in wanted:
            if cell.source != wanted[cell.id]:
                cell.source = wanted[cell.id]
                changed.append(f"{path.name}: cell {cell.id!r}")
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
                cell.outputs, cell.execution_count = [], None
                changed.append(f"{path.name}: outputs of cell {cell.id!r}")
    missing = set(wanted) - {cell.get("id") for cell in nb.cells}
    if missing:
        raise ValueError(f"{path.name}: no cell with id {sorted(missing)}; the contract asks for 'badges' and 'setup'")
    return nb, changed


def synced_readme(text: str, new_table: str) -> str:
    """The README with the text between the markers replaced by the table (unchanged without markers)."""
    if START not in text or END not in text:
        return text
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{new_table}\n{END}{tail}"


def sync(root: Path = ROOT, check: bool = False) -> list[str]:
    """Bring every generated place up to date (or, with check, only list what is out of date)."""
    repo, branch = read_setting(root)
    drift = []
    page = root / "colab_badges.md"
    new_page = badges_page(root, repo, branch)
    if not page.exists() or page.read_text() != new_page:
        drift.append(page.name)
        if not check:
            page.write_text(new_page)
    readme = root / "README.md"
    if readme.exists():
        old = readme.read_text()
        new = synced_readme(old, table(root, repo, branch))
        if new != old:
            drift.append("README.md: the notebook table")
            if not check:
                readme.write_text(new)
    for path in notebooks(root):
        nb, changed = synced_notebook(path, repo, branch)
        drift += changed
        if changed and not check:
            nbformat.write(nb, path)
    return drift


def main(argv: list[str]) -> int:
    """Command line: write, or with --check report drift and fail on it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    args = parser.parse_args(argv)
    drift = sync(check=args.check)
    for item in drift:
        print(("out of date: " if args.check else "updated: ") + item)
    if not drift:
        print("badges, README table and setup cells match course.toml")
    return 1 if drift and args.check else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
