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
    assert [p.name[:2] for p in every] == ["01", "02", "03", "04", "05"] * 2
    assert all(p.parent.name == "ko" for p in every[5:])
    with pytest.raises(SystemExit, match="No notebook 99"):
        run_course.select(["99"])


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
