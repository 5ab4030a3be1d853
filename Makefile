# Owl-VL: `make demo` and `make test` set up .venv when it is missing, then run.
# TORCH_SPEC pins the CPU wheel by default; GPU users override it, e.g.
#   make TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124" setup
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=
# tiny-model training for the demo: small images (16 tokens), short runs, no workers
DEMO_TRAIN ?= --set batch_size=8 --set grad_accum=1 --set max_pixels=12544 --set max_length=512 \
	--set num_workers=0 --set save_every=0 --set log_every=50

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
	rm -rf $(DEMO_OUT)/tiny-model
	$(VENV)/bin/owl-train init-tiny $(DEMO_OUT)/tiny-model
	$(VENV)/bin/owl-data mix $(DEMO_OUT)/corpus --ratio 5:1:2:2 --num-samples 2400 --out $(DEMO_OUT)/mix
	rm -rf $(DEMO_OUT)/stage1 $(DEMO_OUT)/stage2
	$(VENV)/bin/owl-train stage1 --config pipelines/stage1.yaml --model $(DEMO_OUT)/tiny-model \
		--corpus $(DEMO_OUT)/corpus --mix $(DEMO_OUT)/mix --out $(DEMO_OUT)/stage1 --max-steps 300 --set lr=3e-3 $(DEMO_TRAIN)
	$(VENV)/bin/owl-train stage2 --config pipelines/stage2.yaml --init $(DEMO_OUT)/stage1 \
		--corpus $(DEMO_OUT)/corpus --out $(DEMO_OUT)/stage2 --max-steps 60 --set lr=1e-2 $(DEMO_TRAIN)
	$(PY) -c "from owl_train.stages.rows import corpus_rows; \
		corpus_rows('$(DEMO_OUT)/corpus', 'point_vqa', 'val', limit=1)[0]['image'].save('$(DEMO_OUT)/street.png')"
	$(VENV)/bin/owl-train infer --model $(DEMO_OUT)/stage2 --image $(DEMO_OUT)/street.png \
		--point 0.3,0.6 --point 0.75,0.55 --max-pixels 12544 --max-new-tokens 32
	$(VENV)/bin/owl-train eval --model $(DEMO_OUT)/stage2 $(DEMO_OUT)/corpus --limit 16 --max-pixels 12544 \
		--max-new-tokens 32

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/build_bench.py
	$(PY) benchmarks/rope_bench.py
	$(PY) benchmarks/model_bench.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
