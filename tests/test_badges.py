"""The badges, the README's table and every setup cell agree with course.toml and point at real notebooks."""
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

import sync_badges

ROOT = Path(__file__).resolve().parent.parent
SETTING = tomllib.loads((ROOT / "course.toml").read_text())
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Every link the sync writes names a repository, a branch and (except the install line) a notebook.
LINK = re.compile(r"(?:colab\.research\.google\.com/github/|src=https://github\.com/)"
                  r"(?P<repo>[\w.-]+/[\w.-]+)/blob/(?P<branch>[\w./-]+?)/notebooks/(?P<file>[\w.-]+\.ipynb)")
INSTALL = re.compile(r"raw\.githubusercontent\.com/(?P<repo>[\w.-]+/[\w.-]+)/(?P<branch>[\w./-]+?)/requirements\.txt"
                     r" \"git\+https://github\.com/(?P<repo2>[\w.-]+/[\w.-]+)@(?P<branch2>[\w./-]+)\"")


def _readme_table(root: Path) -> str:
    text = (root / "README.md").read_text()
    return text.split(sync_badges.START, 1)[1].split(sync_badges.END, 1)[0]


def _cell(path: Path, cell_id: str) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.get("id") == cell_id)


def _links(text: str) -> list[tuple[str, str, str]]:
    return [(m["repo"], m["branch"], m["file"]) for m in LINK.finditer(text)]


def _places(root: Path) -> dict[str, str]:
    places = {"colab_badges.md": (root / "colab_badges.md").read_text(), "README": _readme_table(root)}
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        places[path.name] = _cell(path, "badges")
    return places


def test_the_course_has_notebooks_to_badge():
    assert NOTEBOOKS, "no notebooks found"
    assert set(NOTEBOOKS) <= set(sync_badges.TABLE), "a notebook has no row in sync_badges.TABLE"


def test_nothing_drifted_from_course_toml():
    assert sync_badges.sync(ROOT, check=True) == [], "run `python scripts/sync_badges.py`"


def test_every_link_points_at_an_existing_notebook_of_the_configured_repo():
    expected = (SETTING["repo"], SETTING["branch"])
    for place, text in _places(ROOT).items():
        links = _links(text)
        assert links, f"{place} has no badge links"
        for repo, branch, file in links:
            assert (repo, branch) == expected, f"{place} points at {repo}@{branch}"
            assert file in NOTEBOOKS, f"{place} links {file}, which does not exist"
            if place.endswith(".ipynb"):
                assert file == place, f"{place}'s badges open {file}"
    # each notebook: both badges in the badges page, in the README table and in itself
    for file in NOTEBOOKS:
        for place in ("colab_badges.md", "README", file):
            assert sorted(f for *_, f in _links(_places(ROOT)[place]) if f == file) == [file, file], (place, file)


def test_every_setup_cell_installs_from_the_configured_repo():
    for file in NOTEBOOKS:
        match = INSTALL.search(_cell(ROOT / "notebooks" / file, "setup"))
        assert match, f"{file}: the setup cell has no install line"
        assert match["repo"] == match["repo2"] == SETTING["repo"]
        assert match["branch"] == match["branch2"] == SETTING["branch"]


def test_readme_has_one_row_per_notebook():
    rows = [line for line in _readme_table(ROOT).splitlines() if line.startswith("| 0")]
    assert [re.search(r"\(notebooks/([\w.-]+)\)", r)[1] for r in rows] == NOTEBOOKS


@pytest.fixture
def fork(tmp_path):
    """A copy of the repository's generated places and their sources, as a fork would have it."""
    for name in ("course.toml", "README.md", "colab_badges.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "sync_badges.py", tmp_path / "scripts")
    toml = (tmp_path / "course.toml").read_text()
    toml = toml.replace(f'repo = "{SETTING["repo"]}"', 'repo = "someone/my-fork"')
    toml = toml.replace(f'branch = "{SETTING["branch"]}"', 'branch = "workshop"')
    (tmp_path / "course.toml").write_text(toml)
    return tmp_path


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "scripts" / "sync_badges.py"), *args],
                          capture_output=True, text=True, cwd=root)


def test_changing_the_setting_updates_every_place(fork):
    before = {p.name: nbformat.read(p, as_version=4) for p in (fork / "notebooks").glob("*.ipynb")}
    check = _run(fork, "--check")
    assert check.returncode == 1 and "out of date" in check.stdout
    assert _run(fork).returncode == 0
    assert _run(fork, "--check").returncode == 0
    for place, text in _places(fork).items():
        assert SETTING["repo"] not in text, f"{place} still points at the old repository"
        assert {(r, b) for r, b, _ in _links(text)} == {("someone/my-fork", "workshop")}, place
    for name, old in before.items():
        new = nbformat.read(fork / "notebooks" / name, as_version=4)
        match = INSTALL.search(_cell(fork / "notebooks" / name, "setup"))
        assert (match["repo"], match["branch"]) == ("someone/my-fork", "workshop")
        # everything but the two generated cells is untouched, and nothing gained outputs
        assert [c for c in new.cells if c.get("id") not in ("badges", "setup")] == \
               [c for c in old.cells if c.get("id") not in ("badges", "setup")]
        assert new.metadata == old.metadata
        assert all(not c.outputs for c in new.cells if c.cell_type == "code")


def test_a_malformed_setting_is_refused(fork):
    (fork / "course.toml").write_text('repo = "no-slash"\nbranch = "main"\n')
    result = _run(fork, "--check")
    assert result.returncode != 0 and 'repo must look like "owner/name"' in result.stderr
