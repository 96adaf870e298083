"""Run the whole course: execute every notebook top to bottom and keep the executed copies.

Without a GPU the notebooks pick smoke mode by themselves (a tiny model, the shipped sample
data). Executed notebooks go to build/notebooks/, checkpoints to build/outputs/.
Usage: python scripts/run_course.py [notebooks/02_nf4.ipynb ...]
"""
import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"


def execute(path: Path, out_dir: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Execute one notebook with its folder as working directory and save the result in out_dir."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
    return nb


def main(paths: list[str]) -> int:
    """Execute the given notebooks (all of them by default); return a process exit code."""
    if "COURSE_OUTPUT_DIR" not in os.environ:
        # A fresh folder each run: notebook 05 resumes from any checkpoint it finds, and a second run of
        # the course should train again, not resume a finished run.
        shutil.rmtree(BUILD / "outputs", ignore_errors=True)
        os.environ["COURSE_OUTPUT_DIR"] = str(BUILD / "outputs")
    notebooks = [Path(p).resolve() for p in paths] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    timings, failed = {}, []
    for path in notebooks:
        print(f"▶ {path.name} ...", flush=True)
        start = time.perf_counter()
        try:
            execute(path, BUILD / "notebooks")
        except CellExecutionError as err:
            failed.append(path.name)
            print(f"✗ {path.name} failed:\n{str(err)[-3000:]}", flush=True)
            continue
        timings[path.name] = round(time.perf_counter() - start, 1)
        print(f"✓ {path.name} in {timings[path.name]} s", flush=True)
    (BUILD / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"Executed notebooks are in {BUILD / 'notebooks'}")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
