"""In the Korean edition, every message a learner must act on is Korean: no English sentence outside labels."""
import importlib.util
import json
import types
from pathlib import Path

import pytest
import torch

from helpers import auth, estimate, hub, language, loading, optim, runtime, setup_check, training

spec = importlib.util.spec_from_file_location(
    "english_lines", Path(__file__).resolve().parent.parent / "scripts" / "english_lines.py")
english_lines = importlib.util.module_from_spec(spec)
spec.loader.exec_module(english_lines)


@pytest.fixture(autouse=True)
def korean():
    language.set_language("ko")
    yield
    language.set_language("en")


def assert_korean(text: str) -> None:
    assert any("\uac00" <= c <= "\ud7a3" for c in text), text
    assert english_lines.english_sentences(text) == [], text


def test_the_scanner_finds_english_sentences_and_passes_labels():
    assert english_lines.english_sentences("Setup checked: 12 pinned libraries as required") != []
    assert english_lines.english_sentences("설치 확인 완료: transformers 5.24.0, helpers/estimate.py") == []
    assert english_lines.english_sentences("Colab: Runtime > Restart session, Kaggle: Run > Restart & clear "
                                           "cell outputs") == []


def test_the_scanner_reads_a_notebooks_outputs(tmp_path):
    cells = [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["설치 확인 완료\n", "Training stopped at step 3 here\n"]},
        {"output_type": "error", "ename": "ValueError", "evalue": "this value is not right", "traceback": []},
        {"output_type": "display_data", "data": {"text/plain": ["손실 0.5"]}, "metadata": {}}]}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert english_lines.english_lines(path) == ["Training stopped at step 3 here",
                                                 "ValueError: this value is not right"]


@pytest.fixture
def quiet_setup(monkeypatch):
    monkeypatch.setattr(setup_check, "pins", lambda requirements=None: ["torch==2.13.0"])
    monkeypatch.setattr(setup_check, "version_problems", lambda reqs: [])
    monkeypatch.setattr(setup_check, "torchao_problem", lambda: None)
    monkeypatch.setattr(setup_check, "closure", lambda reqs: set())
    monkeypatch.setattr(setup_check, "stale_modules", lambda names: [])
    return monkeypatch


def test_the_setup_check_speaks_korean(quiet_setup, capsys):
    setup_check.check_install(edition="notebooks/ko/")
    assert_korean(capsys.readouterr().out)
    quiet_setup.setattr(setup_check, "version_problems", lambda reqs: ["torch 2.0.0 설치됨, 2.13.0 필요"])
    with pytest.raises(RuntimeError) as differ:
        setup_check.check_install(edition="notebooks/ko/")
    assert_korean(str(differ.value))
    quiet_setup.setattr(setup_check, "version_problems", lambda reqs: [])
    quiet_setup.setattr(setup_check, "stale_modules", lambda names: ["transformers"])
    with pytest.raises(RuntimeError) as restart:
        setup_check.check_install(edition="notebooks/ko/")
    assert_korean(str(restart.value))


@pytest.mark.parametrize("status", ["found", "not found", "denied", "timeout"])
def test_the_token_messages_speak_korean(status, monkeypatch):
    monkeypatch.setattr(auth, "token_status", lambda: status)
    assert_korean(auth.token_message())


@pytest.mark.parametrize("kind", ["model", "data set"])
def test_the_gated_model_steps_speak_korean(kind):
    assert_korean(str(auth.GatedModelError("google/gemma-2b", kind)))


@pytest.mark.parametrize("fp16", [True, False])
def test_the_nan_guard_speaks_korean(fp16):
    args = types.SimpleNamespace(fp16=fp16, learning_rate=2e-4, max_grad_norm=1.0)
    assert_korean(training.nonfinite_message("loss", float("nan"), 30, args))


def test_resume_and_out_of_memory_speak_korean(tmp_path):
    with pytest.raises(FileNotFoundError) as gone:
        training._restore_finished(None, tmp_path, {"step": 5, "adapter": "adapter", "log_history": []})
    assert_korean(str(gone.value))
    assert_korean(language.pick(training.OOM_ADVICE, training.OOM_ADVICE_KO))


def test_check_finite_logits_speaks_korean(monkeypatch):
    class Overflowing(torch.nn.Module):
        device = torch.device("cpu")

        def forward(self, input_ids, attention_mask=None):
            return types.SimpleNamespace(logits=torch.full((*input_ids.shape, 4), float("inf")))

    tokenizer = types.SimpleNamespace()
    monkeypatch.setattr(training, "check_tokenizer", lambda t: t)
    monkeypatch.setattr(training, "left_padded", lambda model, tok: __import__("contextlib").nullcontext())
    tokenizer = lambda texts, **kw: types.SimpleNamespace(
        to=lambda device: {"input_ids": torch.ones(len(texts), 3, dtype=torch.long)})
    with pytest.raises(FloatingPointError) as error:
        training.check_finite_logits(Overflowing(), tokenizer, ["질문"])
    assert_korean(str(error.value))


def test_the_paging_reason_speaks_korean():
    assert_korean(optim._why_not_paged(torch.device("cpu"), 10))


def test_the_estimates_assumptions_speak_korean():
    for line in estimate.t4_hours(1000, "t4", gpus=2)["assumptions"]:
        assert_korean(line)


def test_the_hub_refusals_speak_korean(tmp_path):
    with pytest.raises(ValueError) as error:
        hub.run_settings(tmp_path)
    assert_korean(str(error.value))


def test_full_mode_without_a_gpu_speaks_korean():
    rt = runtime.Runtime("colab", None, 0, None, None, torch.float32, "full", {"": "cpu"})
    with pytest.raises(RuntimeError) as error:
        loading.load_model("google/gemma-2b", rt)
    assert_korean(str(error.value))
    assert "런타임 > 런타임 유형 변경 > T4 GPU" in str(error.value)
    assert "런타임 > 런타임 유형 변경 > T4 GPU" in runtime.describe(rt)
