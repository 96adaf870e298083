"""The setup check against a real scratch environment: distributions written into a folder on sys.path the way pip
writes them (a package and a dist-info with METADATA, RECORD and top_level.txt), found by importlib.metadata itself.

Each kind of mistake an independent mutation run slipped past the tests has a test here: versions compared as text,
pre-releases, the restart decision (what changed on disk against what the kernel has loaded, dependencies included,
the course package itself excluded) and the edition's language."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.version import Version
from peft import import_utils

from helpers import language, setup_check

ROOT = Path(__file__).resolve().parent.parent


class Site:
    """A folder on sys.path that distributions are installed into and removed from, as pip does it."""

    def __init__(self, path: Path):
        self.path = path

    def install(self, name: str, version: str, requires: tuple[str, ...] = (), module: str | None = None,
                single_file: bool = False, files: bool = True) -> Path:
        """Write distribution `name` at `version`, its code in package `module` (or module.py); return its file."""
        module = module or name.replace("-", "_")
        code = self.path / (f"{module}.py" if single_file else f"{module}/__init__.py")
        if files:
            code.parent.mkdir(parents=True, exist_ok=True)
            code.write_text(f"__version__ = {version!r}\n")
        info = self.path / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                       + "".join(f"Requires-Dist: {r}\n" for r in requires))
        (info / "top_level.txt").write_text(module + "\n")
        (info / "RECORD").write_text(f"{code.relative_to(self.path)},,\n{info.name}/METADATA,,\n")
        return code

    def uninstall(self, name: str) -> None:
        """Remove every file the distribution's RECORD lists, and its dist-info."""
        for info in self.path.glob(f"{name.replace('-', '_')}-*.dist-info"):
            for line in (info / "RECORD").read_text().splitlines():
                target = self.path / line.split(",")[0]
                target.unlink(missing_ok=True)
                if target.parent != self.path and target.parent.is_dir() and not any(target.parent.iterdir()):
                    target.parent.rmdir()
            shutil.rmtree(info)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """An empty site folder first on sys.path; the modules imported from it are forgotten afterwards."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield Site(folder)
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", "") and str(folder) in sys.modules[name].__file__:
            del sys.modules[name]


def _pins(tmp_path, *lines: str):
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return setup_check.pins(path)


# ----------------------------------------------------------------------------- versions, with packaging's semantics

# (the pin, the version installed, whether the check reports it)
VERSIONS = [
    (">=0.16.0", "0.9.0", True),  # as text '0.9.0' >= '0.16.0'
    (">=0.16.0", "0.100.0", False),  # as text '0.100.0' < '0.16.0'
    (">=1.11", "1.9.3", True),
    ("==0.21.2", "0.21.10", True),
    ("==5.24.0", "5.24.0", False),
    ("==5.24.0", "5.24.0rc1", True),  # a release candidate is not the release
    ("==5.24.0", "5.24.0.post1", True),
    (">=2.6", "2.11.0+cu130", False),  # a host's CUDA build meets the floor
    (">=2.6", "2.5.1+cu121", True),
    (">=2.6", "2.13.0.dev20260101", False),  # a host's pre-release of a newer version meets the floor too
    (">=2.6", "2.6.0rc1", True),  # ... but not one of the floor itself
]


@pytest.mark.parametrize("pin, installed, reported", VERSIONS, ids=[f"{p} {v}" for p, v, _ in VERSIONS])
def test_installed_versions_are_compared_as_versions(site, tmp_path, pin, installed, reported):
    site.install("course-probe", installed, files=False)
    problems = setup_check.version_problems(_pins(tmp_path, f"course-probe{pin}"))
    assert problems == ([f"course-probe: {installed} installed, the course needs {pin}"] if reported else [])


TORCHAO = ["0.9.0", "0.10.0", "0.15.1", "0.16.0.dev20250101", "0.16.0rc1", "0.16.0", "0.16.1", "0.100.0", "1.0.0"]


@pytest.mark.parametrize("version", TORCHAO)
def test_torchao_is_refused_exactly_when_peft_refuses_it(site, version):
    site.install("torchao", version)
    # peft's own rule (peft.import_utils.is_torchao_available, uncached), on the same scratch install
    try:
        refused_by_peft = not import_utils.is_torchao_available.__wrapped__()
    except ImportError as e:
        refused_by_peft = "incompatible version of torchao" in str(e)
    problem = setup_check.torchao_problem()
    assert (problem is not None) == refused_by_peft == (Version(version) < Version("0.16.0"))
    if problem:
        assert f"torchao: {version} installed" in problem and "%pip uninstall -y torchao" in problem


# ----------------------------------------------------------------------------- the restart decision


def test_the_closure_follows_dependencies_markers_and_extras(site, tmp_path):
    site.install("course-top", "1.0", requires=(
        "course-dep>=1", 'course-marked; python_version >= "3"', 'course-old-python; python_version < "3"',
        'course-testing; extra == "test"'))
    site.install("course-dep", "1.0", requires=("course-deeper",))
    for name in ("course-deeper", "course-marked", "course-old-python", "course-testing", "course-fast"):
        site.install(name, "1.0")
    site.install("course-extras", "1.0", requires=('course-fast; extra == "speed"',))
    assert setup_check.closure(_pins(tmp_path, "course-top==1.0")) == {
        "course-top", "course-dep", "course-deeper", "course-marked"}
    # a pin that asks for an extra installs what the extra needs
    assert setup_check.closure(_pins(tmp_path, "course-extras[speed]==1.0")) == {"course-extras", "course-fast"}
    assert setup_check.closure(_pins(tmp_path, "course-extras==1.0")) == {"course-extras"}
    # a pin that does not apply to this Python installs nothing
    assert setup_check.closure(_pins(tmp_path, 'course-top==1.0; python_version < "3"')) == set()


def test_a_restart_is_asked_for_exactly_the_loaded_modules_the_install_replaced(site, tmp_path):
    """Modules imported before an install; then a pip-like install replaces some on disk; what must restart?"""
    site.install("course-top", "1.0", requires=("course-dep", "course-moved"))
    site.install("course-dep", "1.0")
    site.install("course-moved", "1.0")
    site.install("course-kept", "1.0")
    site.install("course-unrelated", "1.0")
    site.install("course-unloaded", "1.0")
    loaded = frozenset({"course_top", "course_dep", "course_moved", "course_kept", "course_unrelated"})
    for module in sorted(loaded):
        __import__(module)
    time.sleep(0.05)  # file times come from a clock that may run a tick behind time.time()
    started = time.time()
    time.sleep(0.05)
    reqs = _pins(tmp_path, "course-top==1.0", "course-kept==1.0", "course-unloaded==1.0")
    assert setup_check.stale_modules(setup_check.closure(reqs), loaded, started=started) == []  # nothing changed yet

    # The install: a new course-dep, whose files keep the wheel's old modification time (only their change time is
    # new); a new course-moved that is a single module now (the loaded package's file is gone); a new unrelated
    # distribution that the pins do not need; and a new version of a distribution nobody had imported.
    for name in ("course-dep", "course-moved", "course-unrelated", "course-unloaded"):
        site.uninstall(name)
    new_dep = site.install("course-dep", "2.0")
    os.utime(new_dep, (0, 0))
    site.install("course-moved", "2.0", single_file=True)
    site.install("course-unrelated", "2.0")
    site.install("course-unloaded", "2.0")
    reqs = _pins(tmp_path, "course-top==1.0", "course-kept==1.0", "course-unloaded==2.0")

    assert setup_check.version_problems(reqs) == []
    assert setup_check.stale_modules(setup_check.closure(reqs), loaded, started=started) == [
        "course-dep: 1.0 is loaded, 2.0 is installed",
        "course-moved: 1.0 is loaded, 2.0 is installed",
    ]


def test_the_course_package_itself_never_asks_for_a_restart(site):
    # The setup cell reinstalls the course (a new release) and then imports it: it is always newer than the kernel.
    site.install("qlora-course-helpers", "0.2.0", module="helpers", files=False)
    assert setup_check.stale_modules({"qlora-course-helpers"}, frozenset({"helpers"}), started=0.0) == []
    # the same check on another distribution loaded from the same kind of install does ask for one
    site.install("course-probe", "1.0")
    __import__("course_probe")
    assert setup_check.stale_modules({"course-probe"}, frozenset({"course_probe"}), started=0.0) == [
        "course-probe: 1.0 is loaded, 1.0 is installed"]


def test_what_the_check_imports_itself_was_not_loaded_before_it():
    # packaging is read from disk when the check imports it, after the install: it runs the installed version.
    code = ("import sys; before = 'packaging' in sys.modules; from helpers import setup_check; "
            "print(before, 'packaging' in setup_check.LOADED_BEFORE, 'packaging' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    before, counted, now = out.split()
    assert now == "True" and counted == before


# ----------------------------------------------------------------------------- the edition's language


@pytest.fixture
def english_afterwards():
    yield
    language.set_language("en")


def test_the_setup_check_sets_the_editions_language_whether_it_passes_or_not(tmp_path, english_afterwards, capsys):
    passing = tmp_path / "ok.txt"
    passing.write_text("packaging>=20\n")
    failing = tmp_path / "bad.txt"
    failing.write_text("packaging==0.0.1\n")
    setup_check.check_install(requirements=passing, edition="notebooks/ko/")
    assert language.current() == "ko"
    setup_check.check_install(requirements=passing, edition="notebooks/")
    assert language.current() == "en"
    # A failing check still sets it: the learner reruns the cell, and the lines before then speak the edition's.
    with pytest.raises(RuntimeError):
        setup_check.check_install(requirements=failing, edition="notebooks/ko/")
    assert language.current() == "ko"
    capsys.readouterr()
