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

## All tests (CPU, 4 fake devices for the pmap tests).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

## Tests without the end-to-end training runs.
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow"

## Figures and fit tables of a training run (anchors over the box density, trajectories, usage).
inspect: $(STAMP)
	$(VENV)/bin/python -m anchor_jax.inspect --workdir=$(WORKDIR)

## The CPU-scale study of experiments/RESULTS.md (~35 + 20 + 35 min on 2 cores): Table 1 on the
## synthetic `mixed` preset, Table 6 (its warm-up rows), Table 1 on `wide`, each with 3 seeds,
## then the check of the paper's claims. Re-running skips finished runs and resumes the rest.
STUDY ?= runs/study
study: $(STAMP)
	$(VENV)/bin/python -m experiments.run experiments/sweeps/table1.py:cpu --workdir_root=$(STUDY)/t1_mixed --seeds 3 --parallel 2
	$(VENV)/bin/python -m experiments.claims experiments/sweeps/table1.py:cpu --workdir_root=$(STUDY)/t1_mixed
	$(VENV)/bin/python -m experiments.run experiments/sweeps/table6.py:cpu --workdir_root=$(STUDY)/t6_mixed --seeds 3 --parallel 2 --only mixed
	$(VENV)/bin/python -m experiments.run experiments/sweeps/table1.py:cpu_wide --workdir_root=$(STUDY)/t1_wide --seeds 3 --parallel 2
	$(VENV)/bin/python -m experiments.claims experiments/sweeps/table1.py:cpu_wide --workdir_root=$(STUDY)/t1_wide

bench: $(STAMP)
	$(VENV)/bin/python experiments/benchmarks/bench_loss.py
	$(VENV)/bin/python experiments/benchmarks/bench_train.py
	$(VENV)/bin/python experiments/benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) runs .pytest_cache
