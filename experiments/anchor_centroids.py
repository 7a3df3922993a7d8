r"""Where learned anchors sit relative to the boxes they are responsible for.

  python -m experiments.anchor_centroids --workdir=runs/study/t1_mixed/kmeans_opt/seed0

For an anchor set (the run's initial and its learned anchors), every training GT box is
given to the anchor of best shape IoU (YOLOv2's hard assignment), and each anchor is
compared with two centroids of its boxes:

* the arithmetic mean of (w, h): the centre IoU k-means (darknet's anchor recipe) moves to;
* the geometric mean weighted by darknet's coordinate scale (2 - w h, sizes relative to the
  image): the stationary point of Eq. 3's anchor gradient when the network's t_w, t_h
  average zero over those boxes, i.e. where SGD on the anchors is pulled.

A learned set that matches its own geometric centroids is a fixed point of "assign by IoU,
move to the log-space mean", a k-means in log w-h whose optimum differs from IoU k-means'.
"""
from __future__ import annotations

import sys

import numpy as np
from absl import flags

from anchor_jax.analysis import inspection
from anchor_jax.core import anchors as anchors_lib
from anchor_jax.tools import cli


def centroids(anchors_px, boxes_px, image_size: int) -> list[dict]:
  """Per anchor (input order): its boxes' count, arithmetic mean and (2 - wh)-weighted
  geometric mean of (w, h) in px. ``anchors_px`` [A, 2], ``boxes_px`` [N, 2]."""
  anchors = np.asarray(anchors_px, np.float64)   # [A, 2]
  boxes = np.asarray(boxes_px, np.float64)       # [N, 2]
  _, owner = anchors_lib.best_match(boxes, anchors)   # [N]
  out = []
  for i, anchor in enumerate(anchors):
    mine = boxes[owner == i]                     # [n_i, 2]
    row = {"anchor": anchor.tolist(), "count": len(mine), "arith": None, "geo": None}
    if len(mine):
      weight = 2.0 - np.prod(mine / image_size, axis=1)          # [n_i]
      row["arith"] = mine.mean(axis=0).tolist()
      row["geo"] = np.exp(np.average(np.log(mine), axis=0, weights=weight)).tolist()
    out.append(row)
  return out


def _fmt(wh) -> str:
  return "—" if wh is None else f"{wh[0]:.1f}×{wh[1]:.1f}"


def render(label: str, rows) -> list[str]:
  lines = [f"{label}:", "", "| anchor (px) | boxes | arithmetic mean | (2 − wh)-weighted geometric mean |",
           "| --- | --- | --- | --- |"]
  for r in sorted(rows, key=lambda r: r["anchor"][0] * r["anchor"][1]):
    lines.append(f"| {_fmt(r['anchor'])} | {r['count']} | {_fmt(r['arith'])} | {_fmt(r['geo'])} |")
  return lines + [""]


def define_flags(fv: flags.FlagValues, argv) -> None:
  del argv
  flags.DEFINE_string("workdir", None, "A training workdir.", flag_values=fv)
  flags.DEFINE_integer("num_images", None, "Training images whose boxes are used (default: "
                       "anchors.kmeans_images).", lower_bound=1, flag_values=fv)
  flags.mark_flag_as_required("workdir", flag_values=fv)


def main(fv: flags.FlagValues, args) -> int:
  if args:
    raise cli.UsageError(f"unexpected arguments {args}")
  run = inspection.load_run(fv.workdir)
  boxes = inspection.gt_boxes(run.config, fv.num_images)    # [N, 2] px
  size = run.config.input.image_size
  lines = [f"# Anchors vs the centroids of their boxes: {fv.workdir}", "",
           f"{len(boxes)} training boxes at {size} px, each given to its best-IoU anchor.", ""]
  lines += render("initial anchors (step 0)", centroids(run.initial_px, boxes, size))
  lines += render(f"learned anchors (step {run.history[-1]['step']})",
                  centroids(run.learned_px, boxes, size))
  print("\n".join(lines))
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)


if __name__ == "__main__":
  sys.exit(run())
