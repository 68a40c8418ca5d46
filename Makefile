# Every target builds the same environment: .venv with the package and all
# extras installed under the exact versions in constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-compat compat-oldest compat-newest compat-jax bench docs clean

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
# `jax` on JAX. Each pytest runs one worker per core (pytest-xdist): a test
# keeps about one core busy, so on 2 cores the suite takes 7 minutes, not 10.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy keras_tricks
	$(BIN)/python -m pytest -n auto
	$(BIN)/python -m pytest -n auto --doctest-modules keras_tricks
	KERAS_BACKEND=jax $(BIN)/python -m pytest -n auto -m jax

# The support range, checked: the tests marked `compat` in three more
# environments under .venv-compat/, each with its own Python from pyenv.
#   oldest: Python 3.10, the floors of pyproject.toml (constraints-oldest.txt);
#   newest: Python 3.13, the newest versions the registry serves (no constraints);
#   jax:    Python 3.12, constraints.txt without TensorFlow, KERAS_BACKEND=jax
#           (every test marked `jax`, and TensorFlow must not be installed).
# The oldest and newest run the compat tests on TensorFlow, then those also
# marked `jax` on JAX. Set OLDEST_PYTHON, NEWEST_PYTHON or JAX_PYTHON to use
# another interpreter.
COMPAT := .venv-compat
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
find_python = $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python))),$(shell command -v python$(1) 2>/dev/null))
OLDEST_PYTHON ?= $(call find_python,3.10)
NEWEST_PYTHON ?= $(call find_python,3.13)
JAX_PYTHON ?= $(call find_python,3.12)
NO_TENSORFLOW := import importlib.util as u, sys; sys.exit(u.find_spec("tensorflow") and "TensorFlow is installed")
IS_VERSION = import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(v != "$(1)" and f"{sys.executable} is Python {v}, not $(1)")

# $(call compat_venv,name,python,version,variable): a fresh venv, or an error
# saying which Python is missing and how to provide it.
define compat_venv
	@test -n "$(2)" || { echo "make test-compat: no Python $(3) found for the" \
		"'$(1)' environment (looked in $(PYENV_ROOT)/versions and on PATH)." \
		"Install it with 'pyenv install $(3)' or set $(4)=/path/to/python$(3)." >&2; \
		exit 1; }
	@$(2) -c '$(call IS_VERSION,$(3))'
	$(2) -m venv --clear $(COMPAT)/$(1)
	$(COMPAT)/$(1)/bin/python -m pip install -q --upgrade pip
endef

test-compat: compat-oldest compat-newest compat-jax

$(COMPAT)/oldest/.installed: pyproject.toml constraints-oldest.txt
	$(call compat_venv,oldest,$(OLDEST_PYTHON),3.10,OLDEST_PYTHON)
	$(COMPAT)/oldest/bin/python -m pip install -q -c constraints-oldest.txt -e ".[all]"
	@touch $@

compat-oldest: $(COMPAT)/oldest/.installed
	$(COMPAT)/oldest/bin/python -m pip list | grep -iE '^(keras|tensorflow|jax|numpy|scipy) '
	$(COMPAT)/oldest/bin/python -m pytest -m compat
	KERAS_BACKEND=jax $(COMPAT)/oldest/bin/python -m pytest -m "compat and jax"

$(COMPAT)/newest/.created:
	$(call compat_venv,newest,$(NEWEST_PYTHON),3.13,NEWEST_PYTHON)
	@touch $@

# Upgraded on every run: the newest versions are whatever the registry serves.
compat-newest: $(COMPAT)/newest/.created
	$(COMPAT)/newest/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[all]"
	$(COMPAT)/newest/bin/python -m pip list | grep -iE '^(keras|tensorflow|jax|numpy|scipy) '
	$(COMPAT)/newest/bin/python -m pytest -m compat
	KERAS_BACKEND=jax $(COMPAT)/newest/bin/python -m pytest -m "compat and jax"

$(COMPAT)/jax/.installed: pyproject.toml constraints.txt
	$(call compat_venv,jax,$(JAX_PYTHON),3.12,JAX_PYTHON)
	$(COMPAT)/jax/bin/python -m pip install -q -c constraints.txt -e ".[jax,lab,tuner,dev]"
	@touch $@

compat-jax: $(COMPAT)/jax/.installed
	$(COMPAT)/jax/bin/python -c '$(NO_TENSORFLOW)'
	KERAS_BACKEND=jax $(COMPAT)/jax/bin/python -c "import keras_tricks"
	KERAS_BACKEND=jax $(COMPAT)/jax/bin/python -m pytest -m jax

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
	rm -rf $(VENV) $(COMPAT) site build dist .mypy_cache
