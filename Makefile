# Two commands for a newcomer: `make demo` and `make test`. Each sets itself up from a bare clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo quickstart test lint bench clean

$(BIN)/mimo: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(BIN)/mimo

setup: $(BIN)/mimo

demo: setup
	$(BIN)/mimo demo --overwrite

quickstart: setup
	$(BIN)/python examples/quickstart.py

test: setup
	bash scripts/ci-browser-setup.sh $(VENV)
	$(BIN)/ruff check --no-cache src tests benchmarks examples scripts
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/bench_model.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
