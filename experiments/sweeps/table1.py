"""Table 1 (and Tables 2, 5): anchor init x {Baseline, Opt}, plus the anchors other tools give.

  python -m experiments.run experiments/sweeps/table1.py:cpu --workdir_root=runs/study/mixed

Rows: the paper's inits (identical, uniform, k-means) under Baseline and Opt, and, as
extra Baseline rows (frozen anchors, not in the paper), the anchors users get from YOLOv5's
AutoAnchor and darknet's calc_anchors (``anchors.init=autoanchor|calc_anchors``): are learned
anchors better than the ones the user's tool would give?

Variants: ``cpu`` (synthetic ``mixed``), ``cpu_mixed``, ``cpu_tiny``, ``cpu_wide`` on the
CPU study config; ``paper`` = VOC07 at 416 px (Table 1), ``paper_voc544`` (Table 1's
544 px rows), ``paper_coco`` (Table 2), ``paper_brainwash`` (Table 5).
"""
from experiments.sweeps import _common as common

VARIANTS = common.cpu_variants() + common.paper_variants()
INITS = ("identical", "uniform", "k-means")
TOOLS = {"AutoAnchor (YOLOv5)": "autoanchor", "calc_anchors (darknet)": "calc_anchors"}

# The paper's numbers per dataset: {metric: {row: {col: value}}}.
PAPER = {
    "voc": {"AP50": {"identical": {"Baseline": 75.76, "Opt": 78.01},
                     "uniform": {"Baseline": 76.32, "Opt": 77.95},
                     "k-means": {"Baseline": 76.83, "Opt": 77.99}}},
    "voc544": {"AP50": {"k-means": {"Baseline": 79.45, "Opt": 80.69}}},
    "coco": {"AP50": {"identical": {"Opt": 45.07},
                      "uniform": {"Baseline": 42.06, "Opt": 45.33},
                      "k-means": {"Baseline": 43.87, "Opt": 45.07}},
             "AP": {"identical": {"Opt": 24.43},
                    "uniform": {"Baseline": 21.90, "Opt": 24.55},
                    "k-means": {"Baseline": 23.45, "Opt": 24.47}}},
    "brainwash": {"AP50": {"identical": {"Opt": 79.85},
                           "uniform": {"Baseline": 78.03, "Opt": 79.86},
                           "k-means": {"Baseline": 78.98, "Opt": 80.18}}},
}


def get_sweep(arg: str = "cpu") -> dict:
  preset, dataset = common.cpu_preset(arg), common.paper_dataset(arg)
  if preset is not None:
    config, base, kmeans = common.CPU_CONFIG, common.preset(preset), "kmeans"
    where, paper = f"synthetic `{preset}` preset, CPU study config", None
  elif dataset is not None:
    config, base, kmeans = common.PAPER_CONFIGS[dataset], [], common.PAPER_KMEANS[dataset]
    where, paper = common.PAPER_NAMES[dataset], PAPER[dataset]
  else:
    raise common.unknown(arg, VARIANTS)
  methods = {"Baseline": ("baseline", list(common.BASELINE)), "Opt": ("opt", common.opt())}
  runs = []
  for init in INITS:
    init_value = kmeans if init == "k-means" else init
    for col, (method, overrides) in methods.items():
      runs.append({"name": common.run_name(init, method),
                   "overrides": [common.init(init_value), *overrides], "row": init, "col": col})
  for row, tool in TOOLS.items():
    runs.append({"name": common.run_name(tool, "baseline"),
                 "overrides": [common.init(tool), *common.BASELINE], "row": row,
                 "col": "Baseline"})
  table = {"row_header": "Init", "rows": [*INITS, *TOOLS], "cols": list(methods),
           "diff": {"along": "cols", "base": "Baseline"}}
  if paper:
    table["paper"] = paper
  return {"title": f"Table 1: anchor initialisation x Baseline / Opt ({where})",
          "config": config, "base": base, "runs": runs, "table": table}
