# `make figures` and `make test` set up .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
# trained models are cached here and shared by all notebooks (and by `make test`)
export OTNSD_RUNS ?= $(CURDIR)/runs

.PHONY: help venv figures test test-browser test-fast test-other-cpu notebooks bench gpu-check clean

help:
	@echo "make figures    run notebooks 01-08 headlessly (papermill), refreshing them and figures/"
	@echo "make test       the whole test suite, notebooks included (pytest + nbval)"
	@echo "make test-fast  the test suite without the notebook runs"
	@echo "make test-browser  the notebooks in JupyterLab in headless chromium: figures render, set-up cells run"
	@echo "make test-other-cpu  the notebook regression re-trained under two proxies for another CPU (~40 min)"
	@echo "make notebooks  the same as make figures"
	@echo "make bench      speed benchmarks (benchmarks/)"
	@echo "make gpu-check  on a CUDA machine: benchmarks, CUDA tests, goals (<= 8 min; report in gpu_check/)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# Each notebook is executed in place: its stored outputs (checked by `make test`) and the files
# in figures/ are refreshed together. Trained models are reused from $(OTNSD_RUNS).
figures: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(VENV)/bin/papermill --log-level WARNING $$nb $$nb || exit 1; \
	done
	@echo "figures written to $${OTNSD_FIGURES:-figures/}"

# Notebook checks write their figures to a scratch folder, so the committed figures stay as they are.
test: $(STAMP)
	HF_HUB_OFFLINE=1 OTNSD_FIGURES=$$(mktemp -d) $(PY) -m pytest tests \
		--durations=25 --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

# JupyterLab in a real browser (tests/browser/jupyterlab_check.py). Playwright's own browser download
# needs the internet, so it drives Debian's chromium, installed here when missing.
test-browser: $(STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)
	@$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install --quiet playwright
	$(PY) tests/browser/jupyterlab_check.py

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests -m "not notebooks"

# The stored records must hold when every model is retrained with other float kernels: A, PyTorch's
# kernels without AVX2; B, MKL's kernels of another instruction set on one thread (README, Tests).
test-other-cpu: $(STAMP)
	HF_HUB_OFFLINE=1 ATEN_CPU_CAPABILITY=default OTNSD_RUNS=$$(mktemp -d) OTNSD_EXECUTED=$${OTNSD_EXECUTED:-$$(mktemp -d)}/A \
		$(PY) -m pytest tests/test_notebook_records.py -k reproduce
	HF_HUB_OFFLINE=1 MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 OTNSD_RUNS=$$(mktemp -d) OTNSD_EXECUTED=$${OTNSD_EXECUTED:-$$(mktemp -d)}/B \
		$(PY) -m pytest tests/test_notebook_records.py -k reproduce

notebooks: figures

bench: $(STAMP)
	$(PY) benchmarks/bench_ot.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_cost.py

# On a CUDA machine: versions, bench_ot/bench_train on the GPU, the CUDA-only tests, the goals table.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --out $${GPU_CHECK_OUT:-gpu_check}

clean:
	rm -rf .pytest_cache
