"""Anchor reports and the anchors CLI (prints one JSON object; logs go to stderr).

  python -m anchor_jax.anchors --boxes=FILE.csv --k=5 [--seed=0] [--stride=32]
  python -m anchor_jax.anchors --workdir=DIR [--boxes=FILE.csv]
  python -m anchor_jax.anchors --config=CONFIG.py[:arg] [--config.key=value ...] [--k=K]
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys

import numpy as np

from anchor_jax.anchors import (DEFAULT_STRIDE, clean_shapes, fit_stats, init_anchors,
                                kmeans_iou, to_darknet_line, to_init_string, to_yaml)


def report(anchors_px, boxes_px=None, *, stride, iou_thresh=0.5):
  """JSON-ready summary of anchors [A, 2] (pixels), sorted by area.

  Fit keys are None without ``boxes_px`` [N, 2]. ``order`` maps each row back
  to its position in the input (a model's anchor slot).
  """
  anchors_px = np.asarray(anchors_px, dtype=np.float64).reshape(-1, 2)
  order = np.lexsort((anchors_px[:, 0], anchors_px[:, 0] * anchors_px[:, 1]))
  px = anchors_px[order]
  grid = px / stride
  stats = dict.fromkeys(('mean_best_iou', 'bpr', 'usage', 'num_boxes'))
  if boxes_px is not None:
    stats = fit_stats(px, boxes_px, iou_thresh=iou_thresh)  # shape IoU is scale-free.
  return {
      'anchors': px.tolist(), 'anchors_grid': grid.tolist(), **stats,
      'iou_thresh': iou_thresh, 'stride': stride, 'order': order.tolist(),
      'darknet': to_darknet_line(grid), 'yaml': to_yaml(grid, stride=stride),
      'config_init': to_init_string(grid),
  }


def fit_report(boxes_px, *, k, seed, stride, iou_thresh=0.5):
  """Fits IoU k-means anchors to box shapes [N, 2] (pixels) and reports them."""
  boxes, dropped = clean_shapes(boxes_px)
  if not len(boxes):
    raise ValueError(f'no valid box shapes (all {dropped} were non-finite or <= 0)')
  anchors_grid = kmeans_iou(boxes / stride, k, seed=seed)
  out = report(anchors_grid * stride, boxes, stride=stride, iou_thresh=iou_thresh)
  return {**out, 'num_dropped': dropped, 'k': k, 'seed': seed}


class UsageError(Exception):
  """A user-facing input problem: printed without traceback, exit code 2."""


def read_boxes_csv(path):
  """CSV with a header holding 'w' and 'h' (pixels; other columns ignored) -> [N, 2]."""
  try:
    with open(path, newline='', encoding='utf-8-sig') as f:
      rows = list(csv.reader(f))
  except OSError as e:
    raise UsageError(f'{path}: cannot read ({e.strerror})') from None
  except (UnicodeDecodeError, csv.Error) as e:
    raise UsageError(f'{path}: not a text CSV file ({e})') from None
  if not rows or not any(c.strip() for c in rows[0]):
    raise UsageError(f'{path}: empty file (expected a header with columns w,h)')
  header = [c.strip().lower() for c in rows[0]]
  missing = [c for c in ('w', 'h') if c not in header]
  if missing:
    raise UsageError(f'{path}: missing column(s) {", ".join(missing)} in header {rows[0]}')
  iw, ih = header.index('w'), header.index('h')
  wh = []
  for line, row in enumerate(rows[1:], start=2):
    if not any(c.strip() for c in row):
      continue
    try:
      wh.append((float(row[iw]), float(row[ih])))
    except (ValueError, IndexError):
      raise UsageError(f'{path}: line {line}: non-numeric or missing w/h in {row}') from None
  if not wh:
    raise UsageError(f'{path}: no data rows after the header')
  wh = np.array(wh)  # [N, 2]
  dropped = clean_shapes(wh)[1]
  if dropped == len(wh):
    raise UsageError(f'{path}: all {dropped} rows have non-finite or non-positive w/h')
  if dropped:
    logging.warning('%s: skipped %d of %d rows with non-finite or non-positive w/h',
                    path, dropped, len(wh))
  return wh


def workdir_report(workdir, boxes_px=None, *, stride, iou_thresh=0.5):
  """Reports the last learned anchors in DIR/anchors.jsonl; writes the two exports."""
  path = os.path.join(workdir, 'anchors.jsonl')
  try:
    with open(path) as f:
      last = json.loads([line for line in f if line.strip()][-1])
    grid = np.asarray(last['anchors'], dtype=np.float64).reshape(-1, 2)  # [A, 2]
    px = np.asarray(last.get('anchors_px', grid * stride), dtype=np.float64)
  except OSError as e:
    raise UsageError(f'{path}: cannot read ({e.strerror})') from None
  except (IndexError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise UsageError(f'{path}: expected JSON lines with "anchors" [[w, h], ...] ({e!r})') from None
  if not grid.size or not np.all(np.isfinite(grid) & (grid > 0)):
    raise UsageError(f'{path}: last line has no valid anchors: {last["anchors"]}')
  if px.shape != grid.shape or not np.allclose(px, grid * stride, rtol=1e-3):
    logging.warning('%s: anchors_px != anchors * stride (%s); is --stride right?', path, stride)
  out = report(grid * stride, boxes_px, stride=stride, iou_thresh=iou_thresh)
  out['step'] = last.get('step')
  counts = last.get('counts')
  if counts is not None and len(counts) == len(grid):
    counts = np.asarray(counts)[out['order']].tolist()  # sorted like the anchors.
  out['counts'] = counts
  with open(os.path.join(workdir, 'anchors_darknet.txt'), 'w') as f:
    f.write(out['darknet'] + '\n')
  with open(os.path.join(workdir, 'anchors.yaml'), 'w') as f:
    f.write(out['yaml'])
  return out


def config_report(spec, overrides=(), *, k=None, iou_thresh=0.5) -> dict:
  """Box statistics of a config's training set at its input size, the fit of
  the config's own initial anchors, and k-means anchors (what
  ``anchors.init=kmeans`` would use)."""
  from anchor_jax import config_lib, input_pipeline  # heavy imports, this mode only
  config = config_lib.load(spec, overrides)
  train_ds = input_pipeline.build_dataset(config, 'train')
  boxes_px = np.asarray(train_ds.boxes_wh(config.anchors.kmeans_images,
                                          image_size=config.input.image_size), np.float64)
  k = k or config.anchors.num
  out = fit_report(boxes_px, k=k, seed=config.seed, stride=DEFAULT_STRIDE,
                   iou_thresh=iou_thresh)
  w, h = boxes_px[:, 0], boxes_px[:, 1]
  pct = lambda x: np.round(np.percentile(x, [5, 25, 50, 75, 95]), 2).tolist()
  out['dataset'] = {
      'name': config.dataset.name, 'image_size': config.input.image_size,
      'images': int(min(config.anchors.kmeans_images, train_ds.num_examples or np.inf)),
      'num_boxes': int(len(boxes_px)), 'stats': dict(getattr(train_ds, 'stats', {})),
      'w_percentiles_5_25_50_75_95': pct(w), 'h_percentiles_5_25_50_75_95': pct(h),
      'aspect_w_over_h_percentiles': pct(w / h),
  }
  if config.anchors.init != 'kmeans' and k == config.anchors.num:
    init = init_anchors(config.anchors.init, config.anchors.num, seed=config.seed)
    out['config_init_fit'] = {'init': config.anchors.init,
                              **fit_stats(init * DEFAULT_STRIDE, boxes_px, iou_thresh=iou_thresh)}
  return out


def _parse_args(argv):
  p = argparse.ArgumentParser(prog='python -m anchor_jax.anchors',
                              description=__doc__.split('\n')[0])
  p.add_argument('--boxes', help='CSV with header columns w,h in input pixels')
  p.add_argument('--workdir', help='training workdir: report the last anchors in anchors.jsonl')
  p.add_argument('--config', help='experiment config (path[:arg]): fit its training boxes; '
                 'further --config.key=value arguments override it')
  p.add_argument('--k', type=int, default=None, help='number of anchors to fit (default 5, '
                 'or anchors.num with --config)')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--stride', type=int, default=DEFAULT_STRIDE, help='pixels per grid cell')
  p.add_argument('--iou_thresh', type=float, default=0.5, help='IoU threshold for bpr')
  args, rest = p.parse_known_args(argv)
  bad = [r for r in rest if not r.startswith('--config.')]
  if bad or (rest and not args.config):
    p.error(f'unrecognised arguments: {" ".join(bad or rest)}')
  args.overrides = rest
  if sum(map(bool, (args.boxes or args.workdir, args.config))) != 1:
    p.error('give --boxes=FILE.csv and/or --workdir=DIR, or --config=CONFIG')
  if args.k is not None and args.k < 1 or args.stride <= 0:
    p.error('--k must be >= 1 and --stride > 0')
  return args


def main(argv=None):
  """CLI entry point; returns the exit code (2 for bad input)."""
  args = _parse_args(argv)
  try:
    if args.config:
      out = config_report(args.config, args.overrides, k=args.k, iou_thresh=args.iou_thresh)
      print(json.dumps(out))
      return 0
    args.k = args.k or 5
    boxes = read_boxes_csv(args.boxes) if args.boxes else None
    if args.workdir:
      out = workdir_report(args.workdir, boxes, stride=args.stride, iou_thresh=args.iou_thresh)
    else:
      out = fit_report(boxes, k=args.k, seed=args.seed, stride=args.stride,
                       iou_thresh=args.iou_thresh)
  except (UsageError, ValueError, OSError) as e:  # OSError: e.g. an unwritable workdir.
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(out))
  return 0


