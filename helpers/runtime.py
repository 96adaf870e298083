"""Where the course runs (Colab, Kaggle or local; which GPU) and what that implies: dtype, mode, device map."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from helpers.language import pick

MODES = ("full", "smoke")
# Full mode's model and data when nothing overrides them; COURSE_MODEL and COURSE_DATA=sample stand in for them (the
# GPU check, scripts/gpu_check.py, runs full mode on a machine that cannot reach the Hub).
HUB_MODEL = "google/gemma-2b"
DATA_SOURCES = ("hub", "sample")


@dataclass
class Runtime:
    """What the course needs to know about the machine it runs on."""

    platform: str  # "colab" | "kaggle" | "local"
    gpu_name: str | None
    gpu_count: int
    gpu_memory_gb: float | None
    compute_capability: tuple[int, int] | None
    dtype: torch.dtype  # the compute dtype of the run: bf16, fp16 or fp32
    mode: str  # "full" (Gemma-2B on a GPU) | "smoke" (a tiny Gemma on the CPU)
    device_map: dict


def check_runtime(rt: Runtime | None, name: str = "rt") -> Runtime | None:
    """Return rt if it is a Runtime or None, else raise a TypeError saying how to get one."""
    if rt is not None and not isinstance(rt, Runtime):
        raise TypeError(
            f"{name} must be the Runtime that runtime.setup() returns (or None to detect it), got {rt!r}. "
            "For a mode, set COURSE_MODE=smoke or full instead."
        )
    return rt


def detect_platform() -> str:
    """Return "colab", "kaggle" or "local" from the notebook host's modules and environment."""
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
        return "colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        return "kaggle"
    return "local"


def course_mode(has_gpu: bool) -> str:
    """Return the mode: COURSE_MODE when set, else "full" with a GPU and "smoke" without."""
    mode = os.environ.get("COURSE_MODE", "").strip().lower()
    if not mode:
        return "full" if has_gpu else "smoke"
    if mode not in MODES:
        raise ValueError(
            f"COURSE_MODE={os.environ['COURSE_MODE']!r} is not a mode: set COURSE_MODE to 'smoke' "
            "(tiny model on the CPU) or 'full' (Gemma-2B on a GPU), or unset it to choose by the hardware."
        )
    return mode


def course_model() -> str | None:
    """Return COURSE_MODEL, the model folder full mode loads in place of google/gemma-2b, or None when unset."""
    folder = os.environ.get("COURSE_MODEL", "").strip()
    if not folder:
        return None
    folder = os.path.abspath(os.path.expanduser(folder))
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise ValueError(pick(
            f"COURSE_MODEL={os.environ['COURSE_MODEL']!r} is not a model folder (no config.json in {folder}): set it "
            "to a folder that save_pretrained wrote, or unset it to load google/gemma-2b from the Hub.",
            f"COURSE_MODEL={os.environ['COURSE_MODEL']!r}은(는) 모델 폴더가 아닙니다({folder}에 config.json이 없음): "
            "save_pretrained로 저장한 폴더를 지정하거나, Hub의 google/gemma-2b를 쓰려면 COURSE_MODEL을 지우세요.",
        ))
    return folder


def course_data() -> str:
    """Return full mode's data source: "hub" (dolly-15k or dolly-ko), or "sample" (COURSE_DATA=sample)."""
    source = os.environ.get("COURSE_DATA", "").strip().lower() or "hub"
    if source not in DATA_SOURCES:
        raise ValueError(pick(
            f"COURSE_DATA={os.environ['COURSE_DATA']!r} is not a data source: set COURSE_DATA to 'sample' (the "
            "shipped sample in full mode too) or 'hub', or unset it.",
            f"COURSE_DATA={os.environ['COURSE_DATA']!r}은(는) 데이터 출처가 아닙니다: 전체 모드에서도 함께 제공되는 "
            "샘플을 쓰려면 'sample', Hub 데이터셋을 쓰려면 'hub'로 지정하거나 COURSE_DATA를 지우세요.",
        ))
    return source


