"""Anchor reports: the fit of an anchor set on box shapes, k-means fits of a CSV or a
config's training boxes, and a run's learned anchors with their exports. JSON-ready dicts;
the CLI ``python -m anchor_jax.anchors`` (``tools/anchors.py``) prints them as text
(``report_text.anchor_report_blocks``) or, with ``--json``, as they are.
"""
from __future__ import annotations

import csv
import logging
import os

import numpy as np

from anchor_jax import workdir as workdir_lib
from anchor_jax.core import anchor_fitters
from anchor_jax.core.anchors import (
  clean_shapes,
  fit_stats,
  init_anchors,
  kmeans_iou,
  to_darknet_line,
  to_init_string,
  to_yaml,
)
from anchor_jax.core.region import STRIDE
from anchor_jax.data import pipeline
from anchor_jax.errors import UserError


def report(anchors_px, boxes_px=None, *, stride, iou_thresh=0.5):
  """JSON-ready summary of anchors [A, 2] (pixels), sorted by area.

  Fit keys are None without ``boxes_px`` [N, 2]. ``order`` maps each row back
  to its position in the input (a model's anchor slot).
  """
  anchors_px = np.asarray(anchors_px, dtype=np.float64).reshape(-1, 2)
  order = np.lexsort((anchors_px[:, 0], anchors_px[:, 0] * anchors_px[:, 1]))
  px = anchors_px[order]
  grid = px / stride
  stats = dict.fromkeys(("mean_best_iou", "bpr", "bpr_ratio", "usage", "num_boxes"))
  if boxes_px is not None:
    stats = fit_stats(px, boxes_px, iou_thresh=iou_thresh)  # shape IoU is scale-free.
  return {
      "anchors": px.tolist(), "anchors_grid": grid.tolist(), **stats,
      "iou_thresh": iou_thresh, "ratio_thresh": anchor_fitters.YOLOV5_THRESHOLD,
      "stride": stride, "order": order.tolist(),
      "darknet": to_darknet_line(grid), "yaml": to_yaml(grid, stride=stride),
      "config_init": to_init_string(grid),
  }


def fit_report(boxes_px, *, k, seed, stride, iou_thresh=0.5):
  """Fits IoU k-means anchors to box shapes [N, 2] (pixels) and reports them."""
  boxes, dropped = clean_shapes(boxes_px)
  if not len(boxes):
    raise UsageError(f"no valid box shapes (all {dropped} were non-finite or <= 0)")
  distinct = len(np.unique(boxes, axis=0))
  if distinct < k:   # k-means would return duplicate anchors
    raise UsageError(f"k={k} anchors need at least {k} distinct box shapes; the boxes have "
                     f"{distinct} ({len(boxes)} boxes). Lower --k or give more boxes.")
  anchors_grid = kmeans_iou(boxes / stride, k, seed=seed)
  out = report(anchors_grid * stride, boxes, stride=stride, iou_thresh=iou_thresh)
  return {**out, "num_dropped": dropped, "k": k, "seed": seed}


class UsageError(UserError):
  """A box file or workdir that cannot be reported on; the message says why."""


def read_boxes_csv(path):
  """CSV with a header holding 'w' and 'h' (pixels; other columns ignored) -> [N, 2]."""
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      rows = list(csv.reader(f))
  except OSError as e:
    raise UsageError(f"{path}: cannot read ({e.strerror})") from None
  except (UnicodeDecodeError, csv.Error) as e:
    raise UsageError(f"{path}: not a text CSV file ({e})") from None
  if not rows or not any(c.strip() for c in rows[0]):
    raise UsageError(f"{path}: empty file (expected a header with columns w,h)")
  header = [c.strip().lower() for c in rows[0]]
  missing = [c for c in ("w", "h") if c not in header]
  if missing:
    raise UsageError(f'{path}: missing column(s) {", ".join(missing)} in header {rows[0]}')
  iw, ih = header.index("w"), header.index("h")
  wh = []
  for line, row in enumerate(rows[1:], start=2):
    if not any(c.strip() for c in row):
      continue
    try:
      wh.append((float(row[iw]), float(row[ih])))
    except (ValueError, IndexError):
      raise UsageError(f"{path}: line {line}: non-numeric or missing w/h in {row}") from None
  if not wh:
    raise UsageError(f"{path}: no data rows after the header")
  wh = np.array(wh)  # [N, 2]
  dropped = clean_shapes(wh)[1]
  if dropped == len(wh):
    raise UsageError(f"{path}: all {dropped} rows have non-finite or non-positive w/h")
  if dropped:
    logging.warning("%s: skipped %d of %d rows with non-finite or non-positive w/h",
                    path, dropped, len(wh))
  return wh


