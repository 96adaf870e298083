"""Run the whole course: execute every notebook top to bottom and keep the executed copies.

Without a GPU the notebooks pick smoke mode by themselves (a tiny model, the shipped sample
data). Executed notebooks go to build/notebooks/, checkpoints and adapters to build/outputs/en/ and
build/outputs/ko/: one folder per edition, shared by its notebooks 05 and 06 (06 finds 05's adapter there).
Usage: python scripts/run_course.py [03 | notebooks/02_nf4.ipynb ...]   (all notebooks by default)
"""
import copy
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Notebook 05's "choose your run" cell, the one cell a learner edits: scripts and tests set its names in a cell inserted
# right after it, in a copy (no notebook is edited).
CHOOSE_CELL = "nb05-05"


def with_settings(nb: nbformat.NotebookNode, settings: Mapping[str, object], by: str = "scripts/run_course.py",
                  cell_id: str = "run-course-settings") -> nbformat.NotebookNode:
    """Return a copy of notebook 05 with a cell setting `settings` right after its "choose your run" cell."""
    nb = copy.deepcopy(nb)
    index = next((i for i, c in enumerate(nb.cells) if c.get("id") == CHOOSE_CELL), None)
    if index is None:
        raise ValueError(f"notebook 05 has no cell {CHOOSE_CELL!r} (its 'choose your run' cell): update CHOOSE_CELL "
                         "in scripts/run_course.py")
    lines = [f"{name} = {value!r}  # set by {by}" for name, value in settings.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell["id"] = cell_id
    nb.cells.insert(index + 1, cell)
    return nb


def execute(path: Path, out_dir: Path, timeout: int = 900, kernel_args: Sequence[str] = (),
            append: Sequence[str] = (), settings: Mapping[str, object] | None = None) -> nbformat.NotebookNode:
    """Execute one notebook with its folder as working directory and save the result in out_dir.

    kernel_args go to the kernel's command line, e.g. "--IPKernelApp.exec_lines=<code>" runs code before the first cell;
    append holds code cells run after the last one (a test's look at what the notebook left behind); settings are
    set after notebook 05's "choose your run" cell (with_settings), e.g. {"DATASET": "dolly-ko"}.
    """
    nb = nbformat.read(path, as_version=4)
    if settings:
        nb = with_settings(nb, settings)
    nb.cells += [nbformat.v4.new_code_cell(source) for source in append]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", extra_arguments=list(kernel_args),
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
    return nb


def failure_report(nb: nbformat.NotebookNode, name: str, source_lines: int = 4, traceback_lines: int = 6) -> str:
    """Say which cell of a failed notebook failed: its number, its first lines and the error, without colour codes."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    for number, cell in enumerate(code, start=1):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if errors:
            err = errors[0]
            source = cell.source.splitlines()
            shown = source[:source_lines] + (["    ..."] if len(source) > source_lines else [])
            final = f"{err.ename}: {ANSI.sub('', err.evalue)}"
            trace = [line for line in ANSI.sub("", "\n".join(err.get("traceback", []))).splitlines() if line.strip()]
            if trace and trace[-1].strip() == final:  # IPython's traceback ends with the error line shown below
                trace = trace[:-1]
            return "\n".join([f"{name}: code cell {number} of {len(code)} failed:",
                              *(f"    {line}" for line in shown),
                              "  traceback (last lines):",
                              *(f"    {line}" for line in trace[-traceback_lines:]),
                              f"  {final}"])
    return f"{name}: no cell shows an error: the kernel died or a cell ran past the time limit."


def every_notebook() -> list[Path]:
    """Both editions' notebooks: the English ones, then the Korean ones (notebooks/ko/)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) + sorted((NOTEBOOKS / "ko").glob("[0-9][0-9]_*.ipynb"))


def select(args: Sequence[str]) -> list[Path]:
    """The notebooks named by paths or two-digit numbers ("03": both editions'); all of them when none are named."""
    every = every_notebook()
    chosen = []
    for arg in args:
        if re.fullmatch(r"\d{1,2}", arg):
            match = [p for p in every if p.name[:2] == arg.zfill(2)]
            if not match:
                raise SystemExit(f"No notebook {arg.zfill(2)}: pick one of {', '.join(p.name[:2] for p in every)}.")
            chosen += match
        else:
            chosen.append(Path(arg).resolve())
    return chosen or every


def edition_of(path: Path) -> str:
    """"ko" for a notebook of the Korean edition (in a folder named ko), "en" for any other."""
    return "ko" if path.parent.name == "ko" else "en"


def output_dir(base: Path, path: Path) -> Path:
    """Where a notebook's run writes its checkpoints and adapter: base/<edition>.

    Each edition has its own folder: notebook 05 resumes from any checkpoint it finds, so with one shared folder the
    Korean 05 would find the English run finished and train nothing. The notebooks of one edition share theirs:
    notebook 06 loads the adapter that notebook 05 saved.
    """
    return base / edition_of(path)


def main(args: list[str]) -> int:
    """Execute the given notebooks (all of them by default); return a process exit code."""
    given = os.environ.get("COURSE_OUTPUT_DIR")
    if given:
        base = Path(given)
    else:
        # A fresh folder each run: a second run of the course should train again, not resume a finished run.
        base = BUILD / "outputs"
        shutil.rmtree(base, ignore_errors=True)
    timings, failed = {}, []
    for path in select(args):
        os.environ["COURSE_OUTPUT_DIR"] = str(output_dir(base, path))  # the kernel started next inherits it
        # build/notebooks/ mirrors notebooks/: the Korean edition's executed copies go to build/notebooks/ko/.
        name = path.relative_to(NOTEBOOKS).as_posix() if path.is_relative_to(NOTEBOOKS) else path.name
        out_dir = (BUILD / "notebooks" / name).parent
        print(f"▶ {name} ...", flush=True)
        start = time.perf_counter()
        try:
            execute(path, out_dir)
        except CellExecutionError:
            failed.append(name)
            report = failure_report(nbformat.read(out_dir / path.name, as_version=4), name)
            print(f"✗ {report}\n  the executed copy: {out_dir / path.name}", flush=True)
            continue
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"✓ {name} in {timings[name]} s", flush=True)
    if given:
        os.environ["COURSE_OUTPUT_DIR"] = given
    else:
        os.environ.pop("COURSE_OUTPUT_DIR", None)
    (BUILD / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"Executed notebooks are in {BUILD / 'notebooks'}")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
