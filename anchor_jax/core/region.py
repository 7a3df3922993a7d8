"""The darknet region-layer parametrisation of boxes (YOLOv2, paper Eq. 2-5).

Network output ``[B, H, W, A, 5 + C]`` with channels
``(t_x, t_y, t_w, t_h, t_o, class logits...)``; H indexes rows (y), W columns
(x). Anchors are ``log`` (w, h) in grid-cell units, shape ``[A, 2]``.

  x = (col + sigmoid(t_x)) / W        w = a_w * exp(t_w) / W
  y = (row + sigmoid(t_y)) / H        h = a_h * exp(t_h) / H
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from anchor_jax.core import box_ops

# Input pixels per grid cell: the network's output stride (five 2x2 max-pools in every
# architecture of ``model/yolov2.py``). Anchors in grid units times STRIDE are pixels.
STRIDE = 32


def cell_offsets(grid_h: int, grid_w: int):
  """-> [H, W, 1, 2] (col, row) of every cell, to broadcast over anchors."""
  rows, cols = jnp.meshgrid(jnp.arange(grid_h), jnp.arange(grid_w), indexing="ij")
  return jnp.stack([cols, rows], axis=-1)[:, :, None, :].astype(jnp.float32)


def decode_boxes(outputs, anchor_log_wh):
  """[B, H, W, A, >=4] raw outputs, [A, 2] log anchors -> [B, H, W, A, 4] xyxy in [0, 1] units."""
  grid_h, grid_w = outputs.shape[1], outputs.shape[2]
  size = jnp.asarray([grid_w, grid_h], jnp.float32)
  xy = (cell_offsets(grid_h, grid_w) + jax.nn.sigmoid(outputs[..., 0:2])) / size
  wh = jnp.exp(anchor_log_wh + outputs[..., 2:4]) / size
  return box_ops.cxcywh_to_xyxy(jnp.concatenate([xy, wh], axis=-1))
