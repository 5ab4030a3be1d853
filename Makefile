# Owl-VL: `make demo` and `make test` set up .venv when it is missing, then run.
# TORCH_SPEC pins the CPU wheel by default; GPU users override it, e.g.
#   make TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124" setup
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=
# tiny-model training for the demo: small images (40 tokens for a 512x256 frame), the ViT trains, no workers
DEMO_TRAIN ?= --set batch_size=8 --set grad_accum=1 --set max_pixels=31360 --set max_length=512 \
	--set num_workers=0 --set save_every=0 --set log_every=250 --set freeze_vision=false

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $@

setup: $(VENV)/.installed

# The demo draws DEMO_SCENES street frames (train:val), trains the tiny model's stage 1 for
# DEMO_STEPS steps on a point-heavy mix (1:1:1:7; the paper's 5:1:2:2 mix is written too, for
# comparison) and shows two points of one val image answered beside their true categories.
DEMO_SCENES ?= 200:20
DEMO_STEPS ?= 1500
demo: setup
	@mkdir -p $(DEMO_OUT) && date +%s > $(DEMO_OUT)/.started
	$(VENV)/bin/owl-data build --out $(DEMO_OUT)/corpus --scenes $(DEMO_SCENES) --workers 2
	$(VENV)/bin/owl-data stats $(DEMO_OUT)/corpus
	$(VENV)/bin/owl-data validate $(DEMO_OUT)/corpus
	$(VENV)/bin/owl-data show $(DEMO_OUT)/corpus --out $(DEMO_OUT)/gallery --limit 60
	rm -rf $(DEMO_OUT)/tiny-model
	$(VENV)/bin/owl-train init-tiny $(DEMO_OUT)/tiny-model
	$(VENV)/bin/owl-data mix $(DEMO_OUT)/corpus --ratio 5:1:2:2 --num-samples 2400 --out $(DEMO_OUT)/mix-5122
	$(VENV)/bin/owl-data mix $(DEMO_OUT)/corpus --ratio 1:1:1:7 --num-samples $$(( $(DEMO_STEPS) * 8 )) --out $(DEMO_OUT)/mix
	rm -rf $(DEMO_OUT)/stage1 $(DEMO_OUT)/stage2
	OMP_NUM_THREADS=1 $(VENV)/bin/owl-train stage1 --config pipelines/stage1.yaml --model $(DEMO_OUT)/tiny-model \
		--corpus $(DEMO_OUT)/corpus --mix $(DEMO_OUT)/mix --out $(DEMO_OUT)/stage1 --max-steps $(DEMO_STEPS) --set lr=3e-3 $(DEMO_TRAIN)
	OMP_NUM_THREADS=1 $(VENV)/bin/owl-train stage2 --config pipelines/stage2.yaml --init $(DEMO_OUT)/stage1 \
		--corpus $(DEMO_OUT)/corpus --out $(DEMO_OUT)/stage2 --max-steps 60 --set lr=1e-2 $(DEMO_TRAIN)
	OMP_NUM_THREADS=1 $(VENV)/bin/owl-train eval --model $(DEMO_OUT)/stage2 $(DEMO_OUT)/corpus --tasks point_vqa,vqa,caption,grounding \
		--limit 48 --max-new-tokens 32 --json $(DEMO_OUT)/eval.json
	@echo
	@echo "== Owl-VL demo: done in $$(( $$(date +%s) - $$(cat $(DEMO_OUT)/.started) )) s =="
	@echo "corpus   $(DEMO_OUT)/corpus     ($(DEMO_SCENES) drawn frames; owl-data stats/validate above)"
	@echo "gallery  $(DEMO_OUT)/gallery/index.html   (open it in a browser: images, points, boxes, texts)"
	@echo "model    $(DEMO_OUT)/stage2     (tiny Owl-VL after stage 1 and stage-2 P-tuning); eval in $(DEMO_OUT)/eval.json"
	@echo "two points of one val street image, picked from its annotations, answered with no question:"
	@OMP_NUM_THREADS=1 $(VENV)/bin/owl-train infer --model $(DEMO_OUT)/stage2 --corpus $(DEMO_OUT)/corpus --pick 2 --max-new-tokens 32

test: setup
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/build_bench.py
	$(PY) benchmarks/rope_bench.py
	$(PY) benchmarks/model_bench.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
