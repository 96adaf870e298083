"""Point the badges, the README table, the setup cells and the notebooks' links at the release in course.toml.

Writes colab_badges.md, rewrites each notebook's "badges" and "setup" cells, its links to the repository's own
files (docs/facts.md, docs/glossary.md, ...) and its kernel metadata (nothing else), and the README table between
<!-- notebooks:start --> and <!-- notebooks:end -->. The English notebooks live in notebooks/, the Korean edition
(when there is one) in notebooks/ko/ under the same file names.
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
KO_START, KO_END = "<!-- notebooks-ko:start -->", "<!-- notebooks-ko:end -->"
# What each notebook teaches and how long it runs: the README's table shows these, the one place the course states
# its run times (a notebook's "Time:" line should say the same or point here). The CPU times are smoke-mode runs
# measured with `make course` on an idle 2-core machine (2026-11-28: 14, 19, 20, 19 and 24 s, most of it imports);
# on 2026-12-06, on 2 cores shared with other jobs (load 5), the English / Korean runs took 10 / 23, 33 / 31,
# 28 / 25, 22 / 21 and 38 / 50 s. Since then the tiny model is committed (data/tiny_gemma): no run builds it. Later on
# 2026-12-06 (load 3.6-4.8 on the 2 cores): 05 33 / 34 s; 06 after 05 21 / 13 s; 06 alone, which trains 05's smoke
# run first, 19 / 17 s. Remeasure after a notebook changes shape. T4 times stay "not measured" until someone runs the
# notebook on a T4 and writes the figure here (05's is helpers/estimate.py's estimate, labelled as such).
TABLE = {
    "01_absmax_int8.ipynb": ("Absmax int8, row-wise and block-wise, checked bit for bit against bitsandbytes",
                             "not measured", "about 15 s"),
    "02_nf4.ipynb": ("NF4 built from normal quantiles; NF4 vs FP4 vs Int4 error", "not measured", "about 20 s"),
    "03_double_quantization.ipynb": ("Double quantization, bits per parameter, Gemma-2B's 4-bit memory predicted",
                                     "not measured", "about 20 s"),
    "04_paged_optimizers.ipynb": ("Optimizer state is memory; what paged optimizers do (and what they don't)",
                                  "not measured", "about 20 s"),
    "05_gemma_qlora_t4.ipynb": ("The post's Gemma-2B QLoRA run on today's libraries: train and save the adapter",
                                # estimate.readme_time(), the one place the T4 times come from (a test checks)
                                ("1.0–2.1 h (`t4`), 0.8–1.6 h (`t4_fast`); on Kaggle's two T4s 0.5–1.1 h and "
                                 "0.4–0.8 h (never tried): estimated (`helpers/estimate.py`), not measured on a T4"),
                                "about 25 s"),
    "06_did_it_learn.ipynb": ("Did it learn? The base model against base + adapter on held-out rows; merge and share",
                              "not measured", "about 20 s"),
}
COLAB_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_SVG = "https://kaggle.com/static/images/open-in-kaggle.svg"
# The first code cell of every notebook, in both editions. On Colab and Kaggle it installs the release and its pinned
# libraries; everywhere it then checks them (helpers.setup_check), and importing helpers first also keeps a
# bitsandbytes message that does not apply to the course out of the notebook (helpers/__init__.py).
SETUP = '''# Colab and Kaggle: install the course ({ref}) and its pinned libraries (locally `make` did); then check.
import os
import sys

if "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
    %pip install -q -r https://raw.githubusercontent.com/{repo}/{ref}/requirements.txt "git+https://github.com/{repo}@{ref}"
    %pip uninstall -q -y torchao  # peft 0.21 refuses the hosts' torchao 0.10 beside a plain nn.Linear; not needed
from helpers.setup_check import check_install  # "No module named 'helpers'": the install failed (Kaggle: Internet on)

check_install("{ref}", edition="{edition}")  # the edition's folder also sets the language of printed lines'''
# The kernel that `make` installs (the Makefile's `ipykernel install --name python3`) as JupyterLab writes it into a
# notebook when the kernel starts: a notebook saved with anything else opens as "modified" at once. JupyterLab also
# writes the running Python's version into language_info; this is the course's reference Python (the venv the
# tests run in); on another Python that one field still changes when the notebook opens.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3", "version": "3.11.7"}
# A markdown link to a file of the repository outside the notebook's folder: relative ("../docs/facts.md#x" from
# notebooks/, "../../docs/glossary.md" from notebooks/ko/), or absolute at a release ("https://github.com/<repo>/blob/
# <ref>/docs/facts.md"). Relative links are dead on Colab and under a JupyterLab served from notebooks/; the absolute
# link at the release works on GitHub, on Colab, on Kaggle and in JupyterLab alike.
REPO_LINK = re.compile(r"(?P<open>\]\(\s*)(?P<target>(?:\.\./)+|https://github\.com/(?P<repo>[\w.-]+/[\w.-]+)/blob/"
                       r"(?P<ref>[\w.-]+)/)(?P<path>[^)\s#]+)(?P<anchor>#[^)\s]*)?")
# Where each edition's notebooks are, and how its table column and badge page section are headed.
EDITIONS = {"en": ("notebooks", "English"), "ko": ("notebooks/ko", "한국어")}


def read_setting(root: Path) -> tuple[str, str]:
    """The repository ("owner/name") and the release ref (a tag "v<version>" or a commit) from course.toml."""
    setting = tomllib.loads((root / "course.toml").read_text())
    repo, ref = setting.get("repo", ""), setting.get("ref", "")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ValueError(f'course.toml: repo must look like "owner/name", got {repo!r}')
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    # A moving branch would let the notebooks and the installed helpers drift apart; a tag must name this version,
    # so that pip sees a new version and reinstalls helpers in a session that had an older release.
    if not (re.fullmatch(r"[0-9a-f]{40}", ref) or ref == f"v{version}"):
        raise ValueError(f"course.toml: ref must be the release tag 'v{version}' (the version in pyproject.toml) "
                         f"or a 40-digit commit, got {ref!r}")
    return repo, ref


def editions(root: Path) -> list[str]:
    """The editions that have notebooks: "en", and "ko" once notebooks/ko/ holds some."""
    return [ed for ed in EDITIONS if notebooks(root, ed)]


def notebooks(root: Path, edition: str = "en") -> list[Path]:
    """An edition's notebooks, in order."""
    return sorted((root / EDITIONS[edition][0]).glob("[0-9][0-9]_*.ipynb"))


