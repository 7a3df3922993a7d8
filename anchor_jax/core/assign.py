"""Target assignment: which anchor answers for which ground-truth box.

Everything here runs inside ``jit`` on padded, static-shape arrays (no Python
loop over boxes or cells) and its results are held fixed for the backward pass
(``stop_gradient``), as paper §3.2 prescribes: assign first, then back-propagate.

Assignment is GT-centric: for every GT slot j of image b we name its cell (the
one holding the box centre) and weights ``delta[b, j, :]`` over the A anchors of
that cell.

* Hard (YOLOv2): one-hot on the anchor of smallest distance (for the default
  ``metric='iou'``: the best shape-only IoU, darknet's rule). Ties go to the
  lower anchor index.
* Soft (paper Eq. 10): ``softmax_i(-dist(a_i, g_j) / T)`` over the cell's A
  anchors. ``T == 0`` selects hard assignment, so T can be an annealed schedule
  value without recompiling.

Collision rule (hard only): when several GTs of an image pick the same cell
*and* anchor, the GT in the highest slot index keeps it and the others get no
assignment (darknet processes GTs in order and each overwrites the previous
targets, so its last GT wins). darknet shuffles each image's boxes when it loads
them, so the winner is random; the training stream does the same
(``data/pipeline.py: shuffle_gt_slots``). Soft assignment sums over GTs as Eq. 10
does and needs no rule.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from anchor_jax.core import box_ops

METRICS = ("iou", "l2")


class Assignment(NamedTuple):
  """Result of ``assign`` (all under stop_gradient)."""
  cell: jax.Array         # [B, M] int32 flat cell index row * W + col
  target_xy: jax.Array    # [B, M, 2] GT centre offset inside its cell, in [0, 1]
  gt_log_wh: jax.Array    # [B, M, 2] log GT (w, h) in grid-cell units
  delta: jax.Array        # [B, M, A] assignment weights; rows of invalid GTs are 0
  responsible: jax.Array  # [B, H*W*A] sum of delta per prediction, clipped to 1


def gt_geometry(boxes, *, grid_hw):
  """[B, M, 4] xyxy in [0, 1] -> (cell [B, M], target_xy [B, M, 2], log wh [B, M, 2]).

  Sizes are in grid-cell units (w * W, h * H); the centre's cell is clipped
  into the grid so that boxes poking out of the image still land somewhere.
  """
  grid_h, grid_w = grid_hw
  size = jnp.asarray([grid_w, grid_h], boxes.dtype)
  cxcywh = box_ops.xyxy_to_cxcywh(boxes)
  centre = cxcywh[..., :2] * size                         # [B, M, 2] grid units
  col_row = jnp.clip(jnp.floor(centre), 0, size - 1)
  target_xy = jnp.clip(centre - col_row, 0.0, 1.0)
  col_row = col_row.astype(jnp.int32)
  cell = col_row[..., 1] * grid_w + col_row[..., 0]
  log_wh = jnp.log(jnp.maximum(cxcywh[..., 2:] * size, 1e-9))
  return cell, target_xy, log_wh


def anchor_distance(anchor_log_wh, gt_log_wh, *, metric="iou"):
  """[A, 2] log anchors, [..., 2] log GT shapes -> [..., A] distances.

  ``iou``: 1 - shape-only IoU (boxes centred together, darknet/k-means).
  ``l2``: squared Euclidean distance in log-(w, h).
  """
  if metric == "iou":
    return 1.0 - box_ops.shape_iou(jnp.exp(gt_log_wh)[..., None, :], jnp.exp(anchor_log_wh))
  if metric == "l2":
    return jnp.sum((gt_log_wh[..., None, :] - anchor_log_wh) ** 2, axis=-1)
  raise ValueError(f"Unknown assignment metric {metric!r}; choose one of {METRICS}.")


def hard_delta(dist, cell, valid):
  """[B, M, A] distances -> one-hot [B, M, A], collisions resolved (last slot wins)."""
  num_gt, num_anchors = dist.shape[1:]
  best = jnp.argmin(dist, axis=-1)                          # [B, M]
  pred = cell * num_anchors + best                          # [B, M] prediction index
  slot = jnp.arange(num_gt)
  same = pred[:, :, None] == pred[:, None, :]               # [B, M(j), M(k)]
  later = slot[None, :] > slot[:, None]                     # [M(j), M(k)]: k > j
  beaten = jnp.any(same & later & valid[:, None, :], axis=-1)
  keep = valid & ~beaten
  return jax.nn.one_hot(best, num_anchors, dtype=dist.dtype) * keep[..., None]


def soft_delta(dist, valid, temperature):
  """Eq. 10: softmax over anchors of -dist / T; rows of invalid GTs are 0."""
  safe_t = jnp.where(temperature > 0, temperature, 1.0)
  return jax.nn.softmax(-dist / safe_t, axis=-1) * valid[..., None]


def assign(boxes, valid, anchor_log_wh, *, grid_hw, temperature=0.0, metric="iou"):
  """Assigns padded GTs to anchors (see module docstring).

  Args:
    boxes: [B, M, 4] xyxy in [0, 1], invalid slots already replaced by finite
      boxes (``gt.sanitize_gt``).
    valid: [B, M] bool.
    anchor_log_wh: [A, 2] log anchor (w, h) in grid units.
    grid_hw: static (H, W).
    temperature: scalar (may be traced); 0 means hard assignment.
    metric: 'iou' (1 - shape IoU, default) or 'l2' (log-wh), for soft and hard.
  """
  grid_h, grid_w = grid_hw
  num_anchors = anchor_log_wh.shape[0]
  anchor_log_wh = jax.lax.stop_gradient(anchor_log_wh)
  cell, target_xy, gt_log_wh = gt_geometry(boxes, grid_hw=grid_hw)
  dist = anchor_distance(anchor_log_wh, gt_log_wh, metric=metric)      # [B, M, A]
  temperature = jnp.asarray(temperature, dist.dtype)
  delta = jnp.where(temperature > 0,
                    soft_delta(dist, valid, temperature),
                    hard_delta(dist, cell, valid))
  # Scatter the weights onto the prediction grid: [B, H*W*A].
  batch = boxes.shape[0]
  pred_index = cell[..., None] * num_anchors + jnp.arange(num_anchors)  # [B, M, A]
  responsible = jnp.zeros((batch, grid_h * grid_w * num_anchors), dist.dtype)
  responsible = responsible.at[jnp.arange(batch)[:, None, None], pred_index].add(delta)
  result = Assignment(cell=cell, target_xy=target_xy, gt_log_wh=gt_log_wh,
                      delta=delta, responsible=jnp.minimum(responsible, 1.0))
  return jax.tree.map(jax.lax.stop_gradient, result)


def ignore_mask(pred_boxes, gt_boxes, valid, *, thresh):
  """[B, N, 4] predicted, [B, M, 4] GT xyxy -> [B, N] bool.

  True where a prediction overlaps some valid GT with IoU > thresh: darknet
  then spares it the no-object loss.
  """
  ious = box_ops.pairwise_iou(pred_boxes, gt_boxes)                  # [B, N, M]
  best = jnp.max(jnp.where(valid[:, None, :], ious, 0.0), axis=-1)
  return jax.lax.stop_gradient(best > thresh)
