"""Anchor shapes: initial sets, IoU k-means, fit diagnostics and export.

Anchors are ``[A, 2]`` (w, h) in grid-cell units (one unit = one stride-32
cell, as in darknet); the model stores their log (``anchor_log_wh``). Pixels
are grid units times the stride. Everything here is host-side NumPy.

Reports and the CLI ``python -m anchor_jax.anchors`` live in ``analysis/anchor_report.py``
and ``tools/anchors.py``.
"""
from __future__ import annotations

import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from anchor_jax.core import anchor_fitters, box_ops, region
from anchor_jax.core.box_ops import clean_shapes, sort_by_area  # noqa: F401 -- re-exported

# darknet's published YOLOv2 anchors (yolov2-voc.cfg, yolov2.cfg), grid units.
VOC_ANCHORS = ((1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892),
               (9.47112, 4.84053), (11.2364, 10.0071))
COCO_ANCHORS = ((0.57273, 0.677385), (1.87446, 2.06253), (3.33843, 5.47434),
                (7.88282, 3.52778), (9.77052, 9.16828))
# Paper §4.2.1: "identical" anchors are all (5, 5); "uniform" ones span [3, 9].
IDENTICAL_WH = (5.0, 5.0)
UNIFORM_RANGE = (3.0, 9.0)
# Data-driven inits fit the training boxes: IoU k-means (YOLOv2's), and the anchors of
# darknet's calc_anchors and YOLOv5's AutoAnchor (anchor_fitters.py).
DATA_INITS = ("kmeans", "autoanchor", "calc_anchors")
INIT_CHOICES = ("identical", "uniform", "voc", "coco") + DATA_INITS
DEFAULT_CHUNK = 8192  # rows of boxes per [chunk, k] IoU block (cache-sized).

# --------------------------------------------------------------------------
# Initial anchor sets.
# --------------------------------------------------------------------------


def uniform_anchors(num, *, lo=UNIFORM_RANGE[0], hi=UNIFORM_RANGE[1]):
  """``num`` shapes spread evenly over [lo, hi]^2, sorted by area.

  Rule: farthest-point sampling (Euclidean, grid units) on the n x n linearly
  spaced grid over [lo, hi]^2, n = ceil(sqrt(num)), starting from the grid
  point nearest the centre (ties: lowest index). It yields distinct shapes and,
  for num=5, exactly the paper's (3,3),(3,9),(9,9),(9,3),(6,6).
  """
  if num < 1:
    raise ValueError(f"uniform anchors need num >= 1, got {num}")
  n = int(np.ceil(np.sqrt(num)))
  axis = np.linspace(lo, hi, n) if n > 1 else np.array([(lo + hi) / 2])
  grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)  # [n*n, 2]
  centre = np.array([(lo + hi) / 2, (lo + hi) / 2])
  picked = [int(np.argmin(np.linalg.norm(grid - centre, axis=-1)))]
  dist = np.linalg.norm(grid - grid[picked[0]], axis=-1)  # [n*n] to nearest pick
  while len(picked) < num:
    nxt = int(np.argmax(dist))
    picked.append(nxt)
    dist = np.minimum(dist, np.linalg.norm(grid - grid[nxt], axis=-1))
  return sort_by_area(grid[picked])


def parse_anchor_string(text):
  """'w,h w,h ...' (also darknet's 'w,h, w,h' or ';'-separated) -> [A, 2]."""
  tokens = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
  try:
    values = np.array([float(t) for t in tokens])
  except ValueError:
    raise ValueError(f'anchors {text!r}: expected numbers like "1.3,1.7 3.2,4.0"') from None
  if values.size == 0 or values.size % 2:
    raise ValueError(f"anchors {text!r}: need an even, non-zero count of numbers (w,h pairs), "
                     f"got {values.size}")
  return values.reshape(-1, 2)


def _check_anchors(anchors, num, source):
  """Raises unless anchors is [num, 2], finite and positive."""
  if anchors.ndim != 2 or anchors.shape[1] != 2:
    raise ValueError(f"anchors from {source}: expected [A, 2] (w, h) pairs, "
                     f"got shape {anchors.shape}")
  if anchors.shape[0] != num:
    raise ValueError(f"anchors from {source}: got {anchors.shape[0]} anchors but num={num}")
  if not np.all(np.isfinite(anchors) & (anchors > 0)):
    raise ValueError(f"anchors from {source}: every w, h must be finite and > 0, "
                     f"got {anchors.tolist()}")
  return anchors


