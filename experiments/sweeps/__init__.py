r"""Sweep files: each reproduces one table or figure of the paper.

Run one with ``python -m experiments.run experiments/sweeps/<file>.py[:arg] --workdir_root=DIR``
(see ``experiments/run.py``). Files whose name starts with ``_`` are helpers, not sweeps.

Schema
------
A sweep file defines ``VARIANTS`` (the ``arg`` values it accepts, the first being the
default) and ``get_sweep(arg: str = VARIANTS[0]) -> dict`` returning::

  {
    "title":  str,                  # heading of results.md (optional)
    "config": "configs/synthetic.py:study",   # config spec of every run (path[:arg]),
                                    # relative to the repository root
    "base":   [str, ...],           # overrides applied to every run, first
    "runs": [                       # one entry per training run (x seeds)
      {"name": str,                 # unique; [A-Za-z0-9_.+-]; the run's folder DIR/<name>
       "overrides": [str, ...],     # applied after "base"
       "row": str, "col": str,      # its cell in the table (optional: a run without them
                                    # is only listed under "Runs", e.g. a reference)
       "config": str},              # optional: this run's own config spec
    ],
    "table": {
      "row_header": str,            # header of the row-label column, e.g. "Init"
      "rows": [str, ...],           # row labels, in display order
      "cols": [str, ...],           # column labels, in display order
      "metrics": [str, ...],        # optional, default ["AP50"]; "AP" (COCO) is added
                                    # automatically when runs report it
      "diff": {...},                # optional, how the paper pairs Opt with Baseline:
        # {"along": "cols", "base": "Baseline"}: per row, each other column minus the
        #     "Baseline" column, as extra columns (Table 1, Figure 4);
        # {"along": "rows", "base": "Baseline"}: each cell minus the "Baseline" row's cell
        #     of its column, shown as "(+x.xx)" (Table 6);
        # {"run": "<run name>"}: each cell minus that (reference) run (warm-up grid).
      "paper": {metric: {row: {col: float}}},   # optional: the paper's numbers (%),
                                    # printed under the results in the same layout
    },
  }

Override strings are the training CLI's: ``"--config.anchors.optimize=False"``. The
runner adds ``--config.seed=<k>`` itself, so overrides must not set ``seed``. Each
(row, col) holds at most one run. Differences are paired by seed (the same seed gives
the same data and network initialisation), then averaged.

Variants: ``cpu`` runs the CPU-scale ``configs/synthetic.py:study`` on the synthetic
data (``cpu_<preset>`` picks ``dataset.preset`` = tiny | wide | mixed); ``paper`` uses
the paper's recipes (``configs/voc_yolov2.py`` etc.) and is meant for GPUs.
"""