def colab_url(repo: str, ref: str, path: str) -> str:
    """The Open-in-Colab link of a notebook (path: inside the repository, e.g. notebooks/02_nf4.ipynb)."""
    return f"https://colab.research.google.com/github/{repo}/blob/{ref}/{path}"


def kaggle_url(repo: str, ref: str, path: str) -> str:
    """The Open-in-Kaggle link of a notebook: Kaggle imports it from its GitHub page."""
    return f"https://www.kaggle.com/kernels/welcome?src=https://github.com/{repo}/blob/{ref}/{path}"


def badges(repo: str, ref: str, path: str, sep: str = "\n") -> str:
    """The two badges of a notebook, as markdown."""
    return (f"[![Open In Colab]({COLAB_SVG})]({colab_url(repo, ref, path)}){sep}"
            f"[![Open In Kaggle]({KAGGLE_SVG})]({kaggle_url(repo, ref, path)})")


def setup_cell(repo: str, ref: str, edition: str = "notebooks/") -> str:
    """The setup cell's source: the same in both editions but for the edition's folder ("notebooks/ko/")."""
    return SETUP.format(repo=repo, ref=ref, edition=edition)


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


def relpath(root: Path, path: Path) -> str:
    """A notebook's path inside the repository, with forward slashes."""
    return path.relative_to(root).as_posix()


def table(root: Path, repo: str, ref: str) -> str:
    """The README's notebook table: one row per English notebook."""
    rows = ["| # | Notebook | What you learn | T4 time | CPU time (smoke mode) | Open |", "|---|---|---|---|---|---|"]
    for path in notebooks(root):
        learn, t4, cpu = TABLE.get(path.name, ("", "not measured", "not measured"))
        rows.append(f"| {path.name[:2]} | [{title(path)}]({relpath(root, path)}) | {learn} | {t4} | {cpu} | "
                    f"{badges(repo, ref, relpath(root, path), sep=' ')} |")
    return "\n".join(rows)


def ko_table(root: Path, repo: str, ref: str) -> str:
    """The README's table of the Korean edition, in its Korean section."""
    rows = ["| # | 노트북 | 열기 |", "|---|---|---|"]
    for path in notebooks(root, "ko"):
        rows.append(f"| {path.name[:2]} | [{title(path)}]({relpath(root, path)}) | "
                    f"{badges(repo, ref, relpath(root, path), sep=' ')} |")
    return "\n".join(rows)


def badges_page(root: Path, repo: str, ref: str) -> str:
    """colab_badges.md: both badges for every notebook of every edition."""
    parts = ["# Open the notebooks on Colab or Kaggle", "",
             (f"Generated by `scripts/sync_badges.py` from `course.toml` (repository `{repo}`, release "
             f"`{ref}`): do not edit by hand. On Colab pick a T4 GPU runtime; on Kaggle turn on the "
             "GPU T4 x2 accelerator (notebook 05 trains on one of the two unless you set GPUS = 2) and "
             "Settings > Internet (it needs a phone-verified account). On a GPU, notebooks "
             f"02-{notebooks(root)[-1].name[:2]} load the gated google/gemma-2b: add your Hugging Face token "
             "as a secret named HF_TOKEN (see the README)."), ""]
    several = len(editions(root)) > 1
    for edition in editions(root):
        if several:
            parts += [f"## {EDITIONS[edition][1]}", ""]
        for path in notebooks(root, edition):
            parts += [f"{'###' if several else '##'} {path.name[:2]} · {title(path)}", "",
                      badges(repo, ref, relpath(root, path)), ""]
    return "\n".join(parts)


