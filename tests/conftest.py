import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# scripts/ is not a package: the notebook tests reuse the course runner from there.
sys.path.insert(0, str(ROOT / "scripts"))
