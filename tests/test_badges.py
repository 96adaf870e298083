"""The badges, the README's table, every setup cell and every link agree with course.toml and point at real files.

Both editions are checked: the English notebooks in notebooks/ and, once it exists, the Korean edition in notebooks/ko/.
Every notebook is also saved with the kernel that `make` installs, so JupyterLab does not open it as "modified".
"""
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
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FORK_COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Every link the sync writes names a repository, a release and a notebook's path inside the repository.
LINK = re.compile(r"(?:colab\.research\.google\.com/github/|src=https://github\.com/)"
                  r"(?P<repo>[\w.-]+/[\w.-]+)/blob/(?P<ref>[\w.-]+)/(?P<path>notebooks/(?:ko/)?[\w.-]+\.ipynb)")
INSTALL = re.compile(r"raw\.githubusercontent\.com/(?P<repo>[\w.-]+/[\w.-]+)/(?P<ref>[\w.-]+)/requirements\.txt"
                     r" \"git\+https://github\.com/(?P<repo2>[\w.-]+/[\w.-]+)@(?P<ref2>[\w.-]+)\"")
CHECK = re.compile(r"^check_install\(\"(?P<ref>[\w.-]+)\", edition=\"(?P<edition>[\w/]+)\"\)", re.MULTILINE)


def _paths(root: Path) -> list[str]:
    """Every notebook of every edition, as its path inside the repository."""
    return [sync_badges.relpath(root, p) for ed in sync_badges.editions(root) for p in sync_badges.notebooks(root, ed)]


def _readme_table(root: Path) -> str:
    """The README's generated tables: the English one and, in the Korean section, the Korean edition's."""
    text = (root / "README.md").read_text()
    tables = [text.split(start, 1)[1].split(end, 1)[0] for start, end in
              ((sync_badges.START, sync_badges.END), (sync_badges.KO_START, sync_badges.KO_END)) if start in text]
    return "\n".join(tables)


def _cell(path: Path, cell_id: str) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.get("id") == cell_id)


def _links(text: str) -> list[tuple[str, str, str]]:
    return [(m["repo"], m["ref"], m["path"]) for m in LINK.finditer(text)]


def _places(root: Path) -> dict[str, str]:
    places = {"colab_badges.md": (root / "colab_badges.md").read_text(), "README": _readme_table(root)}
    for path in _paths(root):
        places[path] = _cell(root / path, "badges")
    return places


def _assert_points_at(root: Path, repo: str, ref: str) -> None:
    paths = _paths(root)
    places = _places(root)
    for place, text in places.items():
        links = _links(text)
        assert links, f"{place} has no badge links"
        for got_repo, got_ref, path in links:
            assert (got_repo, got_ref) == (repo, ref), f"{place} points at {got_repo}@{got_ref}"
            assert path in paths, f"{place} links {path}, which does not exist"
            if place.endswith(".ipynb"):
                assert path == place, f"{place}'s badges open {path}"
    # each notebook of each edition: both badges in the badges page, in the README table and in itself
    for path in paths:
        for place in ("colab_badges.md", "README", path):
            assert [p for *_, p in _links(places[place]) if p == path] == [path, path], (place, path)
    setups = {path: _cell(root / path, "setup") for path in paths}
    for path, source in setups.items():
        match = INSTALL.search(source)
        assert match, f"{path}: the setup cell has no install line"
        assert match["repo"] == match["repo2"] == repo and match["ref"] == match["ref2"] == ref, path
        assert [m["ref"] for m in CHECK.finditer(source)] == [ref], f"{path}: the setup cell does not check {ref}"
        assert [m["edition"] for m in CHECK.finditer(source)] == [path.rpartition("/")[0] + "/"], path
    # the editions' setup cells may differ only in paths: their own folder
    assert len({source.replace("notebooks/ko/", "notebooks/") for source in setups.values()}) == 1


def test_the_course_has_notebooks_to_badge():
    assert NOTEBOOKS, "no notebooks found"
    assert set(NOTEBOOKS) <= set(sync_badges.TABLE), "a notebook has no row in sync_badges.TABLE"
    ko = [p.name for p in sync_badges.notebooks(ROOT, "ko")]
    assert set(ko) <= set(NOTEBOOKS), "the Korean edition has a notebook the English one lacks"


def test_course_toml_names_a_pinned_release():
    assert SETTING["ref"] == f"v{VERSION}" or re.fullmatch(r"[0-9a-f]{40}", SETTING["ref"])


def test_nothing_drifted_from_course_toml():
    assert sync_badges.sync(ROOT, check=True) == [], "run `python scripts/sync_badges.py`"


def test_every_place_points_at_the_configured_release():
    _assert_points_at(ROOT, SETTING["repo"], SETTING["ref"])


