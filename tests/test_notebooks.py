"""Every notebook runs top to bottom in smoke mode, shows its plots and never leaks a token."""
import json
import re
from pathlib import Path

import nbformat
import pytest
from run_course import execute

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
KOREAN = sorted((ROOT / "notebooks" / "ko").glob("[0-9][0-9]_*.ipynb"))
# Run after a notebook's last cell: the names of the notebook's globals whose value shows the token.
TOKEN_IN_NAMESPACE = """import os as _os
_token = _os.environ["HF_TOKEN"]
print("globals showing the token:", sorted(_k for _k, _v in list(globals().items())
      if not _k.startswith("_") and _k not in ("In", "Out") and _token in repr(_v)))"""
FAKE_TOKEN = "hf_FAKE_not_a_real_token_notebooks_0123456789"
# The only stderr an executed notebook may show: each line is harmless or explained by the lesson.
ALLOWED_STDERR = (
    # bitsandbytes 0.50 looks for an optional CPU kernel package when imported; harmless (docs/facts.md).
    r"Failed to load CPU gemm_4bit_forward from kernels-community",
    # Notebooks 04 and 05 explain it: without a GPU there is no memory to page from, so the optimizer is plain.
    r"UserWarning: Paged optimizers are not supported on CPU",
    r"^\s*state\[\"state1\"\] = self\.get_state_buffer",  # the source line Python prints under that warning
)
# A library's progress bar left in the saved notebook: a tqdm widget, an HTML bar short of its end, or the
# Trainer's metrics table with "No log" in it. (The course's own ipywidgets sliders are not bars.)
TQDM_BAR = re.compile(r"\d+%\||it/s\]|examples/s\]")
HTML_BAR = re.compile(r"<progress value='(\d+)' max='(\d+)'")


def unexplained_noise(outputs) -> list[str]:
    """Return every stderr line and progress bar in a notebook's outputs that the allow-lists above do not explain."""
    noise = [line for o in outputs if o.get("name") == "stderr" for line in o.get("text", "").splitlines()
             if line.strip() and not any(re.search(allowed, line) for allowed in ALLOWED_STDERR)]
    for o in outputs:
        data = o.get("data", {})
        if "application/vnd.jupyter.widget-view+json" in data and TQDM_BAR.search(data.get("text/plain", "")):
            noise.append(data["text/plain"])
        page = data.get("text/html", "")
        if "No log" in page or any(done != end for done, end in HTML_BAR.findall(page)):
            noise.append(page[:200])
    return noise


def test_unexplained_noise_flags_warnings_and_stuck_bars_but_not_the_allowed_lines():
    outputs = [
        {"output_type": "stream", "name": "stderr", "text": "Failed to load CPU gemm_4bit_forward from "
         "kernels-community: No module named 'kernels'.\nx.py:3: FutureWarning: `is_gradient_checkpointing` is "
         "deprecated\n  warnings.warn(\n"},
        {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {},
                                                 "text/plain": "Loading weights:   0%|          | 0/20"}},
        {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {},
                                                 "text/plain": "interactive(children=(SelectionSlider(...),))"}},
        {"output_type": "display_data", "data": {"text/html": "<progress value='30' max='30'></progress>"}},
        {"output_type": "display_data", "data": {"text/html": "<progress value='5' max='30'></progress>"}},
        {"output_type": "display_data", "data": {"text/html": "<td>No log</td><td>7.2</td>"}},
    ]
    noise = unexplained_noise(outputs)
    assert noise[:2] == ["x.py:3: FutureWarning: `is_gradient_checkpointing` is deprecated", "  warnings.warn("]
    assert noise[2].startswith("Loading weights") and "value='5'" in noise[3] and "No log" in noise[4]
    assert len(noise) == 5


def test_the_course_has_its_six_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS + KOREAN, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code cells"
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("path", NOTEBOOKS + KOREAN, ids=lambda p: p.relative_to(ROOT / "notebooks").as_posix())
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    edition = path.parent.relative_to(ROOT).as_posix()
    nb = execute(path, ROOT / "build" / "test-notebooks" / edition, append=[TOKEN_IN_NAMESPACE])
    *cells, look = [c for c in nb.cells if c.cell_type == "code"]
    assert look.outputs[0]["text"].strip() == "globals showing the token: []", "a notebook global holds the token"
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps(outputs, ensure_ascii=False)
    mode_line = "스모크 모드" if edition.endswith("/ko") else "Smoke mode"
    assert mode_line in text, "the one visible mode line is missing (or not in the notebook's language)"
    # The solution cells answer every exercise: a check that says "not yet" there is a broken check.
    lines = [line for o in outputs for line in o.get("text", "").splitlines()]
    rejected = [line for line in lines if "❌" in line]
    assert not rejected, f"an exercise check rejected its solution: {rejected}"
    assert sum("✅" in line for line in lines) >= 3, "the solutions of the three exercises were not checked"
    assert FAKE_TOKEN not in text, "the Hugging Face token leaked into an output"
    noise = unexplained_noise(outputs)
    assert not noise, f"warnings or progress bars the lesson does not explain: {noise}"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot was shown"
    saved = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()] if (tmp_path / "outputs").exists() else []
    for p in saved:
        assert FAKE_TOKEN.encode() not in p.read_bytes(), f"the token was written to {p}"
