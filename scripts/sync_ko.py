"""Keep the Korean edition (notebooks/ko/) in step with the English notebooks: same cells, same code.

Each Korean notebook holds the English notebook's cells in the same order with the same ids; its code cells are
the English ones, its markdown cells (except the badges, which scripts/sync_badges.py writes) are Korean. This
script copies the English code cells and metadata into each Korean twin (but the badges and setup cells, which
name the edition's own paths and scripts/sync_badges.py writes), keeps the Korean markdown by cell id,
and lists the markdown cells that still need a translation.
Usage: python scripts/sync_ko.py           # write
       python scripts/sync_ko.py --check   # exit 1 and list what is out of date
"""

import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Cells that scripts/sync_badges.py writes for each edition (they name the edition's own paths).
OWN = ("badges", "setup")


def synced(en: dict, ko: dict) -> tuple[dict, list[str]]:
    """Return the Korean notebook rebuilt on the English one's cells, and the markdown ids that lack Korean."""
    korean = {c["id"]: c for c in ko["cells"] if c["cell_type"] == "markdown" or c["id"] in OWN}
    out, untranslated = copy.deepcopy(en), []
    for cell in out["cells"]:
        if cell["id"] in OWN and cell["id"] in korean:
            cell["source"] = korean[cell["id"]]["source"]
        elif cell["cell_type"] == "markdown":
            if cell["id"] in korean:
                cell["source"] = korean[cell["id"]]["source"]
            else:
                untranslated.append(cell["id"])
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return out, untranslated


def dump(nb: dict) -> str:
    """The notebook as the course commits it."""
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main(check: bool) -> int:
    """Sync (or check) every Korean twin; return the exit status."""
    problems = []
    for ko_path in sorted((ROOT / "notebooks" / "ko").glob("[0-9][0-9]_*.ipynb")):
        en_path = ROOT / "notebooks" / ko_path.name
        new, untranslated = synced(json.loads(en_path.read_text()), json.loads(ko_path.read_text()))
        if untranslated:
            problems.append(f"{ko_path.relative_to(ROOT)}: translate the markdown cells {untranslated}")
        if dump(new) != ko_path.read_text():
            if check:
                problems.append(f"{ko_path.relative_to(ROOT)}: out of step with {en_path.relative_to(ROOT)}")
            else:
                ko_path.write_text(dump(new))
    print("\n".join(problems) or "the Korean edition is in step")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
