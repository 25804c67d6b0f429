# DrNet, reproduced: everything runs inside ./.venv, built from python3 and the package index.
#
#   make book        set up, produce any missing cpu-profile results, build the HTML book
#   make test        set up, run the unit tests and `pytest --nbval` on the source notebooks
#   make reproduce   rerun experiments (always): PROFILE=cpu|paper EXPERIMENTS="mnist norb" SEEDS="0 1 2" WORKERS=1
#                    RESULTS_DIR=results
#   make lab         JupyterLab in the project's environment
#   make clean-book  remove _build/

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The torch build installed before the package. CI caches a CPU build of torch 2.13.0; set it
# empty (`make setup TORCH_SPEC=`) to let pip pick torch from the dependencies, or to other pip
# arguments, e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.13.0

PROFILE ?= cpu
EXPERIMENTS ?= mnist
SEEDS ?= 0 1 2
WORKERS ?= 1
RESULTS_DIR ?= results

# What `make book` produces when its results are missing (existing results are kept).
BOOK_PROFILE := cpu
BOOK_EXPERIMENTS := mnist norb suncg kth
BOOK_SEEDS := 0 1 2
# The NORB ablation grid (a shorter schedule per cell; see notebooks/02b_norb_grid.ipynb)
BOOK_GRID := adversarial_weight=0,0.0001,0.01,0.1 pose_dim=2,5,10
BOOK_GRID_SEEDS := 0 1 2

.PHONY: help setup book test reproduce lab clean-book

help:
	@echo "make book        set up .venv, run any missing $(BOOK_PROFILE)-profile experiment, build the book"
	@echo "make test        set up .venv, run pytest on tests/ and pytest --nbval on notebooks/"
	@echo "make reproduce   rerun: PROFILE=$(PROFILE) EXPERIMENTS=\"$(EXPERIMENTS)\" SEEDS=\"$(SEEDS)\""
	@echo "make lab         JupyterLab with the project's kernel"
	@echo "make setup       only create/update .venv (TORCH_SPEC=$(TORCH_SPEC))"
	@echo "make clean-book  remove _build/"

setup: $(STAMP)

# Reinstalls only when pyproject.toml changes; otherwise `make setup` is instant. The last step
# registers a kernel named python3 inside .venv, so papermill, nbval and the book run there.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
	  || { echo "Python >= 3.10 is required (PYTHON=$(PYTHON) is older)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH_SPEC)),$(BIN)/python -m pip install $(TORCH_SPEC))
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (drnet)"
	touch $@

book: setup
	$(BIN)/drnet reproduce --profile $(BOOK_PROFILE) --experiments $(BOOK_EXPERIMENTS) \
	  --seeds $(BOOK_SEEDS) --skip-existing
	$(BIN)/drnet reproduce --profile $(BOOK_PROFILE) --experiments norb_grid --seeds $(BOOK_GRID_SEEDS) \
	  --grid $(BOOK_GRID) --skip-existing
	$(BIN)/jupyter-book build --all -W --keep-going .
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: setup
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q --nbval --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks/

reproduce: setup
	$(BIN)/drnet reproduce --profile $(PROFILE) --experiments $(EXPERIMENTS) --seeds $(SEEDS) --force \
	  --workers $(WORKERS) --results-dir "$(RESULTS_DIR)"

lab: setup
	@if [ -x $(BIN)/jupyter-lab ]; then \
	  $(BIN)/jupyter lab notebooks/; \
	else \
	  echo "JupyterLab is not installed in $(VENV). Install it with:"; \
	  echo "  $(BIN)/python -m pip install jupyterlab"; \
	  echo "then run 'make lab' again."; \
	  exit 1; \
	fi

clean-book:
	rm -rf _build
