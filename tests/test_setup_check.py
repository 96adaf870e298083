"""The setup cell's check: it names what differs from the pins, and asks for a restart only when one is needed."""
import json
import time
from importlib import metadata

import packaging
import pytest

from helpers import setup_check


def _requirements(tmp_path, *lines: str):
    path = tmp_path / "requirements.txt"
    path.write_text("# a comment\n\n" + "\n".join(lines) + "\n")
    return path


def test_the_course_pins_are_read_from_the_repository_and_shipped_in_the_wheel():
    names = [req.name for req in setup_check.pins()]
    assert {"transformers", "trl", "peft", "bitsandbytes", "datasets", "huggingface_hub", "torch"} <= set(names)
    assert str(setup_check.requirements_file()).endswith("requirements.txt")


def test_a_missing_requirements_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="path must be a requirements file"):
        setup_check.pins(tmp_path / "nothing.txt")


def test_version_problems_name_the_library_what_is_installed_and_what_is_needed(tmp_path):
    reqs = setup_check.pins(_requirements(tmp_path, "packaging==0.0.1", "packaging>=1", "not-a-real-dist-xyz==1.0",
                                          'packaging==0.0.2; python_version < "3"'))
    assert setup_check.version_problems(reqs) == [
        f"packaging: {packaging.__version__} installed, the course needs ==0.0.1",
        "not-a-real-dist-xyz: not installed, the course needs ==1.0",
    ]


@pytest.mark.parametrize("version, wanted", [(None, None), ("0.10.0", "uninstall -y torchao"), ("0.16.0", None)])
def test_only_a_torchao_that_peft_refuses_is_reported(monkeypatch, version, wanted):
    monkeypatch.setattr(setup_check, "installed_version", lambda name: version if name == "torchao" else "1")
    problem = setup_check.torchao_problem()
    assert (problem is None) if wanted is None else (wanted in problem and version in problem)


def test_the_closure_follows_dependencies():
    assert {"transformers", "huggingface-hub", "tokenizers", "packaging"} <= setup_check.closure(
        setup_check.pins())


def test_a_loaded_module_is_stale_only_when_its_files_changed_after_the_process_started():
    loaded = frozenset({"packaging", "helpers"})
    assert setup_check.stale_modules({"packaging"}, loaded, started=time.time() + 3600) == []
    # as if the process had started before the files were written: the module running is not what is installed
    assert setup_check.stale_modules({"packaging", "qlora-course-helpers"}, loaded, started=0.0) == [
        f"packaging: {packaging.__version__} is loaded, {metadata.version('packaging')} is installed"]
    assert setup_check.stale_modules(set(), loaded, started=0.0) == []


def test_the_course_ref_is_checked_only_for_a_git_install(monkeypatch):
    assert setup_check.course_ref_problem("v0.2.0") is None  # this checkout: make venv installed it editable

    class Dist:
        def read_text(self, name):
            return json.dumps({"url": "https://github.com/a/b", "vcs_info": {
                "vcs": "git", "requested_revision": "v0.1.0", "commit_id": "ab" * 20}})

    monkeypatch.setattr(setup_check.metadata, "distribution", lambda name: Dist())
    problem = setup_check.course_ref_problem("v0.2.0")
    assert "v0.1.0" in problem and '--force-reinstall "git+https://github.com/a/b@v0.2.0"' in problem
    assert setup_check.course_ref_problem("v0.1.0") is None
    assert setup_check.course_ref_problem("abababab") is None  # a commit prefix


def test_check_install_passes_and_says_so_in_one_line(tmp_path, capsys):
    setup_check.check_install(requirements=_requirements(tmp_path, "packaging>=20"))
    assert capsys.readouterr().out == "Setup checked: 1 pinned libraries as required\n"


def test_check_install_stops_on_a_pin_and_says_to_rerun(tmp_path):
    with pytest.raises(RuntimeError) as err:
        setup_check.check_install(requirements=_requirements(tmp_path, "packaging==0.0.1"))
    assert "packaging: " in str(err.value) and "==0.0.1" in str(err.value)
    assert "Run this cell again" in str(err.value) and "Internet" in str(err.value)
    assert "Restart" not in str(err.value)


def test_check_install_asks_for_a_restart_only_for_stale_modules(tmp_path, monkeypatch):
    monkeypatch.setattr(setup_check, "stale_modules", lambda dists: ["pyarrow: 18.1.0 is loaded, 24.0.0 is installed"])
    with pytest.raises(RuntimeError, match="Restart needed") as err:
        setup_check.check_install(requirements=_requirements(tmp_path, "packaging>=20"))
    assert "pyarrow: 18.1.0 is loaded" in str(err.value) and setup_check.RESTART in str(err.value)


@pytest.mark.parametrize("ref", [3, "main; rm -rf", ""])
def test_a_bad_ref_is_refused(ref):
    with pytest.raises(ValueError, match="ref must be the course's tag or commit"):
        setup_check.check_install(ref)
