"""Optimizer state as memory: build the course's optimizers, measure their state, demo paging."""
import gc
import inspect
import math
import platform
import warnings
from collections.abc import Iterable

import bitsandbytes as bnb
import torch

from helpers.language import pick

# The names are transformers' `optim=` strings, so a learner can pass the same name to SFTConfig.
OPTIMIZERS = {
    "adamw_torch": torch.optim.AdamW,
    "adamw_8bit": bnb.optim.AdamW8bit,
    "paged_adamw_32bit": bnb.optim.PagedAdamW32bit,
    "paged_adamw_8bit": bnb.optim.PagedAdamW8bit,
}
# bitsandbytes keeps the state of a parameter smaller than this in fp32 even in an 8-bit optimizer.
MIN_8BIT_SIZE = inspect.signature(bnb.optim.AdamW8bit).parameters["min_8bit_size"].default
# bitsandbytes pages only the state of parameters with at least this many elements: smaller state
# goes to ordinary GPU memory (`Optimizer8bit.get_state_buffer`; tests/test_optim.py watches it).
PAGE_MIN_NUMEL = 100_000
BLOCKSIZE_8BIT = 256
# The start of the UserWarning bitsandbytes gives once per paged optimizer on a CPU (Optimizer8bit.get_state_buffer).
CPU_PAGING_WARNING = "Paged optimizers are not supported on CPU"


