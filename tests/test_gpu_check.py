"""The GPU check (scripts/gpu_check.py): says so without a GPU, injects only MAX_STEPS, and walks on the CPU."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def code_of(nb, cell_id):
    """The source of the cell with this id."""
    return next(c.source for c in nb.cells if c.get("id") == cell_id)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the check really runs")
def test_without_a_gpu_it_says_so_in_one_line_and_runs_nothing(capsys, tmp_path):
    assert check.main(["--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith("No CUDA GPU here: the GPU check needs one, so nothing was run")
    assert not (tmp_path / "out").exists()


def test_max_steps_is_set_right_after_the_choose_your_run_cell_and_nothing_else_changes():
    nb = nbformat.read(check.NB05, as_version=4)
    run = check.with_max_steps(nb, 20)
    index = [c.get("id") for c in run.cells].index(check.CHOOSE_CELL)
    assert run.cells[index + 1].source.startswith("MAX_STEPS = 20  #")
    assert [c.source for c in run.cells[: index + 1] + run.cells[index + 2 :]] == [c.source for c in nb.cells]
    # The notebook honours MAX_STEPS only through these lines: the injection is worth nothing without them.
    assert "MAX_STEPS = None" in code_of(nb, check.CHOOSE_CELL)
    assert 'overrides["max_steps"] = MAX_STEPS' in code_of(nb, "nb05-37")
    nb.cells = [c for c in nb.cells if c.get("id") != check.CHOOSE_CELL]
    with pytest.raises(ValueError, match="no cell 'nb05-05'"):
        check.with_max_steps(nb, 20)


def test_notebook_04s_gpu_cells_are_taken_by_id_after_a_cell_defining_what_they_use():
    nb = nbformat.read(check.NB04, as_version=4)
    sub = check.gpu_cells_of_04(nb)
    assert [c.get("id") for c in sub.cells] == ["gpu-check-intro", "gpu-check-setup", *check.NB04_CELLS]
    assert [c.source for c in sub.cells[2:]] == [code_of(nb, i) for i in check.NB04_CELLS]
    assert "paging_roundtrip" in code_of(sub, "nb04-30c") and "optim.paging_demo()" in code_of(sub, "nb04-35")
    assert "model = lora = batch = None" in code_of(sub, "gpu-check-setup")  # nb04-35 deletes them
    nb.cells = [c for c in nb.cells if c.get("id") != "nb04-35"]
    with pytest.raises(ValueError, match=r"no cell\(s\) \['nb04-35'\]"):
        check.gpu_cells_of_04(nb)


@pytest.mark.slow
def test_the_dry_run_walks_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)], capture_output=True,
                         text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    expected_06 = "pass" if check.NB06.is_file() else "skipped"
    assert [(name, s["status"]) for name, s in steps.items()] == [
        ("stand-in", "pass"), ("notebook 05 (smoke mode)", "pass"), ("notebook 06 (on notebook 05's adapter)",
                                                                      expected_06),
        ("notebook 04's GPU cells (paging)", "pass"), ("benchmark (t4_qlora.py)", "pass")]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and summary["files_within_limits"] and set(summary["files"]) <= set(files)
    executed = nbformat.read(out / check.NB05.name, as_version=4)
    assert code_of(executed, "gpu-check-max-steps") == "MAX_STEPS = None  # set by scripts/gpu_check.py"
    facts = summary["notebook_05"]
    assert (facts["mode"], facts["steps_done"], facts["identical_after_reload"]) == ("smoke", 30, "8 of 8")
    assert [v["variant"] for v in summary["benchmark"]["variants"]] == ["t4", "t4_fast", "t4_b4", "t4_b4_fast"]
    assert all(v["tokens_per_second"] > 0 for v in summary["benchmark"]["variants"])
    assert summary["environment"]["differs_from_pins"] == [] and summary["not_reproduced"]
