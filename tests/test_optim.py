"""Optimizer state measured on real optimizers, against bitsandbytes' rules, on a CPU."""
import inspect

import bitsandbytes as bnb
import pytest
import torch

from helpers import optim

SIZES = [(64, 8), (8, 2048), (2048, 8), (300, 300), (4096, 1), (4095, 1)]


def _params_with_grads(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    return params


def _step(name, params):
    opt = optim.make_optimizer(name, params)
    opt.step()
    return opt


def test_adamw_keeps_exactly_eight_bytes_per_parameter():
    params = _params_with_grads(SIZES)
    opt = _step("adamw_torch", params)
    n = sum(p.numel() for p in params)
    assert optim.optimizer_state_bytes(opt) == 8 * n
    assert optim.state_breakdown(opt) == {"exp_avg": 4 * n, "exp_avg_sq": 4 * n}


def test_8bit_adamw_is_about_two_bytes_per_parameter_for_large_tensors():
    params = _params_with_grads([(1024, 256)])
    opt = _step("adamw_8bit", params)
    per_param = optim.optimizer_state_bytes(opt) / params[0].numel()
    assert 2.0 < per_param < 2.1
    assert optim.state_breakdown(opt)["state1"] == params[0].numel()


def test_8bit_adamw_keeps_small_tensors_in_fp32():
    small = _params_with_grads([(optim.MIN_8BIT_SIZE - 1,)])
    large = _params_with_grads([(optim.MIN_8BIT_SIZE,)])
    assert optim.optimizer_state_bytes(_step("adamw_8bit", small)) == 8 * (optim.MIN_8BIT_SIZE - 1)
    assert optim.optimizer_state_bytes(_step("adamw_8bit", large)) < 3 * optim.MIN_8BIT_SIZE


def test_shared_quantization_maps_count_once():
    opt = _step("adamw_8bit", _params_with_grads([(4096,), (8192,), (5000,)]))
    parts = optim.state_breakdown(opt)
    assert parts["qmap1"] == parts["qmap2"] == 256 * 4


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_prediction_equals_measurement(name):
    params = _params_with_grads(SIZES + [(257, 33)])
    measured = optim.optimizer_state_bytes(_step(name, params))
    assert optim.predicted_state_bytes([p.numel() for p in params], name) == measured


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_prediction_follows_the_parameter_dtype(name):
    params = [torch.nn.Parameter(p.detach().to(torch.bfloat16)) for p in _params_with_grads(SIZES)]
    for p, g in zip(params, _params_with_grads(SIZES, seed=1)):
        p.grad = g.grad.to(torch.bfloat16)
    measured = optim.optimizer_state_bytes(_step(name, params))
    numels = [p.numel() for p in params]
    assert optim.predicted_state_bytes(numels, name, torch.bfloat16) == measured
    # only PyTorch's AdamW keeps its state in the parameter's dtype
    fp32 = optim.predicted_state_bytes(numels, name)
    assert (measured < fp32) == (name == "adamw_torch")


def test_paged_optimizer_falls_back_to_ordinary_memory_on_cpu():
    params = _params_with_grads([(512, 512)])
    reference = [p.detach().clone().requires_grad_() for p in params]
    for p, r in zip(params, reference):
        r.grad = p.grad.clone()
    with pytest.warns(UserWarning, match="not supported on CPU"):
        opt = _step("paged_adamw_32bit", params)
    assert optim.paged_state_bytes(opt) == 0
    assert optim.optimizer_state_bytes(opt) == 8 * params[0].numel()
    # the fallback still computes AdamW: the same update as torch's AdamW
    _step("adamw_torch", reference)
    torch.testing.assert_close(params[0].detach(), reference[0].detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, state_bytes", [("paged_adamw_32bit", 8), ("paged_adamw_8bit", 2)])
def test_paged_state_bytes_counts_what_bitsandbytes_pages(monkeypatch, name, state_bytes):
    # bitsandbytes pages only on a GPU: stand in for one with parameters on the meta device and for its
    # unified-memory allocation with ordinary tensors that carry the same is_paged mark.
    def get_paged(*shape, dtype=torch.float32, device=None):
        buffer = torch.zeros(shape, dtype=dtype)
        buffer.is_paged, buffer.page_deviceid = True, 0
        return buffer

    monkeypatch.setattr(bnb.functional, "get_paged", get_paged)
    monkeypatch.setattr(bnb.functional, "fill", lambda A, value, device=None, prefetch=True: A.fill_(value))
    sizes = [(512, 512), (optim.PAGE_MIN_NUMEL,), (optim.PAGE_MIN_NUMEL - 1,), (64, 64)]
    with torch.device("meta"):
        params = [torch.nn.Parameter(torch.empty(s)) for s in sizes]
    opt = optim.make_optimizer(name, params)
    pages = bnb.functional.GlobalPageManager.get_instance().paged_tensors
    before = len(pages)
    try:
        for g, group in enumerate(opt.param_groups):
            for i, p in enumerate(group["params"]):
                opt.init_state(group, p, g, i)
        paged = pages[before:]
        reported = sum(t.numel() * t.element_size() for t in paged)
    finally:
        del pages[before:]
    assert len(paged) == 4  # m and v of the two tensors of at least PAGE_MIN_NUMEL elements
    assert optim.paged_state_bytes(opt) == reported == state_bytes * (512 * 512 + optim.PAGE_MIN_NUMEL)


def test_measure_states_restores_the_weights_and_covers_every_optimizer():
    params = _params_with_grads([(256, 64), (64, 256)])
    before = [p.detach().clone() for p in params]
    with pytest.warns(UserWarning):
        states = optim.measure_states(params)
    assert set(states) == set(optim.OPTIMIZERS)
    assert sum(states["adamw_torch"].values()) == 8 * sum(p.numel() for p in params)
    assert sum(states["adamw_8bit"].values()) < sum(states["adamw_torch"].values())
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b)


def test_measure_states_needs_gradients():
    with pytest.raises(ValueError, match="params"):
        optim.measure_states([torch.nn.Parameter(torch.ones(3))])


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_optimizer_gets_the_posts_learning_rate_and_library_defaults(name):
    opt = optim.make_optimizer(name, [torch.nn.Parameter(torch.ones(3))])
    assert type(opt) is optim.OPTIMIZERS[name]
    assert opt.defaults["lr"] == 2e-4  # the post's learning_rate
    assert opt.defaults["weight_decay"] == inspect.signature(type(opt)).parameters["weight_decay"].default


def test_unknown_optimizer_name_is_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        optim.make_optimizer("adam", [torch.nn.Parameter(torch.ones(3))])
    with pytest.raises(ValueError, match="name must be one of"):
        optim.predicted_state_bytes([3], "sgd")
    with pytest.raises(TypeError, match="param_dtype"):
        optim.predicted_state_bytes([3], "adamw_torch", torch.int8)


def test_page_threshold_matches_bitsandbytes_source():
    source = inspect.getsource(bnb.optim.optimizer.Optimizer8bit.get_state_buffer)
    assert "p.numel() < 1e5" in source
    assert optim.PAGE_MIN_NUMEL == int(1e5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU message")
def test_paging_demo_says_it_needs_a_gpu():
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        optim.paging_demo()
