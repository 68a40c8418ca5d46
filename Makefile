# Every target builds the same environment: .venv with the package and all
# extras installed under the exact versions in constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench docs clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
		($(PYTHON) -m pip install --user virtualenv && $(PYTHON) -m virtualenv $(VENV))
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all]"
	@touch $(STAMP)

# The lab runs about 2x faster on JAX: the demo uses it when it is installed
# (and KERAS_BACKEND is not set); the output says which backend ran.
# `make demo DEMO_ARGS="--seed-offset 100"` reruns it with other seeds.
DEMO_ARGS ?=
demo: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-$$($(BIN)/python -c "import jax" 2>/dev/null \
		&& echo jax || echo tensorflow)} $(BIN)/keras-tricks demo $(DEMO_ARGS)

# Lint and type-check, the whole suite on TensorFlow (it also builds the wheel,
# the sdist and the docs site), the docstring examples, then the tests marked
# `jax` on JAX.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy keras_tricks
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --doctest-modules keras_tricks
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m jax

FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package: installed
# here when missing and we are root; otherwise the benchmarks use digits and
# say so in their titles.
bench: $(STAMP)
	@test -e $(FASHION_MNIST) || \
		{ test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
		  { apt-get install -y -q dataset-fashion-mnist || \
		    { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; \
		  } >/dev/null; } || \
		echo "Fashion-MNIST is not installed and cannot be (needs root and" \
		     "apt-get: apt-get install dataset-fashion-mnist); using digits."
	$(BIN)/python -m benchmarks

# The site's "Benchmark results" page includes benchmarks/RESULTS.md as it is.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site build dist .mypy_cache
