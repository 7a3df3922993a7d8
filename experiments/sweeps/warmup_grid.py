"""Warm-up strengths: T0 x lambda0 for Opt from identical anchors (not in the paper).

  python -m experiments.run experiments/sweeps/warmup_grid.py:cpu --workdir_root=runs/study/mixed

T0 = ``anchors.temperature`` (soft assignment, Eq. 10), lambda0 = ``anchors.cluster_weight``
(online clustering, Eq. 11), both annealed to 0 over the config's warm-up steps; BN
without shift on. The paper uses T0 = 2, lambda0 = 1 (that cell is Table 1's
``identical_opt``). A Baseline from the same identical anchors (Table 1's
``identical_baseline``) is the reference each cell is compared with.

Variants: ``cpu`` (synthetic ``mixed``), ``cpu_<preset>``: T0 in (0.5, 2, 8), lambda0 in
(0.1, 1, 10); ``paper`` = VOC07 at 416 px, the same grid.
"""
from experiments.sweeps import _common as common

VARIANTS = common.cpu_variants() + ("paper",)
TEMPERATURES = (0.5, 2.0, 8.0)
CLUSTER_WEIGHTS = (0.1, 1.0, 10.0)
REFERENCE = common.run_name("identical", "baseline")
PAPER_CELL = (2.0, 1.0)   # the paper's T0, lambda0: Table 1's Opt (identical)


def get_sweep(arg: str = "cpu") -> dict:
  config, base, where = common.cpu_or_voc(arg, VARIANTS)
  base = [*base, common.init("identical")]
  runs = [{"name": REFERENCE, "overrides": list(common.BASELINE)}]
  for t0 in TEMPERATURES:
    for lam0 in CLUSTER_WEIGHTS:
      name = (common.run_name("identical", "opt") if (t0, lam0) == PAPER_CELL
              else f"identical_opt_T{t0:g}_lam{lam0:g}")
      overrides = common.opt()
      if (t0, lam0) != PAPER_CELL:
        overrides += [f"--config.anchors.temperature={t0}",
                      f"--config.anchors.cluster_weight={lam0}"]
      runs.append({"name": name, "overrides": overrides,
                   "row": f"T0={t0:g}", "col": f"λ0={lam0:g}"})
  table = {"row_header": "T0 \\ λ0", "rows": [f"T0={t:g}" for t in TEMPERATURES],
           "cols": [f"λ0={w:g}" for w in CLUSTER_WEIGHTS], "diff": {"run": REFERENCE}}
  return {"title": f"Warm-up grid: T0 x λ0, Opt from identical anchors ({where})",
          "config": config, "base": base, "runs": runs, "table": table}
