# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch shipped on this machine image, when there is one: it spares
# pip from resolving torch to a multi-GB CUDA build. Elsewhere pip picks torch itself.
TORCH_WHEEL ?= $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl))

export PREFECT_HOME ?= $(CURDIR)/.prefect
export DO_NOT_TRACK = 1
export PREFECT_SERVER_ANALYTICS_ENABLED = false

.PHONY: venv demo test bench clean

$(BIN)/labflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH_WHEEL),$(BIN)/pip install -q $(TORCH_WHEEL))
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/labflow

venv: $(BIN)/labflow

demo: venv
	$(BIN)/labflow run recipes/quickstart.yaml --out runs

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python benchmarks/loop_overhead.py

clean:
	rm -rf $(VENV) .prefect runs build *.egg-info
