"""Fit, report and export anchors; prints a text report, or one JSON object with --json
(logs go to stderr).

  python -m anchor_jax.anchors --boxes=FILE.csv --k=5 [--seed=0] [--stride=32] [--json]
  python -m anchor_jax.anchors --workdir=DIR [--boxes=FILE.csv]
  python -m anchor_jax.anchors --config=configs/NAME.py[:ARG] [--config.key=value ...] [--k=K]

``--boxes``: IoU k-means anchors of the (w, h) pixel columns of a CSV. ``--workdir``: the
last learned anchors of a training run (their fit on ``--boxes`` if given), also written
as ``anchors_darknet.txt`` and ``anchors.yaml`` in the workdir. ``--config``: the box
statistics of a config's training set at its input size, k-means anchors for it, and the
fit of the config's own initial anchors. The text report shows the anchors in pixels
(sorted by area) with their usage, the mean best IoU and BPR, and the darknet line. JSON
keys: ``anchors`` (k x [w, h] pixels, sorted by area), ``mean_best_iou``, ``bpr`` (share
of boxes with an anchor at shape IoU >= ``--iou_thresh``), ``bpr_ratio`` (YOLOv5's rule:
an anchor within ``ratio_thresh`` = 4x on both sides), ``usage``, the darknet
``anchors=`` line and YAML.
"""
from __future__ import annotations

from absl import flags

from anchor_jax import config_lib
from anchor_jax.analysis import anchor_report, report_text
from anchor_jax.core.region import STRIDE
from anchor_jax.tools import cli


def define_flags(fv: flags.FlagValues, argv) -> None:
  flags.DEFINE_string("boxes", None, "CSV with header columns w,h in input pixels.",
                      flag_values=fv)
  flags.DEFINE_string("workdir", None, "Training workdir: report its last learned anchors.",
                      flag_values=fv)
  cli.define_config(fv, argv, help_string="Experiment config (path[:arg]): fit its training "
                    "boxes; --config.key=value overrides it.")
  flags.DEFINE_integer("k", None, "Number of anchors to fit (default 5, or anchors.num with "
                       "--config).", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("seed", 0, "k-means seed.", flag_values=fv)
  flags.DEFINE_integer("stride", STRIDE, "Pixels per grid cell.", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("iou_thresh", 0.5, "Shape-IoU threshold of bpr.", flag_values=fv)
  cli.define_json(fv)


def render(out: dict) -> str:
  """The text report of one ``anchor_report`` dict."""
  return report_text.to_text(report_text.anchor_report_blocks(out))


def main(fv: flags.FlagValues, args) -> int:
  if args:
    raise cli.UsageError(f"unexpected arguments {args}")
  config = cli.config_value(fv)
  if (config is not None) == bool(fv.boxes or fv.workdir):
    raise cli.UsageError("give --boxes=FILE.csv and/or --workdir=DIR, or --config=CONFIG")
  if config is not None:
    config_lib.validate(config)
    out = anchor_report.config_report(config, k=fv.k, iou_thresh=fv.iou_thresh)
  else:
    boxes = anchor_report.read_boxes_csv(fv.boxes) if fv.boxes else None
    if fv.workdir:
      out = anchor_report.workdir_report(fv.workdir, boxes, stride=fv.stride,
                                         iou_thresh=fv.iou_thresh)
    else:
      out = anchor_report.fit_report(boxes, k=fv.k or 5, seed=fv.seed, stride=fv.stride,
                                     iou_thresh=fv.iou_thresh)
  cli.report(fv, out, render)
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)
