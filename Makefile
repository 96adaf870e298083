# Quick start: `make course` runs every notebook (smoke mode without a GPU), `make test` runs the tests,
# `make lab` opens the notebooks in JupyterLab. All build the virtual environment first; it is reused while the
# requirement files are unchanged.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Without a GPU, the CPU build of torch from PyTorch's CPU index; a bare `torch` from PyPI is the CUDA build
# (about 17 nvidia packages, several GB), which is what pip takes where that index cannot be reached.
TORCH_VERSION   ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# One notebook instead of all of them: `make course NB=03`.
NB ?=

.PHONY: course test lab venv clean gpu-check

venv: $(VENV)/.ready

$(VENV)/.ready: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1; then :; \
	elif $(PY) -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=10)" 2>/dev/null; then \
	  $(PY) -m pip install -q torch==$(TORCH_VERSION) --index-url $(TORCH_CPU_INDEX); \
	else \
	  echo "PyTorch's CPU index ($(TORCH_CPU_INDEX)) cannot be reached: installing torch $(TORCH_VERSION) from the default index instead (from PyPI, the CUDA build: several GB)."; \
	  $(PY) -m pip install -q torch==$(TORCH_VERSION); \
	fi
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

course: venv
	$(PY) scripts/run_course.py $(NB)

test: venv
	$(PY) -m pytest

# JupyterLab serves the whole repository (so the notebooks' links to docs/ open here too) and opens notebooks/.
# As root (a container, many VMs) Jupyter refuses to start without --allow-root: added when `id -u` is 0.
# More options: `make lab LAB_ARGS="--no-browser --port 8890"`.
LAB_ARGS ?=
lab: venv
	$(PY) -m jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks \
	  $$(test "$$(id -u)" = 0 && echo --allow-root) $(LAB_ARGS)

clean:
	rm -rf build $(VENV)

# Not in CI: apply small mistakes to helpers/ one at a time (in a scratch copy) and report which the tests miss.
.PHONY: mutants
mutants: venv
	$(PY) scripts/mutants.py

# The GPU path on a CUDA GPU in one call (scripts/gpu_check.py; the call for the lent GPU machine is in
# benchmarks/README.md): results in $(OUT) when set, else build/gpu_check/. `make gpu-check DRY_RUN=1` walks it on the
# CPU with the tiny model. No venv prerequisite: the GPU machine has no registry, it brings its packages as wheels.
CHECK_PY := $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	$(CHECK_PY) scripts/gpu_check.py $(if $(DRY_RUN),--dry-run)
