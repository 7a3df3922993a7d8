"""Faster R-CNN anchors and box coding, with learnable anchor shapes.

Anchors: every FPN level l (stride s_l) holds A anchor shapes, the learnable
``anchor_log_wh[l]`` = log(width, height) in input pixels. They are placed at
every feature cell (i, j) with centre ((j + offset) s_l, (i + offset) s_l), and
flattened [H, W, A] row-major (cell-major, anchor-minor), levels concatenated in
order. This is Detectron2's ``DefaultAnchorGenerator`` (offset 0.0 default) and
torchvision's ``AnchorGenerator`` (offset 0), except that both build their cell
anchors from (size, aspect ratio) pairs, torchvision rounds them to integer
pixels, and neither learns them; here the shapes are the parameter itself.

Box coding is Faster R-CNN's (Detectron2 ``Box2BoxTransform``, torchvision
``BoxCoder``; widths are x1 - x0 without darknet's or old Detectron's "+ 1"):

  t_x = w_x (g_x - a_x) / a_w    t_y = w_y (g_y - a_y) / a_h
  t_w = w_w log(g_w / a_w)       t_h = w_h log(g_h / a_h)

with (w_x, w_y, w_w, w_h) = (1, 1, 1, 1) for the RPN and (10, 10, 5, 5) for
the box head. ``decode`` clamps t_w / w_w and t_h / w_h at ``scale_clamp``
(log(1000 / 16), Detectron2's and torchvision's value) before exponentiating.

The anchors' gradient does not flow through these functions in the RPN loss:
it calls them on ``stop_gradient`` anchors and rebuilds the t_w, t_h targets
from the parameter (``rcnn_losses.rpn_loss``).
"""
from __future__ import annotations

import math

import jax.numpy as jnp

from anchor_jax.core import box_ops

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
BOX_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
SCALE_CLAMP = math.log(1000.0 / 16)


def grid_anchors(anchor_log_wh_level, feat_hw, stride, offset=0.0):
  """One level's anchors at every cell.

  Args:
    anchor_log_wh_level: [A, 2] log (w, h) in input pixels.
    feat_hw: (H, W) static feature size; stride: int pixels per cell.
    offset: centre offset in cells (0.0 as Detectron2 / torchvision, 0.5 = cell centre).

  Returns:
    [H * W * A, 4] xyxy boxes in input pixels, ordered [H, W, A].
  """
  h, w = feat_hw
  wh = jnp.exp(anchor_log_wh_level)                               # [A, 2]
  cy = (jnp.arange(h, dtype=wh.dtype) + offset) * stride          # [H]
  cx = (jnp.arange(w, dtype=wh.dtype) + offset) * stride          # [W]
  cx = jnp.broadcast_to(cx[None, :, None], (h, w, wh.shape[0]))   # [H, W, A]
  cy = jnp.broadcast_to(cy[:, None, None], (h, w, wh.shape[0]))
  half_w, half_h = wh[:, 0] / 2, wh[:, 1] / 2                     # [A]
  boxes = jnp.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
  return boxes.reshape(h * w * wh.shape[0], 4)


def level_anchors(anchor_log_wh, feat_hws, strides, offset=0.0):
  """All levels' anchors, concatenated.

  Args:
    anchor_log_wh: [L, A, 2]; feat_hws: L static (H_l, W_l); strides: L ints.

  Returns:
    (anchors [N, 4], level_slot [N] int32) with N = sum_l H_l W_l A;
    level_slot = l * A + a indexes ``anchor_log_wh.reshape(L * A, 2)``.
  """
  num_levels, num_anchors, _ = anchor_log_wh.shape
  if not len(feat_hws) == len(strides) == num_levels:
    raise ValueError(f"{num_levels} anchor levels but {len(feat_hws)} feature sizes and "
                     f"{len(strides)} strides")
  boxes, slots = [], []
  for level, (hw, stride) in enumerate(zip(feat_hws, strides)):
    boxes.append(grid_anchors(anchor_log_wh[level], hw, stride, offset))
    slot = level * num_anchors + jnp.arange(num_anchors, dtype=jnp.int32)
    slots.append(jnp.tile(slot, hw[0] * hw[1]))                   # [H_l * W_l * A]
  return jnp.concatenate(boxes), jnp.concatenate(slots)


def encode(gt, anchors, weights):
  """[..., 4] xyxy targets relative to [..., 4] xyxy anchors -> [..., 4] deltas."""
  wx, wy, ww, wh = weights
  a = box_ops.xyxy_to_cxcywh(anchors)
  g = box_ops.xyxy_to_cxcywh(gt)
  return jnp.stack([
      wx * (g[..., 0] - a[..., 0]) / a[..., 2],
      wy * (g[..., 1] - a[..., 1]) / a[..., 3],
      ww * jnp.log(g[..., 2] / a[..., 2]),
      wh * jnp.log(g[..., 3] / a[..., 3])], axis=-1)


def decode(deltas, anchors, weights, scale_clamp=SCALE_CLAMP):
  """[..., 4] deltas applied to [..., 4] xyxy anchors -> [..., 4] xyxy boxes."""
  wx, wy, ww, wh = weights
  a = box_ops.xyxy_to_cxcywh(anchors)
  dw = jnp.minimum(deltas[..., 2] / ww, scale_clamp)
  dh = jnp.minimum(deltas[..., 3] / wh, scale_clamp)
  cx = a[..., 0] + deltas[..., 0] / wx * a[..., 2]
  cy = a[..., 1] + deltas[..., 1] / wy * a[..., 3]
  return box_ops.cxcywh_to_xyxy(
      jnp.stack([cx, cy, a[..., 2] * jnp.exp(dw), a[..., 3] * jnp.exp(dh)], axis=-1))


def clip_boxes(boxes, image_hw):
  """[..., 4] xyxy clamped into the image: x in [0, W], y in [0, H] (image_hw = (H, W))."""
  h, w = image_hw
  x = jnp.clip(boxes[..., 0::2], 0, w)
  y = jnp.clip(boxes[..., 1::2], 0, h)
  return jnp.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], axis=-1)
