# Set-up is part of every target: the venv is (re)built from requirements.txt when missing or stale.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
WORKDIR ?= runs/demo
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test test-fast inspect bench study study-all clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

## The main job: train on synthetic data with learnable anchors, print anchors and AP50,
## write $(WORKDIR)/anchors.png. Resumes if $(WORKDIR) holds checkpoints.
demo: $(STAMP)
	$(VENV)/bin/python -m anchor_jax.main --config=configs/synthetic.py --workdir=$(WORKDIR)

## Lint, then all tests (CPU, 4 fake devices for the pmap tests), in TEST_WORKERS processes
## (pytest-xdist; a test file stays in one process, so its module fixtures are built once).
TEST_WORKERS ?= 2
PYTEST := $(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PYTEST)

## Lint, then the tests without the end-to-end training runs.
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PYTEST) -m "not slow"

## Figures and fit tables of a training run (anchors over the box density, trajectories, usage).
inspect: $(STAMP)
	$(VENV)/bin/python -m anchor_jax.inspect --workdir=$(WORKDIR)

## The CPU-scale study of experiments/RESULTS.md (~1.5 h on 2 cores, two runs at a time):
## Table 1 (three inits x Baseline/Opt, plus the AutoAnchor and calc_anchors Baseline rows)
## on the synthetic presets mixed, tiny (one class) and wide, SEEDS seeds; the paper's
## claims per preset; the recipe's targets. One folder per preset: sweeps on one preset
## share runs (same name = same run). Re-running skips finished runs and resumes the rest.
## `make study-all` adds Table 6 on mixed and tiny, Figure 4 and the T0 x lambda0 grid on
## mixed (~230 runs at SEEDS=5: ~4.8 h).
STUDY ?= runs/study
SEEDS ?= 3
PARALLEL ?= 2
RUN := $(VENV)/bin/python -m experiments.run
CLAIMS := $(VENV)/bin/python -m experiments.claims
SWEEPS := experiments/sweeps
study: $(STAMP)
	for p in mixed tiny wide; do \
	  $(RUN) $(SWEEPS)/table1.py:cpu_$$p --workdir_root=$(STUDY)/$$p --seeds=$(SEEDS) \
	      --parallel=$(PARALLEL) || exit 1; done
	for p in mixed tiny wide; do \
	  $(CLAIMS) $(SWEEPS)/table1.py:cpu_$$p --workdir_root=$(STUDY)/$$p --seeds=$(SEEDS) \
	      || exit 1; done
	$(VENV)/bin/python experiments/benchmarks/check_targets.py --study_root=$(STUDY)

study-all: study
	for p in mixed tiny; do \
	  $(RUN) $(SWEEPS)/table6.py:cpu_$$p --workdir_root=$(STUDY)/$$p --seeds=$(SEEDS) \
	      --parallel=$(PARALLEL) || exit 1; done
	$(RUN) $(SWEEPS)/fig4.py:cpu_mixed --workdir_root=$(STUDY)/mixed --seeds=$(SEEDS) \
	    --parallel=$(PARALLEL)
	$(RUN) $(SWEEPS)/warmup_grid.py:cpu_mixed --workdir_root=$(STUDY)/mixed --seeds=$(SEEDS) \
	    --parallel=$(PARALLEL)

bench: $(STAMP)
	$(VENV)/bin/python experiments/benchmarks/bench_loss.py
	$(VENV)/bin/python experiments/benchmarks/bench_train.py
	$(VENV)/bin/python experiments/benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) runs .pytest_cache
