"""Table 6: ablation of the three warm-ups, k-means init throughout.

  python -m experiments.run experiments/sweeps/table6.py:cpu --workdir_root=runs/table6

Rows: Baseline (the paper's plain YOLOv2, fixed anchors); Opt (anchors learned, no
warm-up); + soft assignment; + online clustering; + BatchNorm without shift; and, not in
the paper, the frozen anchors with all three warm-ups (what the warm-ups alone do). Columns, as the paper's VOC 2007 and Brainwash:
``cpu`` = the synthetic ``mixed`` (VOC-like) and ``tiny`` (Brainwash-like) presets;
``cpu_<preset>`` one preset; ``paper`` = VOC07 and Brainwash recipes; ``paper_voc``,
``paper_brainwash`` one of them. Differences are to the Baseline row, as the paper's.

"k-means" follows the paper's Table 1 meaning per dataset (darknet's VOC set on VOC).
The paper's Brainwash column equals its Table 5 *uniform* rows (78.03, 79.86), so
the paper may have used uniform init there; this sweep keeps k-means as its text says.
"""
from experiments.sweeps import _common as common

VARIANTS = common.cpu_variants() + ("paper", "paper_voc", "paper_brainwash")
CPU_COLUMNS = ("mixed", "tiny")           # stand-ins for VOC 2007 and Brainwash
PAPER_COLUMNS = ("voc", "brainwash")
METHODS = {
    "Baseline": list(common.BASELINE),
    "Opt": common.opt(soft=False, clust=False, bn=False),
    "Opt+Soft": common.opt(soft=True, clust=False, bn=False),
    "Opt+Soft+Clust": common.opt(soft=True, clust=True, bn=False),
    "Opt+Soft+Clust+BN": common.opt(soft=True, clust=True, bn=True),
    "Frozen+Soft+Clust+BN": list(common.FROZEN_WARMUPS),
}
PAPER = {"voc": [76.83, 77.06, 77.38, 77.56, 77.99],
         "brainwash": [78.03, 78.89, 79.12, 79.42, 79.86]}


def _columns(arg: str):
  """[(key, column label, config spec, overrides, k-means init)], paper numbers or None."""
  presets = CPU_COLUMNS if arg == "cpu" else (common.cpu_preset(arg),)
  if presets[0] is not None:
    return [(p, p, common.CPU_CONFIG, [common.preset(p)], "kmeans") for p in presets], None
  datasets = {"paper": PAPER_COLUMNS, "paper_voc": ("voc",),
              "paper_brainwash": ("brainwash",)}.get(arg)
  if datasets is None:
    raise common.unknown(arg, VARIANTS)
  columns = [(d, common.PAPER_NAMES[d], common.PAPER_CONFIGS[d], [], common.PAPER_KMEANS[d])
             for d in datasets]
  paper = {row: {common.PAPER_NAMES[d]: PAPER[d][i] for d in datasets}
           for i, row in enumerate(list(METHODS)[:len(PAPER["voc"])])}
  return columns, {"AP50": paper}


def get_sweep(arg: str = "cpu") -> dict:
  columns, paper = _columns(arg)
  runs = []
  for key, label, config, overrides, kmeans in columns:
    for method, method_overrides in METHODS.items():
      runs.append({"name": f"{key}_{method.lower().replace('+', '_')}", "config": config,
                   "row": method, "col": label,
                   "overrides": [*overrides, common.init(kmeans), *method_overrides]})
  table = {"row_header": "Method", "rows": list(METHODS), "cols": [c[1] for c in columns],
           "diff": {"along": "rows", "base": "Baseline"}}
  if paper:
    table["paper"] = paper
  return {"title": "Table 6: ablation of the training techniques (k-means init)",
          "config": columns[0][2], "base": [], "runs": runs, "table": table}
