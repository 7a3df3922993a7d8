"""Figure 4: number of anchors A = 3..9, Baseline (k-means) vs Opt (identical).

  python -m experiments.run experiments/sweeps/fig4.py:cpu --workdir_root=runs/fig4

Variants: ``cpu`` (synthetic ``mixed``), ``cpu_<preset>``; ``paper`` = VOC07 at 416 px.
k-means here is always IoU k-means of the training boxes (darknet's published VOC
set has 5 anchors only).
"""
from experiments.sweeps import _common as common

VARIANTS = common.cpu_variants() + ("paper",)
NUM_ANCHORS = tuple(range(3, 10))
METHODS = {"Baseline (k-means)": ("kmeans", list(common.BASELINE)),
           "Opt (identical)": ("identical", common.opt())}


def get_sweep(arg: str = "cpu") -> dict:
  config, base, where = common.cpu_or_voc(arg, VARIANTS)
  runs = []
  for num in NUM_ANCHORS:
    for label, (init, overrides) in METHODS.items():
      runs.append({"name": f"A{num}_{label.split()[0].lower()}",
                   "overrides": [f"--config.anchors.num={num}", common.init(init), *overrides],
                   "row": f"A={num}", "col": label})
  table = {"row_header": "Anchors", "rows": [f"A={n}" for n in NUM_ANCHORS],
           "cols": list(METHODS), "diff": {"along": "cols", "base": "Baseline (k-means)"}}
  return {"title": f"Figure 4: number of anchors ({where})",
          "config": config, "base": base, "runs": runs, "table": table}