def make_optimizer(name: str, params: Iterable[torch.Tensor], lr: float = 2e-4) -> torch.optim.Optimizer:
    """Build the AdamW variant that transformers picks for `optim=name`, with the library defaults but lr."""
    if name not in OPTIMIZERS:
        raise ValueError(f"name must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](params, lr=lr)


def state_breakdown(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of the optimizer's state tensors by state name; shared tensors count once, step counters not at all."""
    seen, parts = set(), {}
    for state in optimizer.state.values():
        for key, value in state.items():
            if not torch.is_tensor(value) or value.dim() == 0:
                continue
            # 8-bit optimizers hand every parameter the same quantization map (qmap1, qmap2).
            ptr = value.untyped_storage().data_ptr()
            if ptr in seen:
                continue
            seen.add(ptr)
            parts[key] = parts.get(key, 0) + value.numel() * value.element_size()
    return parts


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Total bytes the optimizer's state tensors occupy (see state_breakdown)."""
    return sum(state_breakdown(optimizer).values())


# What each state tensor of PyTorch's and bitsandbytes' AdamW holds, for plots of state by part.
STATE_PARTS = {"exp_avg": "first moment m", "state1": "first moment m", "exp_avg_sq": "second moment v",
               "state2": "second moment v", "absmax1": "block absmax", "absmax2": "block absmax",
               "qmap1": "code maps", "qmap2": "code maps"}


def bytes_by_part(states: dict[str, dict[str, int]], scale: float = 1.0) -> dict[str, list[float]]:
    """{part: [that part's bytes / scale, one per optimizer]} from measure_states' result, for stacked bars."""
    unknown = {k for parts in states.values() for k in parts} - set(STATE_PARTS)
    if unknown:
        raise ValueError(f"states has state names {sorted(unknown)} that STATE_PARTS does not know")
    return {part: [sum(b for k, b in parts.items() if STATE_PARTS[k] == part) / scale for parts in states.values()]
            for part in dict.fromkeys(STATE_PARTS.values())}


def paged_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's state that live in CUDA unified (paged) memory; 0 on a CPU."""
    return sum(v.numel() * v.element_size() for state in optimizer.state.values()
               for v in state.values() if torch.is_tensor(v) and getattr(v, "is_paged", False))


def predicted_state_bytes(numels: Iterable[int], name: str, param_dtype: torch.dtype = torch.float32) -> int:
    """State bytes an AdamW variant will allocate for parameters of these sizes and dtype, from the libraries' rules."""
    if name not in OPTIMIZERS:
        raise ValueError(f"name must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    if not param_dtype.is_floating_point:
        raise TypeError(f"param_dtype must be a floating dtype such as torch.bfloat16, got {param_dtype}")
    # PyTorch keeps m and v in the parameter's dtype; bitsandbytes' 32-bit path always in fp32.
    state_size = param_dtype.itemsize if name == "adamw_torch" else 4
    total, any_8bit = 0, False
    for n in numels:
        if name.endswith("8bit") and n >= MIN_8BIT_SIZE:
            # two uint8 states plus one fp32 absmax per block of 256 for each of them
            total += 2 * n + 2 * 4 * math.ceil(n / BLOCKSIZE_8BIT)
            any_8bit = True
        else:
            total += 2 * state_size * n
    # the two 256-entry fp32 quantization maps, shared by every 8-bit parameter
    return total + (2 * 256 * 4 if any_8bit else 0)


def measure_states(params: list[torch.Tensor], names: Iterable[str] = tuple(OPTIMIZERS)) -> dict[str, dict[str, int]]:
    """Take one step with each named optimizer on params (which must hold .grad) and return its state by name."""
    params = list(params)
    if not params or any(p.grad is None for p in params):
        raise ValueError("params: every parameter needs a .grad; run loss.backward() first")
    start = [p.detach().clone() for p in params]
    result = {}
    for name in names:
        optimizer = make_optimizer(name, params)
        optimizer.step()
        result[name] = state_breakdown(optimizer)
        # every optimizer starts from the same weights, so the measurements compare like with like
        with torch.no_grad():
            for p, p0 in zip(params, start):
                p.copy_(p0)
        del optimizer
    return result


def _demo_run(name: str, hidden: int, layers: int, lengths: tuple[int, ...], device: torch.device) -> dict:
    """Train a stack of linear layers one step per sequence length; record each step's peak or the OOM."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(hidden, hidden, bias=False) for _ in range(layers)]).to(device)
    optimizer = make_optimizer(name, model.parameters())
    run = {"optimizer": name, "ok": True, "error": None, "peaks": []}
    try:
        for length in lengths:
            torch.cuda.reset_peak_memory_stats(device)
            model(torch.randn(1, length, hidden, device=device)).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize(device)
            run["peaks"].append(torch.cuda.max_memory_allocated(device))
    except torch.cuda.OutOfMemoryError as err:
        run.update(ok=False, error=str(err).splitlines()[0])
    run["state_bytes"] = optimizer_state_bytes(optimizer)
    run["paged_bytes"] = paged_state_bytes(optimizer)
    return run


def _free_cuda() -> None:
    """Give the memory of finished runs back, so the next run starts from the same point."""
    gc.collect()
    torch.cuda.empty_cache()


def paging_demo(hidden: int = 4096, layers: int = 8, short_len: int = 512, long_len: int = 8192,
                device: int = 0) -> dict:
    """On a CUDA GPU: a short then a long batch, measured without a cap, then plain vs paged AdamW under a cap."""
    if not torch.cuda.is_available():
        raise RuntimeError("paging_demo needs a CUDA GPU (unified memory is a CUDA feature); on a CPU it cannot run")
    dev, lengths = torch.device("cuda", device), (short_len, long_len)
    _free_cuda()
    plain = _demo_run("adamw_torch", hidden, layers, lengths, dev)
    _free_cuda()
    # The paged optimizer needs about the plain peak minus its state, which it keeps outside
    # PyTorch's allocator; a cap halfway between the two separates them by half the state.
    cap = max(plain["peaks"]) - plain["state_bytes"] // 2
    total = torch.cuda.get_device_properties(dev).total_memory
    capped = {}
    torch.cuda.set_per_process_memory_fraction(cap / total, dev)
    try:
        for name in ("adamw_torch", "paged_adamw_32bit"):
            capped[name] = _demo_run(name, hidden, layers, lengths, dev)
            _free_cuda()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, dev)
    return {"cap_bytes": cap, "total_bytes": total, "lengths": lengths, "uncapped": plain, "capped": capped}


def _why_not_paged(device: torch.device, numel: int) -> str | None:
    """Why bitsandbytes cannot page (or the course cannot page out) this state on `device`; None when it can."""
    if device.type != "cuda":
        return pick("no CUDA GPU: bitsandbytes keeps paged state in ordinary memory",
                    "CUDA GPU가 없습니다: bitsandbytes는 페이지드 상태를 일반 메모리에 둡니다")
    if numel < PAGE_MIN_NUMEL:
        return pick(f"{numel:,} elements < PAGE_MIN_NUMEL: bitsandbytes keeps the state in ordinary GPU memory",
                    f"원소 {numel:,}개 < PAGE_MIN_NUMEL: bitsandbytes는 상태를 일반 GPU 메모리에 둡니다")
    # Reading GPU-resident managed memory from the CPU needs concurrent managed access, which CUDA on
    # Windows and WSL does not offer; Linux hosts such as Colab and Kaggle have it.
    if platform.system() != "Linux" or "microsoft" in platform.release().lower():
        return pick("the CPU cannot read GPU-resident managed memory on Windows or WSL",
                    "Windows나 WSL에서는 CPU가 GPU에 있는 관리 메모리(managed memory)를 읽을 수 없습니다")
    return None


def _page_out(optimizer: torch.optim.Optimizer) -> int:
    """Read every paged state tensor on the CPU, so the CUDA driver migrates its pages to CPU RAM; return the bytes."""
    # bitsandbytes' own prefetch_tensor(t, to_cpu=True) passes device -1 to cudaDeviceGetAttribute, whose error
    # ends the process (exit(1) in its C code), so the course moves the pages with an ordinary CPU read instead.
    torch.cuda.synchronize()
    moved = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value) and getattr(value, "is_paged", False):
                value.sum()  # PyTorch sees a CPU tensor: the sum reads every page on the CPU
                moved += value.numel() * value.element_size()
    return moved


def paging_roundtrip(shape: tuple[int, ...] = (1024, 1024), steps: int = 3, lr: float = 2e-4, seed: int = 0,
                     device: str | torch.device | None = None) -> dict:
    """Step paged AdamW and torch's AdamW on the same weights and gradients; on a GPU page the state out first."""
    if not isinstance(shape, tuple) or not shape or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(f"shape must be a tuple of positive ints such as (1024, 1024), got {shape!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}")
    try:
        dev = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a device such as 'cpu' or 'cuda:0', got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device is {device!r}, but there is no CUDA GPU here: pass device=None or 'cpu'")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(shape, generator=gen) * 0.02
    # every gradient is made and moved before the steps, so PyTorch allocates nothing between the readings below
    grads = [torch.randn(shape, generator=gen).to(dev) for _ in range(steps)]
    reason = _why_not_paged(dev, start.numel())
    result = {"device": str(dev), "shape": shape, "steps": steps, "reason": reason, "error": None,
              "paged": False, "state_bytes": 0, "paged_bytes": 0, "free": []}
    paged_p = torch.nn.Parameter(start.to(dev, copy=True))
    try:
        with warnings.catch_warnings():
            # on a CPU this is the fallback that `reason` reports
            warnings.filterwarnings("ignore", message=CPU_PAGING_WARNING)
            paged = make_optimizer("paged_adamw_32bit", [paged_p], lr=lr)
            for step, grad in enumerate(grads):
                paged_p.grad = grad
                if step and reason is None:
                    before = torch.cuda.mem_get_info(dev)[0]
                    read = _page_out(paged)
                    torch.cuda.synchronize(dev)
                    out = torch.cuda.mem_get_info(dev)[0]
                paged.step()
                if step and reason is None:
                    # free GPU memory as the driver counts it: up when the state leaves, down when it comes back
                    result["free"].append({"step": step + 1, "read": read, "paged_out": out - before,
                                           "back": out - torch.cuda.mem_get_info(dev)[0]})
    except RuntimeError as err:  # a CPU-only bitsandbytes build on a GPU host, or out of GPU memory
        result.update(error=str(err).splitlines()[0], reason=reason or "bitsandbytes could not run here")
        return result
    plain_p = torch.nn.Parameter(start.to(dev, copy=True))
    plain = torch.optim.AdamW([plain_p], lr=lr)
    for grad in grads:
        plain_p.grad = grad
        plain.step()
    final, reference = paged_p.detach().cpu(), plain_p.detach().cpu()
    result.update(
        paged=paged_state_bytes(paged) > 0,
        state_bytes=optimizer_state_bytes(paged),
        paged_bytes=paged_state_bytes(paged),
        max_update=(reference - start).abs().max().item(),
        max_diff=(final - reference).abs().max().item(),
        # float32 rounding: the two codes order their arithmetic differently; allow 8 units in the last place of
        # the largest weight (measured on a CPU: 1 unit after 3 and after 10 steps)
        tolerance=8 * torch.finfo(torch.float32).eps * start.abs().max().item(),
    )
    return result