def workdir_report(workdir, boxes_px=None, *, stride, iou_thresh=0.5):
  """Reports the last learned anchors in DIR/anchors.jsonl; writes the two exports."""
  path = workdir_lib.path(workdir, workdir_lib.ANCHORS)
  if not os.path.isfile(path):
    raise UsageError(f"{path}: not found (is {workdir} a training workdir?)")
  records = workdir_lib.read_jsonl(path)
  try:
    last = records[-1]
    grid = np.asarray(last["anchors"], dtype=np.float64).reshape(-1, 2)  # [A, 2]
    px = np.asarray(last.get("anchors_px", grid * stride), dtype=np.float64)
  except (IndexError, ValueError, KeyError, TypeError) as e:
    raise UsageError(f'{path}: expected JSON lines with "anchors" [[w, h], ...] ({e!r})') from None
  if not grid.size or not np.all(np.isfinite(grid) & (grid > 0)):
    raise UsageError(f'{path}: last line has no valid anchors: {last["anchors"]}')
  if px.shape != grid.shape or not np.allclose(px, grid * stride, rtol=1e-3):
    logging.warning("%s: anchors_px != anchors * stride (%s); is --stride right?", path, stride)
  out = report(grid * stride, boxes_px, stride=stride, iou_thresh=iou_thresh)
  out["step"] = last.get("step")
  counts = last.get("counts")
  if counts is not None and len(counts) == len(grid):
    counts = np.asarray(counts)[out["order"]].tolist()  # sorted like the anchors.
  out["counts"] = counts
  out["exported"] = [workdir_lib.path(workdir, name)
                     for name in (workdir_lib.DARKNET_EXPORT, workdir_lib.YAML_EXPORT)]
  with open(out["exported"][0], "w") as f:
    f.write(out["darknet"] + "\n")
  with open(out["exported"][1], "w") as f:
    f.write(out["yaml"])
  return out


def config_report(config, *, k=None, iou_thresh=0.5) -> dict:
  """Box statistics of a config's training set at its input size, the fit of
  the config's own initial anchors (any init, the data-driven ones fitted to these
  boxes), and k-means anchors (what ``anchors.init=kmeans`` would use)."""
  train_ds = pipeline.build_dataset(config, "train")
  boxes_px = np.asarray(pipeline.train_box_shapes(train_ds, config), np.float64)
  k = k or config.anchors.num
  out = fit_report(boxes_px, k=k, seed=config.seed, stride=STRIDE,
                   iou_thresh=iou_thresh)
  w, h = boxes_px[:, 0], boxes_px[:, 1]
  pct = lambda x: np.round(np.percentile(x, [5, 25, 50, 75, 95]), 2).tolist()
  out["dataset"] = {
      "name": config.dataset.name, "image_size": config.input.image_size,
      "images": int(min(config.anchors.kmeans_images, train_ds.num_examples or np.inf)),
      "num_boxes": int(len(boxes_px)), "stats": dict(getattr(train_ds, "stats", {})),
      "w_percentiles_5_25_50_75_95": pct(w), "h_percentiles_5_25_50_75_95": pct(h),
      "aspect_w_over_h_percentiles": pct(w / h),
  }
  if config.anchors.init != "kmeans" and k == config.anchors.num:
    init = init_anchors(config.anchors.init, config.anchors.num, seed=config.seed,
                        boxes_wh=boxes_px / STRIDE)
    out["config_init_fit"] = {"init": config.anchors.init, "anchors": (init * STRIDE).tolist(),
                              **fit_stats(init * STRIDE, boxes_px, iou_thresh=iou_thresh)}
  return out
