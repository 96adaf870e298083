"""Runtime detection on faked Colab, Kaggle and CPU machines."""

import re
import sys
from types import SimpleNamespace

import pytest
import torch

from helpers import language, runtime

PLATFORM_VARS = ("COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE", "COURSE_MODE", "COURSE_MODEL", "COURSE_DATA",
                 "COURSE_FORCE_FP16")
HANGUL = re.compile("[\uac00-\ud7a3]")


@pytest.fixture
def korean():
    """Pick the Korean lines for one test, English again afterwards."""
    language.set_language("ko")
    yield
    language.set_language("en")


@pytest.fixture
def stand_in(tmp_path):
    """A folder that looks like a saved model (config.json), for COURSE_MODEL."""
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


@pytest.fixture
def machine(monkeypatch):
    """Return a function that fakes the GPUs (name, memory GiB, capability) and the host environment."""
    for var in PLATFORM_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def fake(count=0, name="Tesla T4", memory_gib=15.0, capability=(7, 5), env=None):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
        props = SimpleNamespace(total_memory=int(memory_gib * 1024**3))
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: props)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)

    return fake


def test_cpu_machine_is_local_smoke_fp32_on_cpu(machine, capsys):
    machine(count=0)
    rt = runtime.setup()
    assert (rt.platform, rt.mode, rt.dtype, rt.device_map) == ("local", "smoke", torch.float32, {"": "cpu"})
    assert (rt.gpu_count, rt.gpu_name, rt.compute_capability) == (0, None, None)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("Smoke mode: no GPU found") and "COURSE_MODE=full" in out


@pytest.mark.parametrize("env, where", [({"COLAB_RELEASE_TAG": "r"}, "T4 GPU"),
                                        ({"KAGGLE_KERNEL_RUN_TYPE": "i"}, "GPU T4 x2")])
def test_smoke_on_a_hosted_cpu_runtime_says_to_choose_a_gpu_runtime(machine, env, where):
    machine(count=0, env=env)
    line = runtime.describe(runtime.detect())
    assert line.startswith("Smoke mode") and where in line and "COURSE_MODE" not in line


def test_colab_t4_is_full_fp16_on_gpu0(machine):
    machine(count=1, name="Tesla T4", memory_gib=15.0, capability=(7, 5), env={"COLAB_RELEASE_TAG": "release"})
    rt = runtime.detect()
    assert (rt.platform, rt.mode, rt.dtype, rt.device_map) == ("colab", "full", torch.float16, {"": 0})
    assert (rt.gpu_name, rt.gpu_memory_gb, rt.compute_capability) == ("Tesla T4", 15.0, (7, 5))
    line = runtime.describe(rt)
    assert "Colab" in line and "Tesla T4" in line and "fp16" in line and "7.5" in line


def test_colab_module_alone_means_colab(machine, monkeypatch):
    machine(count=1)
    monkeypatch.setitem(sys.modules, "google.colab", SimpleNamespace())
    assert runtime.detect().platform == "colab"


