"""`make course`: a failing notebook is reported as the notebook, the failing cell's first lines and the error."""
import nbformat
import pytest
import run_course
from nbformat.v4 import new_code_cell, new_notebook, new_output

RED = "\x1b[0;31m"


def _failed_notebook() -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("\n".join(f"line{i} = {i}" for i in range(6))
                                                                    + "\n1 / 0")])
    nb.cells[1].outputs = [new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                      traceback=[f"{RED}ZeroDivisionError{RED}Traceback", "  File x, line 7",
                                                 f"{RED}ZeroDivisionError{RED}: division by zero"])]
    return nb


def test_the_report_names_the_cell_its_first_lines_and_the_error_without_colour_codes():
    report = run_course.failure_report(_failed_notebook(), "07_x.ipynb")
    assert report.splitlines()[0] == "07_x.ipynb: code cell 2 of 2 failed:"
    assert "line0 = 0" in report and "line3 = 3" in report and "line4 = 4" not in report and "..." in report
    assert report.splitlines()[-1] == "  ZeroDivisionError: division by zero"
    assert "\x1b" not in report


def test_a_notebook_without_an_error_output_says_so():
    assert "no cell shows an error" in run_course.failure_report(new_notebook(cells=[new_code_cell("1")]), "a.ipynb")


def test_notebooks_are_chosen_by_number_or_path():
    chosen = run_course.select(["3"])
    assert [p.relative_to(run_course.NOTEBOOKS).as_posix() for p in chosen] == [
        "03_double_quantization.ipynb", "ko/03_double_quantization.ipynb"]
    every = run_course.select([])
    assert [p.name[:2] for p in every] == ["01", "02", "03", "04", "05", "06"] * 2
    assert all(p.parent.name == "ko" for p in every[6:])
    with pytest.raises(SystemExit, match="No notebook 99"):
        run_course.select(["99"])


@pytest.mark.parametrize("given", [None, "custom"])
def test_each_edition_runs_in_its_own_output_folder_shared_by_its_05_and_06(tmp_path, monkeypatch, given):
    # 05 resumes from what it finds in its folder: a shared folder made the Korean 05 find the English run finished.
    seen = {}

    def fake_execute(path, out_dir, **kwargs):
        seen[path.relative_to(tmp_path).as_posix()] = run_course.os.environ["COURSE_OUTPUT_DIR"]
        out_dir.mkdir(parents=True, exist_ok=True)

    paths = []
    for folder in ("notebooks", "notebooks/ko"):
        for name in ("05_gemma_qlora_t4.ipynb", "06_did_it_learn.ipynb"):
            (tmp_path / folder).mkdir(parents=True, exist_ok=True)
            paths.append(tmp_path / folder / name)
    monkeypatch.setattr(run_course, "execute", fake_execute)
    monkeypatch.setattr(run_course, "BUILD", tmp_path / "build")
    monkeypatch.setattr(run_course, "NOTEBOOKS", tmp_path / "notebooks")
    base = tmp_path / "build" / "outputs"
    if given:
        base = tmp_path / given
        monkeypatch.setenv("COURSE_OUTPUT_DIR", str(base))
    else:
        monkeypatch.delenv("COURSE_OUTPUT_DIR", raising=False)
        (base / "en").mkdir(parents=True)
        (base / "en" / "stale").write_text("a finished run from last time")
    assert run_course.main([str(p) for p in paths]) == 0
    assert seen == {"notebooks/05_gemma_qlora_t4.ipynb": str(base / "en"),
                    "notebooks/06_did_it_learn.ipynb": str(base / "en"),
                    "notebooks/ko/05_gemma_qlora_t4.ipynb": str(base / "ko"),
                    "notebooks/ko/06_did_it_learn.ipynb": str(base / "ko")}
    assert not (base / "en" / "stale").exists(), "make course must start from empty output folders"
    assert run_course.os.environ.get("COURSE_OUTPUT_DIR") == (str(base) if given else None)


@pytest.mark.slow
def test_make_course_prints_the_failure_readably(tmp_path, monkeypatch, capsys):
    path = tmp_path / "09_broken.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("import os\nvalue = 2\nvalue / 0")]), path)
    monkeypatch.setattr(run_course, "BUILD", tmp_path / "build")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))
    assert run_course.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "✗ 09_broken.ipynb: code cell 1 of 1 failed:" in out and "    value = 2" in out
    assert "ZeroDivisionError: division by zero" in out and "\x1b" not in out
    assert "1 notebook(s) failed: 09_broken.ipynb" in out


def test_settings_are_set_right_after_notebook_05s_choose_your_run_cell_in_a_copy():
    nb = new_notebook(cells=[new_code_cell(s) for s in ("a = 1", 'DATASET = "dolly"', "print(DATASET)")])
    nb.cells[1]["id"] = run_course.CHOOSE_CELL
    run = run_course.with_settings(nb, {"DATASET": "dolly-ko", "MAX_STEPS": 5}, by="a test")
    assert [c.source for c in run.cells] == ["a = 1", 'DATASET = "dolly"',
                                             "DATASET = 'dolly-ko'  # set by a test\nMAX_STEPS = 5  # set by a test",
                                             "print(DATASET)"]
    assert len(nb.cells) == 3, "the notebook itself is not edited"
    nb.cells[1]["id"] = "renamed"
    with pytest.raises(ValueError, match="no cell 'nb05-05'"):
        run_course.with_settings(nb, {"DATASET": "dolly-ko"})
