"""Paging itself (notebook 04, section 4): paged AdamW equals torch's AdamW, its state paged out or not."""
import inspect
import subprocess
import sys
import warnings

import bitsandbytes as bnb
import pytest
import torch

from helpers import optim

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="paging needs a CUDA GPU")


def test_paged_adamw_has_torch_adamws_hyperparameters():
    # "the same update as plain AdamW" rests on the two classes sharing every default but lr
    paged = inspect.signature(bnb.optim.PagedAdamW32bit).parameters
    plain = inspect.signature(torch.optim.AdamW).parameters
    for name in ("betas", "eps", "weight_decay"):
        assert paged[name].default == plain[name].default, name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_on_a_cpu_nothing_is_paged_and_the_result_is_adamws():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        demo = optim.paging_roundtrip(shape=(513, 257), steps=4)
    assert not [w for w in caught if optim.CPU_PAGING_WARNING in str(w.message)], "the fallback warning leaked"
    assert demo["paged"] is False and demo["paged_bytes"] == 0 and demo["free"] == []
    assert "no CUDA GPU" in demo["reason"] and demo["error"] is None
    assert demo["state_bytes"] == 8 * 513 * 257
    assert demo["max_update"] > 1e3 * demo["tolerance"], "the steps must move the weights far beyond rounding"
    assert demo["max_diff"] <= demo["tolerance"]


def test_the_cpu_warning_text_is_bitsandbytes():
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.ones(4)
    with pytest.warns(UserWarning, match=optim.CPU_PAGING_WARNING):
        optim.make_optimizer("paged_adamw_32bit", [p]).step()


def test_a_different_update_is_caught(monkeypatch):
    # the comparison can fail: paged AdamW with a learning rate 1 % off is far outside the tolerance
    real = optim.make_optimizer
    monkeypatch.setattr(optim, "make_optimizer", lambda name, params, lr: real(name, params, lr=lr * 1.01))
    demo = optim.paging_roundtrip(shape=(300, 400), steps=2)
    assert demo["max_diff"] > 10 * demo["tolerance"]


def test_a_library_error_is_reported_not_raised(monkeypatch):
    def broken(name, params, lr):
        raise RuntimeError("Method 'cget_managed_ptr' not available in CPU-only version of bitsandbytes.\nmore")

    monkeypatch.setattr(optim, "make_optimizer", broken)
    demo = optim.paging_roundtrip(shape=(8, 8), steps=1)
    assert demo["paged"] is False and demo["error"].startswith("Method 'cget_managed_ptr'") and demo["reason"]
    assert demo["state_bytes"] == demo["paged_bytes"] == 0 and "max_diff" not in demo


def test_the_gpu_branch_reads_the_state_and_the_free_memory_around_each_step(monkeypatch):
    # On a CPU, run the GPU branch with the driver's calls stubbed: the loop, its readings and the result's keys.
    readings = iter(range(1000, 0, -10))
    monkeypatch.setattr(optim, "_why_not_paged", lambda device, numel: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: None)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *args: (next(readings), 2000))
    demo = optim.paging_roundtrip(shape=(64, 64), steps=3, device="cpu")
    assert demo["reason"] is None and demo["error"] is None
    assert demo["free"] == [{"step": 2, "read": 0, "paged_out": -10, "back": 10},
                            {"step": 3, "read": 0, "paged_out": -10, "back": 10}]
    assert demo["max_diff"] <= demo["tolerance"]


@pytest.mark.parametrize("kwargs, arg", [({"shape": [1024, 1024]}, "shape"), ({"shape": (0, 3)}, "shape"),
                                          ({"shape": ()}, "shape"), ({"steps": 0}, "steps"),
                                          ({"steps": True}, "steps"), ({"steps": 2.0}, "steps"),
                                          ({"device": "gpu0"}, "device"), ({"device": 3.5}, "device")])