def test_kaggle_two_t4s_pin_one_gpu_and_say_why(machine):
    machine(count=2, env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
    rt = runtime.detect()
    assert (rt.platform, rt.gpu_count, rt.device_map, rt.dtype) == ("kaggle", 2, {"": 0}, torch.float16)
    line = runtime.describe(rt)
    assert "GPU 0 of 2" in line and "fits one GPU" in line and "cannot" not in line


def test_ampere_gets_bf16(machine):
    machine(count=1, name="NVIDIA A100-SXM4-40GB", memory_gib=39.4, capability=(8, 0))
    rt = runtime.detect()
    assert (rt.platform, rt.mode, rt.dtype) == ("local", "full", torch.bfloat16)
    assert "bf16" in runtime.describe(rt)


def test_course_mode_smoke_on_a_gpu_runs_on_cpu(machine):
    machine(count=1, env={"COURSE_MODE": "smoke"})
    rt = runtime.detect()
    assert (rt.mode, rt.dtype, rt.device_map) == ("smoke", torch.float32, {"": "cpu"})
    assert "COURSE_MODE=smoke" in runtime.describe(rt)


def test_course_mode_full_without_gpu_says_it_will_fail(machine):
    machine(count=0, env={"COURSE_MODE": "FULL"})
    rt = runtime.detect()
    assert rt.mode == "full"
    assert "no GPU found" in runtime.describe(rt)


def test_bad_course_mode_is_a_clear_error(machine):
    machine(count=0, env={"COURSE_MODE": "fast"})
    with pytest.raises(ValueError, match=r"COURSE_MODE='fast'.*'smoke'.*'full'"):
        runtime.detect()


def test_cpu_threads_pins_one_thread_on_cpu_and_restores():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(KeyError), runtime.cpu_threads("cpu"):
            assert torch.get_num_threads() == 1
            raise KeyError("inside")
        assert torch.get_num_threads() == 2
        with runtime.cpu_threads(torch.device("cuda", 0)):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_one_gpu_is_not_described_as_one_of_several(machine):
    machine(count=1, env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
    line = runtime.describe(runtime.detect())
    assert " of 1" not in line and "GPU 0" not in line and "device_map" not in line
    assert line.startswith("Full mode on Kaggle: Tesla T4, 15.0 GB, compute capability 7.5, fp16 compute")


def test_the_full_mode_line_names_the_model_and_the_data_source_and_claims_no_training(machine):
    # Notebooks 01-04 print it too (no training there), and notebook 05's DATASET may be dolly-ko: name neither.
    machine(count=1, env={"COLAB_RELEASE_TAG": "r"})
    line = runtime.describe(runtime.detect())
    assert line.endswith("; model: google/gemma-2b from the Hugging Face Hub, data: a data set from the Hub.")
    assert not re.search("dolly|train|learn", line, re.IGNORECASE) and not HANGUL.search(line)


def test_the_korean_full_mode_line_names_the_model_and_the_data_source_and_claims_no_training(machine, korean):
    machine(count=1, env={"COLAB_RELEASE_TAG": "r"})
    line = runtime.describe(runtime.detect())
    assert line.startswith("전체 모드, Colab: Tesla T4") and "(연산 능력 8.0 미만에는 bf16이 없음)" in line
    assert line.endswith("; 모델: Hugging Face Hub의 google/gemma-2b, 데이터: Hub의 데이터셋.")
    assert not re.search("dolly|학습", line)


def test_a_stand_in_model_sample_data_and_forced_fp16_are_named_in_the_mode_line(machine, stand_in, monkeypatch):
    monkeypatch.chdir(stand_in.parent)
    machine(count=1, name="NVIDIA H100 80GB HBM3", memory_gib=79.2, capability=(9, 0),
            env={"COURSE_MODEL": stand_in.name, "COURSE_DATA": "Sample", "COURSE_FORCE_FP16": "1"})
    rt = runtime.detect()
    assert (rt.mode, rt.dtype) == ("full", torch.float16)
    assert runtime.course_model() == str(stand_in) and runtime.course_data() == "sample"
    line = runtime.describe(rt)
    assert "compute capability 9.0, fp16 compute (COURSE_FORCE_FP16=1, as on a T4);" in line
    assert line.endswith(f"model: {stand_in} (COURSE_MODEL, in place of google/gemma-2b), data: the shipped sample "
                         "(COURSE_DATA=sample, in place of the Hub's data sets).")


def test_the_korean_mode_line_names_the_stand_in_too(machine, stand_in, korean):
    machine(count=1, capability=(9, 0), env={"COURSE_MODEL": str(stand_in), "COURSE_DATA": "sample",
                                              "COURSE_FORCE_FP16": "1"})
    line = runtime.describe(runtime.detect())
    assert "fp16 연산(COURSE_FORCE_FP16=1, T4처럼)" in line
    assert line.endswith(f"모델: {stand_in}(COURSE_MODEL, google/gemma-2b 대신), "
                         "데이터: 함께 제공되는 샘플(COURSE_DATA=sample, Hub 데이터셋 대신).")


def test_without_the_settings_full_mode_keeps_the_hub_and_bf16(machine):
    machine(count=1, capability=(9, 0), env={"COURSE_MODEL": " ", "COURSE_DATA": "", "COURSE_FORCE_FP16": "0"})
    assert (runtime.course_model(), runtime.course_data(), runtime.detect().dtype) == (None, "hub", torch.bfloat16)


def test_a_course_model_that_is_no_model_folder_is_refused(machine, tmp_path, korean):
    machine(count=1, env={"COURSE_MODEL": str(tmp_path)})
    with pytest.raises(ValueError, match="config.json이 없음.*COURSE_MODEL을 지우세요"):
        runtime.course_model()
    language.set_language("en")
    with pytest.raises(ValueError, match=r"is not a model folder \(no config.json in .*unset it"):
        runtime.course_model()


@pytest.mark.parametrize("var, value", [("COURSE_DATA", "dolly"), ("COURSE_FORCE_FP16", "yes")])
def test_a_misspelt_setting_is_a_clear_error(machine, var, value):
    machine(count=1, capability=(9, 0), env={var: value})
    with pytest.raises(ValueError, match=f"{var}='{value}'"):
        runtime.describe(runtime.detect())