def init_anchors(init, num, *, boxes_wh=None, seed=0, identical_wh=IDENTICAL_WH,
                 uniform_range=UNIFORM_RANGE):
  """Initial anchors [num, 2] in grid units.

  ``init``: 'identical', 'uniform' (see ``uniform_anchors``), 'kmeans' (IoU
  k-means on ``boxes_wh`` [N, 2], grid units), 'voc' / 'coco' (darknet's sets,
  num must be 5), or explicit pairs as a string ("1.3,1.7 3.2,4.0") or [A, 2]
  array-like, kept in the given order.
  """
  if num < 1:
    raise ValueError(f"need num >= 1 anchors, got {num}")
  if not isinstance(init, str):
    return _check_anchors(np.asarray(init, dtype=np.float64), num, "explicit array")
  name = init.strip().lower()
  if name == "identical":
    return np.tile(np.asarray(identical_wh, dtype=np.float64), (num, 1))
  if name == "uniform":
    return uniform_anchors(num, lo=uniform_range[0], hi=uniform_range[1])
  if name in DATA_INITS:
    if boxes_wh is None:
      raise ValueError(f"init={name!r} needs boxes_wh "
                       "(the training boxes' [N, 2] shapes in grid units)")
    if name == "kmeans":
      return kmeans_iou(boxes_wh, num, seed=seed)
    fit = {"autoanchor": anchor_fitters.autoanchor_yolov5,
           "calc_anchors": anchor_fitters.calc_anchors_darknet}[name]
    # Both tools work in input pixels (YOLOv5's 2 px floor is in pixels).
    return fit(np.asarray(boxes_wh) * region.STRIDE, num, seed=seed) / region.STRIDE
  if name in ("voc", "coco"):
    published = VOC_ANCHORS if name == "voc" else COCO_ANCHORS
    if num != len(published):
      raise ValueError(f"init='{name}' is darknet's published set of {len(published)} anchors; "
                       f"got num={num}. Use kmeans or an explicit list for other counts.")
    return np.array(published, dtype=np.float64)
  if re.search(r"\d", name):
    return _check_anchors(parse_anchor_string(name), num, f"init={init!r}")
  raise ValueError(f'unknown anchor init {init!r}; valid: {", ".join(INIT_CHOICES)}, '
                   'or explicit pairs like "1.3,1.7 3.2,4.0"')


def to_log(anchors):
  """[A, 2] positive w, h -> log (the model's ``anchor_log_wh``); NumPy or jnp."""
  if isinstance(anchors, jax.Array):
    return jnp.log(anchors)
  anchors = np.asarray(anchors, dtype=np.float64)
  if not np.all(np.isfinite(anchors) & (anchors > 0)):
    raise ValueError(f"to_log needs finite, positive anchors, got {anchors.tolist()}")
  return np.log(anchors)


def from_log(log_wh):
  """Inverse of ``to_log``: [A, 2] log w, h -> w, h; NumPy or jnp."""
  return jnp.exp(log_wh) if isinstance(log_wh, jax.Array) else np.exp(np.asarray(log_wh))


# --------------------------------------------------------------------------
# IoU k-means and fit diagnostics.
# --------------------------------------------------------------------------


def best_match(wh, centres, *, chunk_size=DEFAULT_CHUNK):
  """Best shape IoU and its centre index for each box: [N, 2] x [K, 2] -> [N], [N].

  Ties go to the lowest index. Runs in [chunk_size, K] blocks to bound memory.
  """
  n = wh.shape[0]
  best_iou, best_idx = np.empty(n), np.empty(n, dtype=np.int64)
  for s in range(0, n, chunk_size):
    iou = box_ops.shape_iou(wh[s:s + chunk_size, None, :], centres[None, :, :])  # [c, K]
    idx = np.argmax(iou, axis=1)
    best_idx[s:s + chunk_size] = idx
    best_iou[s:s + chunk_size] = np.take_along_axis(iou, idx[:, None], axis=1)[:, 0]
  return best_iou, best_idx


def _kmeanspp_seed(wh, weights, k, rng):
  """k-means++ seeding with distance 1 - shape IoU -> (centres [k, 2], mean best IoU).

  Once every box coincides with a centre (all distances 0), further centres are
  drawn by weight alone and so duplicate existing ones.
  """
  best = np.zeros(len(wh))  # [N] best IoU to the centres so far.
  centres = []
  for _ in range(k):
    p = weights * (1.0 - best) ** 2
    p = p / p.sum() if p.sum() > 0 else weights / weights.sum()
    centres.append(wh[rng.choice(len(wh), p=p)])
    best = np.maximum(best, box_ops.shape_iou(wh, centres[-1][None, :]))
  return np.array(centres), float(np.average(best, weights=weights))


def _lloyd(wh, weights, centres, *, max_iter, chunk_size):
  """Refines centres: assign by best IoU, update to the weighted member mean.

  An emptied centre is reseeded at the worst-fit box (lowest best IoU) not yet
  fit perfectly; if every box is fit perfectly (fewer distinct shapes than
  centres) it stays as it is, a duplicate. Stops when assignments settle.
  """
  centres, k, prev = centres.copy(), len(centres), None
  for _ in range(max_iter):
    best, idx = best_match(wh, centres, chunk_size=chunk_size)
    mass = np.bincount(idx, weights=weights, minlength=k)  # [k]
    for d in range(2):
      sums = np.bincount(idx, weights=weights * wh[:, d], minlength=k)
      centres[:, d] = np.where(mass > 0, sums / np.where(mass > 0, mass, 1), centres[:, d])
    empty, worst = np.flatnonzero(mass == 0), []
    if empty.size:
      worst = [i for i in np.argsort(best, kind="stable")[:empty.size] if best[i] < 1.0]
      centres[empty[:len(worst)]] = wh[worst]
    if not worst and prev is not None and np.array_equal(idx, prev):
      break
    prev = idx
  return centres