def test_bad_arguments_are_refused(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        optim.paging_roundtrip(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_asking_for_a_missing_gpu_is_refused():
    with pytest.raises(ValueError, match="no CUDA GPU here"):
        optim.paging_roundtrip(device="cuda")


def test_why_not_paged_names_each_reason(monkeypatch):
    gpu = torch.device("cuda", 0)
    assert "no CUDA GPU" in optim._why_not_paged(torch.device("cpu"), 10**6)
    assert "PAGE_MIN_NUMEL" in optim._why_not_paged(gpu, optim.PAGE_MIN_NUMEL - 1)
    monkeypatch.setattr(optim.platform, "system", lambda: "Linux")
    monkeypatch.setattr(optim.platform, "release", lambda: "6.8.0-generic")
    assert optim._why_not_paged(gpu, optim.PAGE_MIN_NUMEL) is None
    monkeypatch.setattr(optim.platform, "release", lambda: "5.15.153.1-microsoft-standard-WSL2")
    assert "WSL" in optim._why_not_paged(gpu, optim.PAGE_MIN_NUMEL)
    monkeypatch.setattr(optim.platform, "system", lambda: "Windows")
    assert "Windows" in optim._why_not_paged(gpu, optim.PAGE_MIN_NUMEL)


def test_prefetch_to_cpu_passes_device_minus_one():
    # why the course pages out with a CPU read: bitsandbytes hands -1 to its C prefetch (see optim._page_out)
    source = inspect.getsource(bnb.functional.prefetch_tensor)
    assert "deviceid = -1" in source and "lib.cprefetch(" in source


@needs_cuda
def test_on_a_gpu_the_state_is_paged_out_and_back_and_the_result_is_adamws():
    demo = optim.paging_roundtrip(shape=(2048, 2048), steps=3)
    assert demo["paged"] and demo["paged_bytes"] == demo["state_bytes"] == 8 * 2048 * 2048
    assert demo["max_diff"] <= demo["tolerance"]
    assert [f["step"] for f in demo["free"]] == [2, 3]
    for f in demo["free"]:  # measured by the driver in 2 MB pages: most of the 32 MB must move each way
        assert f["paged_out"] >= demo["state_bytes"] // 2 and f["back"] >= demo["state_bytes"] // 2, f


@needs_cuda
def test_prefetch_to_cpu_ends_the_process():
    # run in a child process: if bitsandbytes' C code calls exit(1), it must not take the test run with it
    code = ("import torch, bitsandbytes as bnb, bitsandbytes.functional as F\n"
            "t = F.get_paged(1024, 1024, device=torch.device('cuda', 0))\n"
            "F.prefetch_tensor(t, to_cpu=True)\ntorch.cuda.synchronize()\nprint('survived')\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "survived" not in done.stdout, (done.returncode, done.stdout, done.stderr[-2000:])


def test_grouped_bars_start_at_zero_and_mark_a_missing_value():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers import plots

    peaks = {"AdamW, no cap": [1.9, 3.1], "AdamW, capped": [1.9, None], "paged AdamW, capped": [0.9, 2.0]}
    ax = plots.grouped_bars(["512", "8,192"], peaks, "peaks", "GB", missing="OOM", line=(2.69, "the cap"))
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 3.1
    assert [t.get_text() for t in ax.texts] == ["OOM"]
    assert len(ax.patches) == 6 and min(p.get_height() for p in ax.patches) == 0
    with pytest.raises(ValueError, match="one value per label"):
        plots.grouped_bars(["512", "8,192"], {"AdamW": [1.0]})
    plt.close("all")


def test_bytes_by_part_sorts_every_optimizers_state():
    params = [torch.nn.Parameter(torch.zeros(5000)), torch.nn.Parameter(torch.zeros(300))]
    for p in params:
        p.grad = torch.ones_like(p)
    states = optim.measure_states(params, ["adamw_torch", "adamw_8bit", "paged_adamw_32bit"])
    parts = optim.bytes_by_part(states, scale=2.0)
    assert list(parts) == ["first moment m", "second moment v", "block absmax", "code maps"]
    for i, name in enumerate(states):  # nothing is lost or counted twice
        assert sum(column[i] for column in parts.values()) == sum(states[name].values()) / 2.0
    assert parts["code maps"] == [0, 2 * 1024 / 2.0, 0]  # only 8-bit AdamW has the two shared maps
    with pytest.raises(ValueError, match="momentum_buffer"):
        optim.bytes_by_part({"sgd": {"momentum_buffer": 8}})