def repo_url(repo: str, ref: str, path: str) -> str:
    """The GitHub page of a file of the repository at the release (path: inside the repository, e.g. docs/facts.md)."""
    return f"https://github.com/{repo}/blob/{ref}/{path}"


def badge_setting(source: str) -> tuple[str, str] | None:
    """The repository and ref that a badges cell points at (the setting the notebook was last synced to)."""
    match = re.search(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/", source)
    return (match[1], match[2]) if match else None


def synced_links(root: Path, path: Path, source: str, repo: str, ref: str,
                 old: tuple[str, str] | None = None) -> str:
    """A markdown cell's source with every link to a file of the repository made absolute at the release.

    Relative links that leave the notebook's folder and links at the old setting's release (old: the repository and
    ref the notebook's badges named) are rewritten; links to other repositories are left alone. A link to a file the
    repository does not have is an error.
    """
    own = {(repo, ref)} | ({old} if old else set())

    def rewrite(match: re.Match) -> str:
        target, file = match["target"], match["path"]
        if match["repo"]:
            if (match["repo"], match["ref"]) not in own:
                return match[0]
            inside = file
        else:
            resolved = (path.parent / target / file).resolve()
            if not resolved.is_relative_to(root.resolve()):
                return match[0]
            inside = resolved.relative_to(root.resolve()).as_posix()
        if not (root / inside).exists():
            raise ValueError(f"{relpath(root, path)}: the link {target}{file} names {inside}, which does not exist")
        return f"{match['open']}{repo_url(repo, ref, inside)}{match['anchor'] or ''}"

    return REPO_LINK.sub(rewrite, source)


def synced_notebook(root: Path, path: Path, repo: str, ref: str) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook with its badges and setup cells, its links and its kernel metadata rewritten, and what changed."""
    nb = nbformat.read(path, as_version=4)
    name = relpath(root, path)
    wanted = {"badges": badges(repo, ref, name), "setup": setup_cell(repo, ref, name.rpartition("/")[0] + "/")}
    old = next((badge_setting(c.source) for c in nb.cells if c.get("id") == "badges"), None)
    changed = []
    for cell in nb.cells:
        if cell.get("id") in wanted:
            if cell.source != wanted[cell.id]:
                cell.source = wanted[cell.id]
                changed.append(f"{name}: cell {cell.id!r}")
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
                cell.outputs, cell.execution_count = [], None
                changed.append(f"{name}: outputs of cell {cell.id!r}")
        elif cell.cell_type == "markdown":
            linked = synced_links(root, path, cell.source, repo, ref, old)
            if linked != cell.source:
                cell.source = linked
                changed.append(f"{name}: links in cell {cell.get('id')!r}")
    missing = set(wanted) - {cell.get("id") for cell in nb.cells}
    if missing:
        raise ValueError(f"{name}: no cell with id {sorted(missing)}; the contract asks for 'badges' and 'setup'")
    for key, value in (("kernelspec", KERNELSPEC), ("language_info", LANGUAGE_INFO)):
        if nb.metadata.get(key) != value:
            nb.metadata[key] = value
            changed.append(f"{name}: metadata {key!r}")
    return nb, changed


def synced_readme(text: str, new_table: str, start: str = START, end: str = END) -> str:
    """The README with the text between the markers replaced by the table (unchanged without markers)."""
    if start not in text or end not in text:
        return text
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{new_table}\n{end}{tail}"


def sync(root: Path = ROOT, check: bool = False) -> list[str]:
    """Bring every generated place up to date (or, with check, only list what is out of date)."""
    repo, ref = read_setting(root)
    drift = []
    page = root / "colab_badges.md"
    new_page = badges_page(root, repo, ref)
    if not page.exists() or page.read_text() != new_page:
        drift.append(page.name)
        if not check:
            page.write_text(new_page)
    readme = root / "README.md"
    if readme.exists():
        old = readme.read_text()
        new = synced_readme(synced_readme(old, table(root, repo, ref)), ko_table(root, repo, ref), KO_START, KO_END)
        if new != old:
            drift.append("README.md: the notebook table")
            if not check:
                readme.write_text(new)
    for edition in editions(root):
        for path in notebooks(root, edition):
            nb, changed = synced_notebook(root, path, repo, ref)
            drift += changed
            if changed and not check:
                nbformat.write(nb, path)
    return drift


def main(argv: list[str]) -> int:
    """Command line: write, or with --check report drift and fail on it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository to sync (default: this one)")
    args = parser.parse_args(argv)
    drift = sync(args.root, check=args.check)
    for item in drift:
        print(("out of date: " if args.check else "updated: ") + item)
    if not drift:
        print("badges, README table and setup cells match course.toml")
    return 1 if drift and args.check else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
