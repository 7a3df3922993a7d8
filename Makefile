# Set-up is part of every target: the venv is (re)built from requirements.txt when missing or stale.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
WORKDIR ?= runs/demo
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test test-fast inspect bench study clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

## The main job: train on synthetic data with learnable anchors, print anchors and AP50,
## write $(WORKDIR)/anchors.png. Resumes if $(WORKDIR) holds checkpoints.
demo: $(STAMP)
	$(VENV)/bin/python -m anchor_jax.main --config=configs/synthetic.py --workdir=$(WORKDIR)

## Lint, then all tests (CPU, 4 fake devices for the pmap tests).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

## Lint, then the tests without the end-to-end training runs.
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -m "not slow"

## Figures and fit tables of a training run (anchors over the box density, trajectories, usage).
inspect: $(STAMP)
	$(VENV)/bin/python -m anchor_jax.inspect --workdir=$(WORKDIR)

## The CPU-scale study of experiments/RESULTS.md (~2 h on 2 cores): Table 1 on the synthetic
## `mixed` preset, Table 6 on `mixed`, an anchor-lr check, Table 1 on `wide`, a no-soft-warm-up
## check, 3 seeds each, and the check of the paper's claims. Re-running skips finished runs and resumes the rest.
STUDY ?= runs/study
RUN := $(VENV)/bin/python -m experiments.run
CLAIMS := $(VENV)/bin/python -m experiments.claims
study: $(STAMP)
	$(RUN) experiments/sweeps/table1.py:cpu --workdir_root=$(STUDY)/t1_mixed --seeds 3 --parallel 2
	$(CLAIMS) experiments/sweeps/table1.py:cpu --workdir_root=$(STUDY)/t1_mixed --seeds 3
	$(RUN) experiments/sweeps/table6.py:cpu_mixed --workdir_root=$(STUDY)/t6_mixed --seeds 3 --parallel 2
	$(RUN) experiments/sweeps/table1.py:cpu --workdir_root=$(STUDY)/t1_mixed_lr1 --seeds 3 --parallel 2 \
	    --only kmeans_opt --override=--config.anchors.lr_mult=1
	$(CLAIMS) experiments/sweeps/table1.py:cpu --workdir_root=$(STUDY)/t1_mixed_lr1 --seeds 3
	$(RUN) experiments/sweeps/table1.py:cpu_wide --workdir_root=$(STUDY)/t1_wide --seeds 3 --parallel 2
	$(CLAIMS) experiments/sweeps/table1.py:cpu_wide --workdir_root=$(STUDY)/t1_wide --seeds 3
	$(RUN) experiments/sweeps/table1.py:cpu_wide --workdir_root=$(STUDY)/t1_wide_nosoft --seeds 3 --parallel 2 \
	    --only kmeans_opt --override=--config.anchors.temperature=0

bench: $(STAMP)
	$(VENV)/bin/python experiments/benchmarks/bench_loss.py
	$(VENV)/bin/python experiments/benchmarks/bench_train.py
	$(VENV)/bin/python experiments/benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) runs .pytest_cache
