"""Time helpers.quant's NF4 quantize/dequantize against bitsandbytes' on one 4096x4096 fp32 matrix (CPU).

Run: .venv/bin/python benchmarks/quant_cpu.py
Both sides run in this process with torch's default thread settings, alternating call by call so that
load from other processes hits both alike; the table shows the median of the repeated runs.
"""

import platform
import statistics
import time

import bitsandbytes
import bitsandbytes.functional as F
import torch

from helpers import quant

REPEATS = 11


def _median_ms(pairs: dict[str, tuple], repeats: int) -> dict[str, float]:
    """Median wall time in ms of each (function, args) after one warm-up call, the calls interleaved."""
    times = {name: [] for name in pairs}
    for fn, args in pairs.values():
        fn(*args)
    for _ in range(repeats):
        for name, (fn, args) in pairs.items():
            start = time.perf_counter()
            fn(*args)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def main() -> None:
    """Check both sides agree on the matrix, time them and print a markdown table."""
    torch.manual_seed(0)
    x = torch.randn(4096, 4096)
    packed, absmax = quant.quantize_4bit(x)
    bnb_packed, state = F.quantize_4bit(x, blocksize=64, quant_type="nf4")
    assert torch.equal(packed, bnb_packed) and torch.equal(absmax, state.absmax)
    assert torch.equal(quant.dequantize_4bit(packed, absmax, x.shape), F.dequantize_4bit(bnb_packed, state))

    ms = _median_ms(
        {
            "ours quantize": (quant.quantize_4bit, (x,)),
            "bnb quantize": (lambda t: F.quantize_4bit(t, blocksize=64, quant_type="nf4"), (x,)),
            "ours dequantize": (quant.dequantize_4bit, (packed, absmax, x.shape)),
            "bnb dequantize": (F.dequantize_4bit, (bnb_packed, state)),
        },
        REPEATS,
    )
    print(
        f"NF4, blocksize 64, 4096x4096 fp32, median of {REPEATS} runs; torch {torch.__version__}, "
        f"bitsandbytes {bitsandbytes.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()} ({torch.backends.cpu.get_cpu_capability()})\n"
    )
    print("| step | helpers.quant (ms) | bitsandbytes (ms) | ratio | aim |")
    print("|---|---:|---:|---:|---:|")
    for step, aim in (("quantize", 1.5), ("dequantize", 4.0)):
        ours, bnb = ms[f"ours {step}"], ms[f"bnb {step}"]
        print(f"| {step} | {ours:.1f} | {bnb:.1f} | {ours / bnb:.2f}x | <= {aim}x |")


if __name__ == "__main__":
    main()
