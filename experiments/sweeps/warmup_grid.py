"""Warm-up strengths: T0 x lambda0 for Opt from identical anchors (not in the paper).

  python -m experiments.run experiments/sweeps/warmup_grid.py:cpu --workdir_root=runs/grid

T0 = ``anchors.temperature`` (soft assignment, Eq. 10), lambda0 = ``anchors.cluster_weight``
(online clustering, Eq. 11), both annealed to 0 over the config's warm-up steps; BN
without shift on. The paper uses T0 = 2, lambda0 = 1. A Baseline from the same
identical anchors is the reference each cell is compared with.

Variants: ``cpu`` (synthetic ``mixed``), ``cpu_<preset>``; ``paper`` = VOC07 at 416 px.
"""
from experiments.sweeps import _common as common

VARIANTS = common.cpu_variants() + ("paper",)
TEMPERATURES = (0.5, 1.0, 2.0, 4.0)
CLUSTER_WEIGHTS = (0.1, 0.5, 1.0, 2.0)
REFERENCE = "baseline_identical"


def get_sweep(arg: str = "cpu") -> dict:
  config, base, where = common.cpu_or_voc(arg, VARIANTS)
  base = [*base, common.init("identical")]
  runs = [{"name": REFERENCE, "overrides": list(common.BASELINE)}]
  for t0 in TEMPERATURES:
    for lam0 in CLUSTER_WEIGHTS:
      runs.append({"name": f"T{t0:g}_lam{lam0:g}",
                   "overrides": [*common.opt(), f"--config.anchors.temperature={t0}",
                                 f"--config.anchors.cluster_weight={lam0}"],
                   "row": f"T0={t0:g}", "col": f"λ0={lam0:g}"})
  table = {"row_header": "T0 \\ λ0", "rows": [f"T0={t:g}" for t in TEMPERATURES],
           "cols": [f"λ0={w:g}" for w in CLUSTER_WEIGHTS], "diff": {"run": REFERENCE}}
  return {"title": f"Warm-up grid: T0 x λ0, Opt from identical anchors ({where})",
          "config": config, "base": base, "runs": runs, "table": table}