def test_readme_has_one_row_per_notebook():
    rows = [line for line in _readme_table(ROOT).splitlines() if line.startswith("| 0")]
    english = [re.search(r"\(notebooks/([\w.-]+)\)", r)[1] for r in rows if "(notebooks/ko/" not in r]
    korean = [re.search(r"\(notebooks/ko/([\w.-]+)\)", r)[1] for r in rows if "(notebooks/ko/" in r]
    assert english == NOTEBOOKS
    assert korean == [p.name for p in sync_badges.notebooks(ROOT, "ko")]


def test_the_setup_cell_is_python_once_its_pip_lines_are_set_aside():
    source = sync_badges.setup_cell("someone/fork", "v9.9.9")
    lines = [line.replace("%pip", "pass  #") for line in source.splitlines()]
    compile("\n".join(lines), "setup cell", "exec")
    assert all(len(line) <= 120 for line in source.splitlines() if "://" not in line)


@pytest.fixture
def fork(tmp_path):
    """A copy of the repository's generated places and their sources, as a fork would have it."""
    for name in ("course.toml", "pyproject.toml", "README.md", "colab_badges.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "docs", tmp_path / "docs")  # the files the notebooks link
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "sync_badges.py", tmp_path / "scripts")
    toml = (tmp_path / "course.toml").read_text()
    toml = toml.replace(f'repo = "{SETTING["repo"]}"', 'repo = "someone/my-fork"')
    toml = toml.replace(f'ref = "{SETTING["ref"]}"', f'ref = "{FORK_COMMIT}"')
    (tmp_path / "course.toml").write_text(toml)
    return tmp_path


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "scripts" / "sync_badges.py"), *args],
                          check=False, capture_output=True, text=True, cwd=root)


