"""Figure 4: number of anchors A, Baseline (k-means) vs Opt (identical).

  python -m experiments.run experiments/sweeps/fig4.py:cpu --workdir_root=runs/study/mixed

Variants: ``cpu`` (synthetic ``mixed``), ``cpu_<preset>``: A = 3, 5, 7, 9; ``paper`` = VOC07
at 416 px: A = 3..9, as the paper's figure. k-means here is always IoU k-means of the
training boxes (darknet's published VOC set has 5 anchors only). The A = 5 runs are named
as in Table 1 (``kmeans_baseline``, ``identical_opt``), so they are shared with it.
"""
from experiments.sweeps import _common as common

VARIANTS = common.cpu_variants() + ("paper",)
CPU_NUM_ANCHORS = (3, 5, 7, 9)
PAPER_NUM_ANCHORS = tuple(range(3, 10))
METHODS = {"Baseline (k-means)": ("kmeans", "baseline", list(common.BASELINE)),
           "Opt (identical)": ("identical", "opt", common.opt())}


def get_sweep(arg: str = "cpu") -> dict:
  config, base, where = common.cpu_or_voc(arg, VARIANTS)
  counts = PAPER_NUM_ANCHORS if arg == "paper" else CPU_NUM_ANCHORS
  runs = []
  for num in counts:
    for label, (init, method, overrides) in METHODS.items():
      runs.append({"name": common.run_name(init, method, num_anchors=num),
                   "overrides": [f"--config.anchors.num={num}", common.init(init), *overrides],
                   "row": f"A={num}", "col": label})
  table = {"row_header": "Anchors", "rows": [f"A={n}" for n in counts],
           "cols": list(METHODS), "diff": {"along": "cols", "base": "Baseline (k-means)"}}
  return {"title": f"Figure 4: number of anchors ({where})",
          "config": config, "base": base, "runs": runs, "table": table}
