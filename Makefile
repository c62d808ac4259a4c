# `make figures` and `make test` set up .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
EXECUTED ?= runs/executed
# trained models are cached here and shared by all notebooks (and by `make test`)
export OTNSD_RUNS ?= $(CURDIR)/runs

.PHONY: help venv figures test test-fast notebooks bench clean

help:
	@echo "make figures    run every notebook headlessly (papermill); figures and tables go to figures/"
	@echo "make test       the whole test suite, notebooks included (pytest + nbval)"
	@echo "make test-fast  the test suite without the notebooks"
	@echo "make notebooks  re-run the notebooks in place, refreshing their stored outputs"
	@echo "make bench      speed benchmarks (benchmarks/)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

figures: $(STAMP)
	@mkdir -p $(EXECUTED)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(VENV)/bin/papermill --log-level WARNING $$nb $(EXECUTED)/$$(basename $$nb) || exit 1; \
	done
	@echo "figures written to $${OTNSD_FIGURES:-figures/}"

# Notebook checks write their figures to a scratch folder, so the committed figures stay as they are.
test: $(STAMP)
	HF_HUB_OFFLINE=1 OTNSD_FIGURES=$$(mktemp -d) $(PY) -m pytest tests \
		--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests

notebooks: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(VENV)/bin/papermill --log-level WARNING $$nb $$nb || exit 1; \
	done

bench: $(STAMP)
	$(PY) benchmarks/bench_ot.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf $(EXECUTED) .pytest_cache