def _without_link_targets(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The cell with every link to the repository's own files cut down to the file's path (where it points)."""
    cell = nbformat.from_dict(dict(cell))
    if cell.cell_type == "markdown":
        cell.source = sync_badges.REPO_LINK.sub(lambda m: f"{m['open']}{m['path']}{m['anchor'] or ''}", cell.source)
    return cell


def _repo_links(root: Path, path: str) -> list[re.Match]:
    """Every link in a notebook's markdown to a file of the repository (relative, or absolute at some release)."""
    nb = nbformat.read(root / path, as_version=4)
    return [m for c in nb.cells if c.cell_type == "markdown" for m in sync_badges.REPO_LINK.finditer(c.source)
            if not m["repo"] or (root / m["path"]).exists()]


def _generated_cells_only_changed(root: Path, before: dict) -> None:
    for path, old in before.items():
        new = nbformat.read(root / path, as_version=4)
        # everything but the two generated cells and the links' targets is untouched, and nothing gained outputs
        assert [_without_link_targets(c) for c in new.cells if c.get("id") not in ("badges", "setup")] == \
               [_without_link_targets(c) for c in old.cells if c.get("id") not in ("badges", "setup")]
        assert new.metadata == {**old.metadata, "kernelspec": sync_badges.KERNELSPEC,
                                "language_info": sync_badges.LANGUAGE_INFO}
        assert all(not c.outputs for c in new.cells if c.cell_type == "code")


def test_changing_the_setting_updates_every_place(fork):
    before = {p: nbformat.read(fork / p, as_version=4) for p in _paths(fork)}
    check = _run(fork, "--check")
    assert check.returncode == 1 and "out of date" in check.stdout
    assert _run(fork).returncode == 0
    assert _run(fork, "--check").returncode == 0
    for place, text in _places(fork).items():
        assert SETTING["repo"] not in text, f"{place} still points at the old repository"
    _assert_points_at(fork, "someone/my-fork", FORK_COMMIT)
    _assert_links_at(fork, "someone/my-fork", FORK_COMMIT)
    _generated_cells_only_changed(fork, before)


def test_a_korean_edition_is_listed_and_synced_beside_the_english_one(fork):
    (fork / "notebooks" / "ko").mkdir(exist_ok=True)
    for name in NOTEBOOKS[:2]:
        if not (fork / "notebooks" / "ko" / name).exists():
            shutil.copy(fork / "notebooks" / name, fork / "notebooks" / "ko" / name)
    assert sync_badges.editions(fork) == ["en", "ko"]
    before = {p: nbformat.read(fork / p, as_version=4) for p in _paths(fork)}
    assert _run(fork).returncode == 0 and _run(fork, "--check").returncode == 0
    _assert_points_at(fork, "someone/my-fork", FORK_COMMIT)
    page, table = (fork / "colab_badges.md").read_text(), _readme_table(fork)
    assert "## English" in page and "## 한국어" in page
    assert "| # | 노트북 | 열기 |" in table.splitlines()
    ko_rows = [line for line in table.splitlines() if "notebooks/ko/" in line]
    assert len(ko_rows) == len(sync_badges.notebooks(fork, "ko"))
    _generated_cells_only_changed(fork, before)


def _assert_links_at(root: Path, repo: str, ref: str) -> None:
    """Every link of every notebook to the repository's own files is absolute, at the release, to a file that exists."""
    links = {path: _repo_links(root, path) for path in _paths(root)}
    assert any(links.values()), "no notebook links docs/: the test would check nothing"
    for path, found in links.items():
        for m in found:
            assert (m["repo"], m["ref"]) == (repo, ref), f"{path}: {m[0]} is not an absolute link at {repo}@{ref}"
            assert (root / m["path"]).is_file(), f"{path}: {m[0]} names {m['path']}, which does not exist"


def test_every_link_to_the_course_files_is_absolute_at_the_release():
    # Relative links ("../docs/facts.md") are dead on Colab and under a JupyterLab that serves notebooks/.
    _assert_links_at(ROOT, SETTING["repo"], SETTING["ref"])


def test_links_are_made_absolute_other_repositories_left_alone_and_a_missing_file_refused(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "facts.md").write_text("# Facts\n")
    (tmp_path / "notebooks" / "ko").mkdir(parents=True)
    en, ko = tmp_path / "notebooks" / "01_x.ipynb", tmp_path / "notebooks" / "ko" / "01_x.ipynb"
    url = "https://github.com/me/fork/blob/v1.0.0/docs/facts.md"
    source = ("[facts](../docs/facts.md#the-t4) and [peft](https://github.com/huggingface/peft/blob/v0.21.0/docs/x.md) "
              "and [old](https://github.com/old/repo/blob/v0.1.0/docs/facts.md)")
    assert sync_badges.synced_links(tmp_path, en, source, "me/fork", "v1.0.0", ("old/repo", "v0.1.0")) == (
        f"[facts]({url}#the-t4) and [peft](https://github.com/huggingface/peft/blob/v0.21.0/docs/x.md) "
        f"and [old]({url})")
    assert sync_badges.synced_links(tmp_path, ko, "[f](../../docs/facts.md)", "me/fork", "v1.0.0") == f"[f]({url})"
    with pytest.raises(ValueError, match="does not exist"):
        sync_badges.synced_links(tmp_path, ko, "[f](../docs/facts.md)", "me/fork", "v1.0.0")  # one ../ short
    with pytest.raises(ValueError, match="docs/glossary.md, which does not exist"):
        sync_badges.synced_links(tmp_path, en, "[g](../docs/glossary.md)", "me/fork", "v1.0.0")


def _installed_kernel_name() -> str:
    """The kernel name the Makefile installs (`ipykernel install ... --name <name>`)."""
    return re.search(r"ipykernel install\b.*--name (\S+)", (ROOT / "Makefile").read_text())[1]


def test_the_saved_kernel_is_the_one_make_installs():
    from ipykernel.ipkernel import IPythonKernel
    from ipykernel.kernelspec import get_kernel_dict
    spec = get_kernel_dict()
    assert sync_badges.KERNELSPEC == {"name": _installed_kernel_name(), "display_name": spec["display_name"],
                                      "language": spec["language"]}
    # JupyterLab rewrites language_info from the kernel's reply on opening: every field but the Python version
    # is the kernel's own; the version is the course's reference Python.
    assert {k: v for k, v in sync_badges.LANGUAGE_INFO.items() if k != "version"} == \
           {k: v for k, v in IPythonKernel.language_info.items() if k != "version"}
    for path in _paths(ROOT):
        metadata = nbformat.read(ROOT / path, as_version=4).metadata
        assert metadata.get("kernelspec") == sync_badges.KERNELSPEC, f"{path}: run `python scripts/sync_badges.py`"
        assert metadata.get("language_info") == sync_badges.LANGUAGE_INFO, path


@pytest.mark.parametrize("toml, message", [
    ('repo = "no-slash"\nref = "v{version}"\n', 'repo must look like "owner/name"'),
    ('repo = "a/b"\nref = "main"\n', "ref must be the release tag 'v{version}'"),
    ('repo = "a/b"\nref = "v0.0.1"\n', "ref must be the release tag 'v{version}'"),
    ('repo = "a/b"\nbranch = "main"\n', "ref must be the release tag 'v{version}'"),
])
def test_a_malformed_setting_is_refused(fork, toml, message):
    (fork / "course.toml").write_text(toml.format(version=VERSION))
    result = _run(fork, "--check")
    assert result.returncode != 0 and message.format(version=VERSION) in result.stderr
