"""The Korean edition cannot drift: the same cells and code as the English notebooks, Korean prose in every cell."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HANGUL = re.compile("[\uac00-\ud7a3]")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("en", ENGLISH, ids=lambda p: p.stem)
def test_every_notebook_has_a_korean_twin_with_the_same_code(en):
    ko = ROOT / "notebooks" / "ko" / en.name
    assert ko.is_file(), f"notebooks/ko/{en.name} is missing"
    en_cells, ko_cells = cells(en), cells(ko)
    assert [(c["id"], c["cell_type"]) for c in ko_cells] == [(c["id"], c["cell_type"]) for c in en_cells]
    for a, b in zip(en_cells, ko_cells):
        if a["cell_type"] == "code":
            # only the setup cell names a path of its own edition (sync_badges writes it)
            same = "".join(b["source"]).replace("notebooks/ko/", "notebooks/") == "".join(a["source"])
            assert same, f"{ko.name}: code cell {b['id']} differs"
            assert not b["outputs"] and b["execution_count"] is None


@pytest.mark.parametrize("en", ENGLISH, ids=lambda p: p.stem)
def test_every_korean_markdown_cell_is_korean(en):
    ko = ROOT / "notebooks" / "ko" / en.name
    english = [c["id"] for c in cells(ko) if c["cell_type"] == "markdown" and c["id"] != "badges"
               and not HANGUL.search("".join(c["source"]))]
    assert english == [], f"{ko.name}: markdown cells without Korean: {english}"


def test_the_sync_script_finds_a_drifted_code_cell():
    import sync_ko  # scripts/ is on sys.path (conftest.py)

    en = json.loads(ENGLISH[-1].read_text(encoding="utf-8"))
    ko = json.loads((ROOT / "notebooks" / "ko" / ENGLISH[-1].name).read_text(encoding="utf-8"))
    code = next(c for c in ko["cells"] if c["cell_type"] == "code" and c["id"] != "setup")
    code["source"] = ["print('drifted')\n"]
    new_md = {"cell_type": "markdown", "id": "new-cell", "metadata": {}, "source": ["A new English cell."]}
    en["cells"].append(new_md)
    fixed, untranslated = sync_ko.synced(en, ko)
    assert untranslated == ["new-cell"]
    fixed_code = next(c for c in fixed["cells"] if c["id"] == code["id"])
    assert fixed_code["source"] != ["print('drifted')\n"]


def test_the_korean_edition_is_in_step():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_ko.py"), "--check"],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