def force_fp16() -> bool:
    """Return whether COURSE_FORCE_FP16=1 asks a bf16-capable GPU for a T4's fp16 compute (the GPU check does)."""
    value = os.environ.get("COURSE_FORCE_FP16", "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(pick(
            f"COURSE_FORCE_FP16={value!r}: set it to 1 (fp16 compute, as on a T4) or 0, or unset it.",
            f"COURSE_FORCE_FP16={value!r}: 1(T4처럼 fp16 연산) 또는 0으로 지정하거나 지우세요.",
        ))
    return value == "1"


def detect() -> Runtime:
    """Inspect the machine and return its Runtime (COURSE_MODE=smoke|full overrides the mode)."""
    gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mode = course_mode(gpu_count > 0)
    gpu_name = memory_gb = capability = None
    if gpu_count:
        gpu_name = torch.cuda.get_device_name(0)
        memory_gb = round(torch.cuda.get_device_properties(0).total_memory / 1024**3, 1)
        capability = tuple(torch.cuda.get_device_capability(0))
    if mode == "smoke" or not gpu_count:
        dtype, device_map = torch.float32, {"": "cpu"}
    else:
        # bf16 needs compute capability 8.0 (Ampere); a T4 is 7.5, so it gets fp16 (and so does COURSE_FORCE_FP16=1).
        dtype = torch.bfloat16 if capability >= (8, 0) and not force_fp16() else torch.float16
        # One GPU even when there are two (Kaggle): 3 GB fits one T4; a split only adds transfers while one idles.
        device_map = {"": 0}
    return Runtime(detect_platform(), gpu_name, gpu_count, memory_gb, capability, dtype, mode, device_map)


def sources() -> str:
    """Return where full mode's model and data come from, in the session's language (notebook 05 picks the data set)."""
    folder = course_model()
    model = (pick(f"model: {folder} (COURSE_MODEL, in place of {HUB_MODEL})",
                  f"모델: {folder}(COURSE_MODEL, {HUB_MODEL} 대신)") if folder
             else pick(f"model: {HUB_MODEL} from the Hugging Face Hub", f"모델: Hugging Face Hub의 {HUB_MODEL}"))
    data = (pick("data: the shipped sample (COURSE_DATA=sample, in place of the Hub's data sets)",
                 "데이터: 함께 제공되는 샘플(COURSE_DATA=sample, Hub 데이터셋 대신)") if course_data() == "sample"
            else pick("data: a data set from the Hub", "데이터: Hub의 데이터셋"))
    return f"{model}, {data}"


