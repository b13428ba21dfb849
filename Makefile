# synthrank developer entry points. `make run` and `make test` are the README's Quickstart.
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.synthrank-installed
# CPU wheel here; on a GPU machine, install the CUDA torch you want first and it is kept (the range admits it).
TORCH_SPEC  ?= torch==2.13.0
SHARED_DATA ?= $(abspath ../shared/data)
RUN_DIR     ?= runs/quickstart
PYTEST_ARGS ?=

.PHONY: setup run test unit integration lint typecheck clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

# The main job on embedded defaults: BM25 + evaluation on MedQuAD (1,000 judged questions).
run: setup
	$(VENV)/bin/synthrank evaluate --data $(SHARED_DATA)/medquad --split test_sample1000 --output $(RUN_DIR)/evaluation.json

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest tests -m "not integration" $(PYTEST_ARGS)

integration: setup
	SYNTHRANK_SHARED_DATA=$(SHARED_DATA) $(VENV)/bin/pytest integration -m integration $(PYTEST_ARGS)

# The whole suite: lint, types, unit and integration tests (what CI runs).
test: lint
	SYNTHRANK_SHARED_DATA=$(SHARED_DATA) $(VENV)/bin/pytest tests integration $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
