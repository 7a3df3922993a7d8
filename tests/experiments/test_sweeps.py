"""The sweep files' methods: the Baseline is the paper's plain YOLOv2, Opt learns anchors."""
import os

import numpy as np
import pytest

from anchor_jax import config_lib
from anchor_jax.training import train
from experiments import sweep_lib
from tests import REPO

SWEEPS = ("table1.py:cpu", "table1.py:cpu_wide", "table1.py:paper", "table1.py:paper_coco",
          "table1.py:paper_brainwash", "table6.py:cpu_tiny", "table6.py:paper", "fig4.py:cpu",
          "warmup_grid.py:cpu", "table7.py:cpu", "table7.py:voc07", "table7.py:voc0712_fpn",
          "table7.py:coco")


def _configs(spec):
  """(run, its resolved config) for every run of a sweep, seed 0."""
  sweep = sweep_lib.load(os.path.join(REPO, "experiments/sweeps", spec))
  for job in sweep_lib.jobs(sweep, root="/tmp/unused", seeds=[0]):
    run = next(r for r in sweep["runs"] if r["name"] == job.name)
    yield run, config_lib.load(os.path.join(REPO, job.config),
                               ["--config.seed=0", *job.overrides])


def _is_baseline(run):
  return "baseline" in run["name"] or run.get("col", "").startswith("Baseline") or \
      run.get("row") == "Baseline"


@pytest.mark.parametrize("spec", SWEEPS)
def test_baseline_is_the_papers_plain_yolov2_and_opt_learns(spec):
  seen = set()
  for run, config in _configs(spec):
    a = config.anchors
    schedules = train.make_schedules(config)
    if _is_baseline(run):
      seen.add("baseline")
      # Fixed anchors, hard assignment from step 0, no clustering term, ordinary head.
      assert (a.optimize, a.bn_no_shift) == (False, False), run["name"]
      assert float(schedules.temperature(0)) == 0.0 and float(schedules.cluster_weight(0)) == 0
    elif run["name"].endswith("frozen_warmups"):
      seen.add("frozen")
      assert (a.optimize, a.bn_no_shift) == (False, True)
      assert float(schedules.temperature(0)) > 0 and float(schedules.cluster_weight(0)) > 0
    else:
      seen.add("opt")
      assert a.optimize, run["name"]
  assert {"baseline", "opt"} <= seen


def test_table6_rows_switch_one_warmup_each():
  rows = {run["row"]: config for run, config in _configs("table6.py:cpu_mixed")}
  t0 = lambda c: float(train.make_schedules(c).temperature(0))
  lam0 = lambda c: float(train.make_schedules(c).cluster_weight(0))
  table = {name: (c.anchors.optimize, t0(c) > 0, lam0(c) > 0, c.anchors.bn_no_shift)
           for name, c in rows.items()}
  assert table == {
      "Baseline": (False, False, False, False),
      "Opt": (True, False, False, False),
      "Opt+Soft": (True, True, False, False),
      "Opt+Soft+Clust": (True, True, True, False),
      "Opt+Soft+Clust+BN": (True, True, True, True),
      "Frozen+Soft+Clust+BN": (False, True, True, True),
  }
  assert np.isclose(t0(rows["Opt+Soft"]), 2.0) and np.isclose(lam0(rows["Opt+Soft+Clust"]), 1.0)


@pytest.mark.parametrize("spec", ["table7.py:cpu", "table7.py:voc0712", "table7.py:coco"])
def test_table7_is_faster_rcnn_with_the_papers_method(spec):
  """Table 7: "without BN or soft assignment trick": both arms have T = 0 and the ordinary
  head; Opt learns the anchors with the clustering warm-up, Baseline has neither."""
  cols = {}
  for run, config in _configs(spec):
    s = train.make_schedules(config)
    assert config.model.detector == "faster_rcnn"
    assert float(s.temperature(0)) == 0.0 and not config.anchors.bn_no_shift
    cols[run["col"]] = (config.anchors.optimize, float(s.cluster_weight(0)) > 0)
  assert cols == {"Baseline": (False, False), "Opt": (True, True)}
