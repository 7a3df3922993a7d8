"""Box math: format conversions, IoU and shape-only IoU.

Conventions used across anchor_jax:
  * boxes are ``[x0, y0, x1, y1]`` ("xyxy") unless a name says ``cxcywh``;
  * shapes are ``[w, h]``;
  * every function broadcasts over leading axes and works on NumPy arrays (host
    code: k-means, evaluation) as well as on ``jnp`` arrays (inside ``jit``).

Degenerate boxes (zero or negative width/height) and all-zero padding give
IoU 0, never NaN, and the gradients stay finite.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _xp(*arrays):
  """NumPy for all-NumPy inputs (host code), jax.numpy otherwise."""
  if all(isinstance(a, (np.ndarray, np.generic, float, int)) for a in arrays):
    return np
  return jnp


def xyxy_to_cxcywh(boxes):
  """[..., 4] corners -> [..., 4] (centre x, centre y, width, height)."""
  xp = _xp(boxes)
  x0, y0, x1, y1 = (boxes[..., i] for i in range(4))
  return xp.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def cxcywh_to_xyxy(boxes):
  """[..., 4] (centre x, centre y, width, height) -> [..., 4] corners."""
  xp = _xp(boxes)
  cx, cy, w, h = (boxes[..., i] for i in range(4))
  return xp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def box_area(boxes):
  """[..., 4] xyxy -> [...]; degenerate boxes have area 0."""
  xp = _xp(boxes)
  w = xp.maximum(boxes[..., 2] - boxes[..., 0], 0)
  h = xp.maximum(boxes[..., 3] - boxes[..., 1], 0)
  return w * h


def _safe_ratio(xp, inter, union):
  """inter / union, 0 where union <= 0 (no NaN in values or gradients)."""
  ok = union > 0
  return xp.where(ok, inter / xp.where(ok, union, 1), 0)


def iou(a, b):
  """Elementwise IoU of xyxy boxes, broadcasting: [..., 4] x [..., 4] -> [...]."""
  xp = _xp(a, b)
  iw = xp.maximum(xp.minimum(a[..., 2], b[..., 2]) - xp.maximum(a[..., 0], b[..., 0]), 0)
  ih = xp.maximum(xp.minimum(a[..., 3], b[..., 3]) - xp.maximum(a[..., 1], b[..., 1]), 0)
  inter = iw * ih
  union = box_area(a) + box_area(b) - inter
  return _safe_ratio(xp, inter, union)


def pairwise_iou(a, b):
  """[..., N, 4] x [..., M, 4] xyxy -> [..., N, M] IoU matrix."""
  return iou(a[..., :, None, :], b[..., None, :, :])


def shape_iou(wh_a, wh_b):
  """IoU of two boxes centred at the origin, from shapes only (YOLOv2 matching).

  Elementwise, broadcasting: [..., 2] x [..., 2] -> [...]. For all pairs use
  ``shape_iou(wh_a[:, None], wh_b[None])``. Non-positive sizes give 0.
  """
  xp = _xp(wh_a, wh_b)
  wa, ha = xp.maximum(wh_a[..., 0], 0), xp.maximum(wh_a[..., 1], 0)
  wb, hb = xp.maximum(wh_b[..., 0], 0), xp.maximum(wh_b[..., 1], 0)
  inter = xp.minimum(wa, wb) * xp.minimum(ha, hb)
  union = wa * ha + wb * hb - inter
  return _safe_ratio(xp, inter, union)


def sort_by_area(wh):
  """[K, 2] -> rows sorted by w*h (ties by w), so results are comparable."""
  wh = np.asarray(wh, dtype=np.float64)
  return wh[np.lexsort((wh[:, 0], wh[:, 0] * wh[:, 1]))]


def clean_shapes(wh):
  """[N, 2] -> (rows with finite, positive w and h [M, 2], number dropped)."""
  wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
  ok = np.all(np.isfinite(wh) & (wh > 0), axis=1)
  return wh[ok], int(np.sum(~ok))
