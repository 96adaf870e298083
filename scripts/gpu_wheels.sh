#!/usr/bin/env bash
# Download into .whl/ (ignored by git) the wheels that scripts/gpu_check.py needs on the lent GPU machine, which has
# Python 3.12, torch 2.11 (CUDA 13), peft, accelerate, numpy, pandas, pyarrow, matplotlib... but not the rest of the
# course's pins and reaches no package registry. Every wheel is for CPython 3.12 on manylinux x86_64 (or pure
# Python), at the course's pins (requirements.txt) or, for what the pins pull in, the versions this repository's
# virtual environment was tested with. bitsandbytes' 43 MB wheel holds a library for every CUDA, ROCm and XPU
# version: it is rewritten with only its CPU and CUDA 13.0 libraries (torch 2.11+cu130 loads the latter).
# Everything carried to the machine (the working tree and .whl/) must fit 64 MiB: the script prints the total.
# Usage: scripts/gpu_wheels.sh   (PYTHON=... to choose the interpreter whose pip downloads; needs PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DEST=.whl
rm -rf "$DEST" && mkdir -p "$DEST"

# What the GPU machine lacks (its package list: /work/.library/device/KINDS.md), each with its Requires-Dist
# followed to what the machine has. Not carried: debugpy (ipykernel runs without it; 4 MB), pydantic (typer's,
# already there), tzdata (python-dateutil's, already there).
WHEELS=(
  # the course's pins that the machine lacks or has at another version (the setup cell refuses other versions)
  bitsandbytes==0.50.2 trl==1.16.0 datasets==5.2.0 transformers==5.24.0 tokenizers==0.23.3 peft==0.21.2
  # datasets' and rouge-score's own needs
  dill==0.4.1 multiprocess==0.70.19 nltk==3.10.4 defusedxml==0.7.1
  # nbclient and a Python kernel for it
  nbclient==0.11.0 nbformat==5.11.1 ipykernel==6.31.0 jupyter-client==8.10.0 jupyter-core==5.9.1
  traitlets==5.16.1 pyzmq==27.3.0 tornado==6.6.1 comm==0.2.3 platformdirs==4.14.9 nest-asyncio==1.6.0
  ipython==9.19.1 ipython-pygments-lexers==1.1.1 matplotlib-inline==0.2.2 jedi==0.20.1 parso==0.8.7
  prompt-toolkit==3.0.53 wcwidth==0.9.5 pexpect==4.9.0 ptyprocess==0.7.0 stack-data==0.6.3 executing==2.3.0
  asttokens==3.0.2 pure-eval==0.2.4 fastjsonschema==2.22.3 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  referencing==0.37.0 rpds-py==2026.9.1
)
# pip matches manylinux_2_N exactly: name every N the wheels above use.
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_26_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$DEST" "${WHEELS[@]}"
# rouge-score 0.1.2 is published as a source archive only: build its (pure Python) wheel here.
"$PYTHON" -m pip wheel -q --no-deps -w "$DEST" rouge-score==0.1.2
# The course itself as a wheel: the setup cell's check wants the distribution qlora-course-helpers installed (the
# check puts the working tree first on PYTHONPATH, so its helpers/ is what runs).
"$PYTHON" -m pip wheel -q --no-deps -w "$DEST" .

# bitsandbytes without the libraries of other CUDA, ROCm and XPU versions; RECORD lists exactly what is left.
"$PYTHON" - "$DEST"/bitsandbytes-0.50.2-*.whl <<'EOF'
import sys
import zipfile
from pathlib import Path

path = Path(sys.argv[1])
keep = {"bitsandbytes/libbitsandbytes_cpu.so", "bitsandbytes/libbitsandbytes_cuda130.so"}
with zipfile.ZipFile(path) as src:
    names = [n for n in src.namelist() if not (n.startswith("bitsandbytes/libbitsandbytes_") and n not in keep)]
    assert keep <= set(names), f"{path.name} lacks {keep - set(names)}"
    slim = path.with_suffix(".slim")
    with zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in names:
            data = src.read(name)
            if name.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(line for line in lines if line.split(",", 1)[0] in names)
                        + "\n").encode()
            dst.writestr(src.getinfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
slim.replace(path)
print(f"{path.name}: kept {sorted(keep)}")
EOF

# Two versions of one package stop the whole install on the machine.
dupes=$(ls "$DEST" | sed -E 's/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dupes" ] || { echo "more than one wheel of: $dupes" >&2; exit 1; }
ls -l "$DEST" | awk 'NR > 1 {printf "%10d  %s\n", $5, $9}'
wheels=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb | tail -1 | cut -f1)
total=$((wheels + tree + ${untracked:-0}))
printf '%s wheels: %d B; tracked tree %d B; untracked, not ignored %d B; together %d B of 67108864 (64 MiB)\n' \
  "$(ls "$DEST" | wc -l)" "$wheels" "$tree" "${untracked:-0}" "$total"
[ "$total" -lt 67108864 ] || { echo "over the 64 MiB a device call carries" >&2; exit 1; }
