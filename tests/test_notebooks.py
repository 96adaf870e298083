"""Every notebook runs top to bottom in smoke mode, shows its plots and never leaks a token."""
import json
from pathlib import Path

import nbformat
import pytest

from run_course import execute

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FAKE_TOKEN = "hf_FAKE_not_a_real_token_notebooks_0123456789"


def test_the_course_has_its_five_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code cells"
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "smoke")
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    nb = execute(path, ROOT / "build" / "test-notebooks")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps(outputs)
    assert "Smoke mode" in text, "the one visible mode line is missing"
    assert FAKE_TOKEN not in text, "the Hugging Face token leaked into an output"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot was shown"
    saved = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()] if (tmp_path / "outputs").exists() else []
    for p in saved:
        assert FAKE_TOKEN.encode() not in p.read_bytes(), f"the token was written to {p}"
