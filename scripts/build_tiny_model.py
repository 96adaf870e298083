"""Build the tiny Gemma that smoke mode trains, and write it to data/tiny_gemma (committed, a few MB).

Usage: python scripts/build_tiny_model.py           (rebuild data/tiny_gemma; a few minutes on two CPU cores)
       python scripts/build_tiny_model.py --check   (rebuild in a scratch folder; exit 1 unless every file is the same)
The recipe (helpers/loading.py: TINY_SHAPE, TINY_VOCAB, TINY_WORDS, TINY_PRETRAIN, the samples' hashes) is stored
beside the weights as course_recipe.json; loading.tiny_gemma() uses the folder only while that recipe is today's.
Rebuild and commit it whenever the samples or the recipe change (tests/test_loading.py says so).
"""
import hashlib
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

from helpers import loading

TARGET = Path(__file__).resolve().parent.parent / "data" / loading.TINY_FOLDER
BUILT_WITH = "built_with.json"  # how and where it was built: not part of the recipe, not compared


def digests(folder: Path) -> dict[str, str]:
    """Return each file's SHA-256 in folder, except the build notes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and p.name != BUILT_WITH}


def main(check: bool) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        folder = loading.build_tiny(Path(scratch) / loading.TINY_FOLDER, seed=0)
        seconds = time.perf_counter() - start
        print(f"built in {seconds:.0f} s")
        if check:
            ours, committed = digests(folder), digests(TARGET)
            differ = sorted(n for n in ours.keys() | committed.keys() if ours.get(n) != committed.get(n))
            print("identical to data/tiny_gemma" if not differ else f"differs from data/tiny_gemma: {differ}")
            return 1 if differ else 0
        (folder / BUILT_WITH).write_text(json.dumps({
            "seconds": round(seconds), "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
        }, indent=1) + "\n")
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.copytree(folder, TARGET)
    size = sum(p.stat().st_size for p in TARGET.iterdir())
    print(f"wrote {TARGET} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