def describe(rt: Runtime) -> str:
    """Return the one line that tells the learner which mode runs, on what, and why (in the session's language)."""
    if check_runtime(rt) is None:
        raise TypeError("rt must be the Runtime that runtime.detect() returns, got None.")
    where = {"colab": "Colab", "kaggle": "Kaggle", "local": pick("this machine", "이 컴퓨터")}[rt.platform]
    if rt.mode == "smoke":
        if rt.gpu_count:
            return pick(
                f"Smoke mode (COURSE_MODE=smoke) on {where}: a tiny Gemma-architecture model on the CPU with "
                f"the shipped sample data, although a GPU ({rt.gpu_name}) is present (unset COURSE_MODE to use it).",
                f"스모크 모드(COURSE_MODE=smoke), {where}: GPU({rt.gpu_name})가 있지만 CPU에서 Gemma 구조의 작은 "
                "모델을 함께 제공되는 샘플 데이터로 실행합니다(GPU를 쓰려면 COURSE_MODE 설정을 지우세요).",
            )
        line = pick("Smoke mode: no GPU found, so this runs a tiny Gemma-architecture model on the shipped sample data",
                    "스모크 모드: GPU가 없으므로 Gemma 구조의 작은 모델을 함께 제공되는 샘플 데이터로 실행합니다")
        # On a hosted CPU runtime the way to the real run is a GPU runtime, not COURSE_MODE=full (it would fail).
        # Colab has a Korean menu; Kaggle's is English only.
        gpu_runtime = {
            "colab": pick("Runtime > Change runtime type > T4 GPU", "런타임 > 런타임 유형 변경 > T4 GPU"),
            "kaggle": "Settings > Accelerator > GPU T4 x2",
        }
        if rt.platform in gpu_runtime:
            return pick(f"{line}. For the real run on {where}, choose a GPU runtime ({gpu_runtime[rt.platform]}).",
                        f"{line}. {where}에서 실제로 실행하려면 GPU 런타임을 고르세요({gpu_runtime[rt.platform]}).")
        return line + pick(" (set COURSE_MODE=full to override).", "(전체 모드로 강제하려면 COURSE_MODE=full).")
    if not rt.gpu_count:
        return pick(
            f"Full mode (COURSE_MODE=full) on {where}, but no GPU found: loading Gemma-2B will fail. Pick a GPU "
            "runtime (Colab: Runtime > Change runtime type > T4 GPU) or unset COURSE_MODE for smoke mode.",
            f"전체 모드(COURSE_MODE=full), {where}: GPU가 없어 Gemma-2B를 불러오지 못합니다. GPU 런타임을 "
            "고르거나(Colab: 런타임 > 런타임 유형 변경 > T4 GPU), 스모크 모드로 실행하려면 COURSE_MODE 설정을 "
            "지우세요.",
        )
    dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}[rt.dtype]
    if rt.dtype == torch.float16 and rt.compute_capability >= (8, 0):
        why = pick(" (COURSE_FORCE_FP16=1, as on a T4)", "(COURSE_FORCE_FP16=1, T4처럼)")
    elif rt.dtype == torch.float16:
        why = pick(" (no bf16 below compute capability 8.0)", "(연산 능력 8.0 미만에는 bf16이 없음)")
    else:
        why = ""
    major, minor = rt.compute_capability
    line = pick(
        f"Full mode on {where}: {rt.gpu_name}, {rt.gpu_memory_gb} GB, compute capability {major}.{minor}, "
        f"{dtype} compute{why}; {sources()}.",
        f"전체 모드, {where}: {rt.gpu_name}, {rt.gpu_memory_gb} GB, 연산 능력(compute capability) {major}.{minor}, "
        f"{dtype} 연산{why}; {sources()}.",
    )
    if rt.gpu_count > 1:
        line += pick(
            f" Using GPU 0 of {rt.gpu_count} (device_map={{'': 0}}): the 4-bit model (about 3 GB) fits one GPU, and "
            "splitting it would only add transfers while one GPU waits; GPUS = 2 in notebook 05 trains on both.",
            f" GPU {rt.gpu_count}개 가운데 0번을 씁니다(device_map={{'': 0}}): 4비트 모델(약 3 GB)은 GPU 한 장에 "
            "들어가고, 나누면 한 GPU가 기다리는 동안 전송만 늘어납니다. "
            "노트북 05에서 GPUS = 2로 두면 두 장 모두로 학습합니다.",
        )
    return line


def setup() -> Runtime:
    """Detect the runtime, print its one line, and return it."""
    rt = detect()
    print(describe(rt))
    return rt


@contextmanager
def cpu_threads(device: torch.device | str, n: int = 1) -> Iterator[None]:
    """On a CPU device, run the block with n torch threads, then restore the count; elsewhere do nothing."""
    if not isinstance(device, (torch.device, str)):
        raise TypeError(f"device must be a torch.device or a string such as 'cpu' or 'cuda:0', got {device!r}.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number of threads of at least 1, got {n!r}.")
    if torch.device(device).type != "cpu":
        yield
        return
    # The tiny model's matrices are too small to split: on 2 cores shared with other jobs, two threads spent
    # most of a smoke run waiting for each other (measured here: 30 steps in 94-121 s with 2, 12-19 s with 1).
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
