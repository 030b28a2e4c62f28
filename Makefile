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

# Two workers, each taking whole modules (a module's tests share its Ray cluster): most tests wait on
# processes, servers and clusters: one after another they left three quarters of the 2 cores idle.
# Then the tests marked serial, alone. Both parts run; either failing fails the target.
test: install
	status=0; \
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial" -ra --durations=25 || status=$$?; \
	$(BIN)/python -m pytest -m serial -ra || status=$$?; \
	exit $$status

.PHONY: install demo test
