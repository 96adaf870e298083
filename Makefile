# Quick start: `make course` runs every notebook (smoke mode without a GPU), `make test` runs the tests.
# Both build the virtual environment first; it is reused while the requirement files are unchanged.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Without a GPU, take the CPU build of torch (a bare `torch` would pull a CUDA build of several GB).
# Elsewhere override it, e.g. TORCH_CPU="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
TORCH_CPU ?= torch==2.13.0

.PHONY: course test venv clean

venv: $(VENV)/.ready

$(VENV)/.ready: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q $(TORCH_CPU); fi
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

course: venv
	$(PY) scripts/run_course.py

test: venv
	$(PY) -m pytest

clean:
	rm -rf build $(VENV)
