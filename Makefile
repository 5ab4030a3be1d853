# Owl-VL: `make demo` and `make test` set up .venv when it is missing, then run.
# TORCH_SPEC pins the CPU wheel by default; GPU users override it, e.g.
#   make TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124" setup
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/owl-data build --out $(DEMO_OUT)/corpus
	$(VENV)/bin/owl-data stats $(DEMO_OUT)/corpus
	$(VENV)/bin/owl-data validate $(DEMO_OUT)/corpus
	$(VENV)/bin/owl-train init-tiny $(DEMO_OUT)/tiny-model

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/build_bench.py
	$(PY) benchmarks/rope_bench.py
	$(PY) benchmarks/model_bench.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
