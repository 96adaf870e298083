"""The code and the notebooks follow the team's ruff rules ([tool.ruff] in pyproject.toml)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    """The ruff command of this environment (requirements-dev.txt pins it)."""
    beside_python = Path(sys.executable).with_name("ruff")
    found = str(beside_python) if beside_python.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: pip install -r requirements-dev.txt")
    return [found]


def test_ruff_finds_nothing():
    result = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_checks_the_notebooks(tmp_path):
    # A notebook with an unused import must fail: proves the notebooks are not silently skipped.
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [{"cell_type": "code", "execution_count": null, "id": "a", "metadata": {}, '
                   '"outputs": [], "source": ["import os\\n"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    result = subprocess.run([*_ruff(), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "F401" in result.stdout, result.stdout + result.stderr
