"""The T4 benchmark: skips cleanly without a GPU, walks every variant on the CPU, and picks t4_fast by its rule."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import training

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "t4_qlora.py"
spec = importlib.util.spec_from_file_location("t4_qlora", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def measured(name, tokens_per_second, peak, loss=12.0, preset=None):
    """A fake measured variant: only what the selection rule reads."""
    return dict(variant=name, preset=preset or name, attention="sdpa", tokens_per_second=tokens_per_second,
                peak_reserved_gb=peak, loss=loss)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the benchmark really runs")
def test_without_a_gpu_it_says_so_in_one_line_and_measures_nothing():
    results = sorted((ROOT / "benchmarks" / "results").glob("*"))
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines() == ["No CUDA GPU here: the T4 benchmark needs one, so nothing was measured."]
    assert sorted((ROOT / "benchmarks" / "results").glob("*")) == results


def test_a_dry_run_refuses_to_write_into_the_results_folder():
    run = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 2 and "--dry-run needs --out" in run.stderr


def test_every_variant_is_a_course_preset_and_liger_runs_last():
    assert {preset for _, preset, _ in bench.VARIANTS} <= set(training.PRESETS)
    assert bench.VARIANTS[0][0] == bench.REFERENCE == "t4"
    liger = [bool(training.PRESETS[p].get("use_liger_kernel")) for _, p, _ in bench.VARIANTS]
    assert liger == sorted(liger) and any(liger)  # all plain variants first: Liger patches the model in place
    assert {a for _, _, a in bench.VARIANTS} == {"sdpa", "eager"}
    for name in ("t4_b4", "t4_b4_fast"):  # the post's 2,048 tokens per optimizer step in one micro-batch
        settings = {**training.POST_SETTINGS, **training.PRESETS[name]}
        assert settings["per_device_train_batch_size"] * settings["gradient_accumulation_steps"] * 512 == 2048


def test_the_fastest_variant_under_12_gb_wins():
    variants = [measured("t4", 3000, 3.9), measured("t4_fast", 5500, 8.3), measured("t4_b4_fast", 6000, 11.99)]
    choice = bench.choose_t4_fast(variants)
    assert (choice["variant"], choice["speedup"], choice["refused"]) == ("t4_b4_fast", 2.0, {})


def test_a_faster_variant_over_12_gb_is_refused():
    variants = [measured("t4", 3000, 3.9), measured("t4_fast", 5500, 8.3), measured("t4_b4_fast", 9000, 12.0)]
    choice = bench.choose_t4_fast(variants)
    assert choice["variant"] == "t4_fast"
    assert choice["refused"] == {"t4_b4_fast": "peak 12.0 GB reserved, not under 12.0 GB"}


def test_a_faster_variant_whose_loss_differs_beyond_noise_is_refused():
    variants = [measured("t4", 3000, 3.9, loss=12.0), measured("t4_fast", 5500, 8.3, loss=12.1),
                measured("t4_fast_liger", 7000, 6.0, loss=12.2), measured("t4 eager", 2000, 4.0, loss=11.9)]
    choice = bench.choose_t4_fast(variants)
    # 1% of 12.0 is 0.12: 12.1 and 11.9 are within it, 12.2 is not.
    assert choice["variant"] == "t4_fast"
    assert list(choice["refused"]) == ["t4_fast_liger"] and "beyond 1%" in choice["refused"]["t4_fast_liger"]


def test_skipped_failed_and_cpu_variants_are_never_chosen():
    variants = [dict(variant="t4", preset="t4", attention="sdpa", tokens_per_second=1000, loss=5.0),
                dict(variant="t4_liger", preset="t4_liger", attention="sdpa", skipped="needs a CUDA GPU"),
                dict(variant="t4_b4", preset="t4_b4", attention="sdpa", failed="OutOfMemoryError: CUDA out of memory")]
    choice = bench.choose_t4_fast(variants)
    assert choice["variant"] is None and choice["speedup"] is None
    assert choice["refused"] == {"t4": "no GPU memory measured (not a GPU run)", "t4_liger": "needs a CUDA GPU",
                                 "t4_b4": "OutOfMemoryError: CUDA out of memory"}


def test_without_the_reference_nothing_can_be_compared():
    choice = bench.choose_t4_fast([measured("t4_fast", 5500, 8.3)])
    assert choice["variant"] is None and "was not measured" in choice["refused"]["t4_fast"]


def test_the_shipped_h200_results_keep_their_measured_figures():
    report = json.loads((ROOT / "benchmarks" / "results" / "NVIDIA_H200.json").read_text())
    assert report["gpu"] == "NVIDIA H200" and "H200" in report["label"]
    rows = {r["preset"]: r for r in report["presets"]}
    assert (rows["t4"]["seconds_per_step"], rows["t4_fast"]["seconds_per_step"]) == (0.6231, 0.3694)
    assert all("projection" not in r for r in rows.values())  # the old projection is replaced by helpers.estimate


@pytest.mark.slow
def test_a_dry_run_walks_every_variant_and_writes_a_report(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path / "out"), "--steps", "2",
                          "--warmup", "1"], capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    (path,) = (tmp_path / "out").glob("cpu_dry_run_*.json")
    report = json.loads(path.read_text())
    variants = {v["variant"]: v for v in report["variants"]}
    assert list(variants) == [name for name, _, _ in bench.VARIANTS]
    for name, v in variants.items():
        assert "failed" not in v, (name, v.get("failed"))
        if training.PRESETS[v["preset"]].get("use_liger_kernel"):
            assert v["skipped"].startswith("liger-kernel's kernels are Triton kernels, which need a CUDA GPU")
            continue
        assert v["seconds_per_step"] > 0 and v["tokens_per_step"] == 4 * 128
        assert v["tokens_per_second"] == pytest.approx(v["tokens_per_step"] / v["seconds_per_step"], rel=0.01)
        # The same blocks, the same math: every variant ends at the reference's loss (up to rounding).
        assert v["loss"] == pytest.approx(variants["t4"]["loss"], rel=1e-3)
        assert 0 < v["t4_estimate"]["low_hours"] < v["t4_estimate"]["high_hours"]
    assert (variants["t4_b4_fast"]["batch"], variants["t4_b4_fast"]["grad_accum"]) == (4, 1)
    assert variants["t4 eager"]["attention"] == "eager" and not variants["t4_b4_fast"]["gradient_checkpointing"]
    assert [r["preset"] for r in report["presets"]] == ["t4", "t4_fast", "t4_b4", "t4_b4_fast"]
    assert report["t4_fast_choice"]["variant"] is None  # a CPU run measures no GPU memory: nothing is chosen
    env = report["environment"]
    assert env["versions"]["transformers"] and env["versions"]["trl"] and env["gpu"] is None
    assert report["weights_measured_bytes"] == report["weights_predicted_bytes"] > 0
    text = path.with_suffix(".md").read_text()
    assert text.startswith("A CPU dry run on") and "| t4_b4_fast | 4 x 1 | False | sdpa |" in text


def test_variants_are_picked_by_name_in_the_benchmarks_order(capsys):
    assert [v[0] for v in bench.pick_variants("t4_b4_fast, t4,t4_fast")] == ["t4", "t4_fast", "t4_b4_fast"]
    assert bench.pick_variants(None) == bench.VARIANTS
    with pytest.raises(ValueError, match=r"unknown: \['t4_b8'\]"):
        bench.pick_variants("t4,t4_b8")
    with pytest.raises(SystemExit) as exited:
        bench.main(["--variants", "t4,fast"])
    assert exited.value.code == 2 and "unknown: ['fast']" in capsys.readouterr().err
