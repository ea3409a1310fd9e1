# Two commands from a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mixedfx fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy

test: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	OPENBLAS_NUM_THREADS=2 $(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]' || true
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