def kmeans_iou(wh, k, *, seed, max_iter=300, seedings=3, chunk_size=DEFAULT_CHUNK):
  """IoU k-means anchors [k, 2], sorted by area (YOLOv2's clustering).

  Distance is 1 - shape IoU: each box joins the centre of highest IoU; a centre
  moves to the mean (w, h) of its members, until assignments settle. Start: the
  best (by mean best IoU) of ``seedings`` k-means++ seedings drawn with
  ``np.random.default_rng(seed)``, so a seed always gives the same result.
  Non-finite / non-positive shapes are dropped (logged). With fewer distinct
  shapes than k some anchors are duplicates. Units are those of ``wh``.
  """
  if k < 1:
    raise ValueError(f"k-means needs k >= 1, got {k}")
  valid, dropped = clean_shapes(wh)
  if dropped:
    logging.warning("kmeans_iou: dropped %d boxes with non-finite or non-positive w/h", dropped)
  if not len(valid):
    raise ValueError(f"kmeans_iou: no valid box shapes (all {dropped} were non-finite or <= 0)")
  # Equal shapes are merged with counts as weights: exact, and faster on integer-pixel data.
  shapes, counts = np.unique(valid, axis=0, return_counts=True)  # [U, 2], [U]
  weights = counts.astype(np.float64)
  rng = np.random.default_rng(seed)
  trials = [_kmeanspp_seed(shapes, weights, k, rng) for _ in range(max(1, seedings))]
  start = max(trials, key=lambda t: t[1])[0]  # first of the best on ties.
  centres = _lloyd(shapes, weights, start, max_iter=max_iter, chunk_size=chunk_size)
  return sort_by_area(centres)


def fit_stats(anchors_wh, boxes_wh, *, iou_thresh=0.5,
              ratio_thresh=anchor_fitters.YOLOV5_THRESHOLD):
  """How well anchors [A, 2] fit box shapes [N, 2] (same units; shape IoU only).

  Returns ``mean_best_iou``, ``bpr`` (fraction of boxes with some anchor at
  IoU >= iou_thresh: YOLOv2's best possible recall), ``bpr_ratio`` (the same by
  YOLOv5's rule: some anchor within ``ratio_thresh`` x on both sides, so readers of
  either tool's numbers find theirs), ``usage`` (boxes per anchor by best IoU; ties
  to the first) and ``num_boxes`` (valid boxes used; non-finite / non-positive ones
  are skipped).
  """
  anchors = np.asarray(anchors_wh, dtype=np.float64).reshape(-1, 2)
  boxes, _ = clean_shapes(boxes_wh)
  if not len(boxes):
    raise ValueError("fit_stats: no valid box shapes")
  best, idx = best_match(boxes, anchors)
  return {
      "mean_best_iou": float(best.mean()),
      "bpr": float(np.mean(best >= iou_thresh)),
      "bpr_ratio": anchor_fitters.ratio_recall(boxes, anchors, thr=ratio_thresh),
      "usage": np.bincount(idx, minlength=len(anchors)).tolist(),
      "num_boxes": int(len(boxes)),
  }


# --------------------------------------------------------------------------
# Export: darknet cfg line, YAML, config string.
# --------------------------------------------------------------------------


def to_darknet_line(anchors, *, decimals=4):
  """[A, 2] grid units -> darknet cfg 'anchors=w,h, w,h, ...'."""
  pairs = (f"{w:.{decimals}f},{h:.{decimals}f}" for w, h in np.asarray(anchors, dtype=np.float64))
  return "anchors=" + ", ".join(pairs)


def from_darknet_line(line):
  """Inverse of ``to_darknet_line`` (also reads a cfg's 'anchors = ...' line)."""
  _, sep, values = line.partition("=")
  return parse_anchor_string(values if sep else line)


def to_init_string(anchors, *, decimals=4):
  """[A, 2] -> 'w,h w,h' that ``init_anchors`` parses (for --config.anchors.init)."""
  pairs = np.asarray(anchors, dtype=np.float64)
  return " ".join(f"{w:.{decimals}f},{h:.{decimals}f}" for w, h in pairs)


def to_yaml(anchors, *, stride=None, decimals=6):
  """[A, 2] grid units -> small YAML text; with ``stride`` also pixel sizes."""
  grid = np.round(np.asarray(anchors, dtype=np.float64), decimals)
  doc = {"num_anchors": len(grid), "units": "grid", "anchors": grid.tolist()}
  if stride is not None:
    doc["stride"] = stride
    doc["anchors_px"] = np.round(np.asarray(anchors, dtype=np.float64) * stride, decimals).tolist()
  return yaml.safe_dump(doc, default_flow_style=None, sort_keys=False)


def from_yaml(text):
  """Inverse of ``to_yaml``: YAML text -> [A, 2] grid units."""
  return np.asarray(yaml.safe_load(text)["anchors"], dtype=np.float64).reshape(-1, 2)
