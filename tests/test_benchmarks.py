"""The T4 benchmark skips cleanly without a GPU, and its whole path runs on the CPU in a dry run."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "t4_qlora.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the benchmark really runs")
def test_without_a_gpu_it_says_so_in_one_line_and_measures_nothing():
    results = sorted((ROOT / "benchmarks" / "results").glob("*"))
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines() == ["No CUDA GPU here: the T4 benchmark needs one, so nothing was measured."]
    assert sorted((ROOT / "benchmarks" / "results").glob("*")) == results


def test_a_dry_run_refuses_to_write_into_the_results_folder():
    run = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "--dry-run needs --out" in run.stderr


@pytest.mark.slow
def test_a_dry_run_trains_the_tiny_model_and_writes_a_report(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path), "--steps", "2",
                          "--warmup", "1"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "cpu_dry_run.json").read_text())
    (preset,) = report["presets"]
    assert preset["preset"] == "smoke" and preset["seconds_per_step"] > 0
    assert preset["tokens_per_second"] == pytest.approx(preset["tokens_per_step"] / preset["seconds_per_step"], rel=0.01)
    assert report["weights_measured_bytes"] > 0 and report["weights_predicted_bytes"] > 0
    assert "| smoke |" in (tmp_path / "cpu_dry_run.md").read_text()
