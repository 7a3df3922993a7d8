"""Decode raw YOLOv2 head outputs into boxes and scores (darknet region layer).

The network emits ``[B, H, W, A, 5 + C]`` raw channels
``(t_x, t_y, t_w, t_h, t_o, class logits...)``; H indexes rows (y), W columns
(x); anchors are ``exp(anchor_log_wh)`` in grid-cell units. Boxes come out as
xyxy normalised to ``[0, 1]`` of the network input; ``to_pixels`` undoes the
evaluation resize (a plain resize of the whole image, no letterbox).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from anchor_jax.core import region


def decode(outputs, anchor_log_wh, *, clip: bool = False):
  """Raw head outputs -> (boxes, scores), jit-safe.

  Args:
    outputs: ``[B, H, W, A, 5 + C]`` raw network outputs.
    anchor_log_wh: ``[A, 2]`` log anchor (w, h) in grid-cell units.
    clip: clip boxes to ``[0, 1]``. Off by default, as darknet runs NMS on the
      unclipped boxes and clips only when writing detections out. (A huge
      t_w/t_h can give an infinite box; both NMS versions drop such boxes.)

  Returns:
    boxes: ``[B, H*W*A, 4]`` xyxy normalised to the network input, ordered
      (row, column, anchor) so that index = (row * W + col) * A + anchor.
    scores: ``[B, H*W*A, C]`` objectness × class probability.
  """
  outputs = jnp.asarray(outputs, jnp.float32)
  b, h, w, a, _ = outputs.shape
  # The one definition of the box parametrisation, shared with the loss.
  boxes = region.decode_boxes(outputs, jnp.asarray(anchor_log_wh, jnp.float32))  # [B, H, W, A, 4]
  if clip:
    boxes = jnp.clip(boxes, 0.0, 1.0)
  objectness = jax.nn.sigmoid(outputs[..., 4])  # [B, H, W, A]
  class_prob = jax.nn.softmax(outputs[..., 5:], axis=-1)  # [B, H, W, A, C]
  scores = objectness[..., None] * class_prob
  return boxes.reshape(b, h * w * a, 4), scores.reshape(b, h * w * a, -1)


def _xp(*arrays):
  """jax.numpy if any input is a jax array (or tracer), else NumPy (host code)."""
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _pixel_scale(xp, orig_hw, dtype):
  """[..., 2] (height, width) -> [..., 1, 4] (w, h, w, h) to scale xyxy boxes."""
  orig_hw = xp.asarray(orig_hw, dtype=dtype)
  height, width = orig_hw[..., 0], orig_hw[..., 1]
  return xp.stack([width, height, width, height], axis=-1)[..., None, :]


def to_pixels(boxes, orig_hw, *, clip: bool = True):
  """Normalised xyxy boxes -> pixel xyxy boxes of the original image.

  The eval resize stretches the whole image to S×S, so x scales by the
  original width and y by the original height; boxes are then clipped to
  ``[0, width] × [0, height]``. Works on NumPy (host) and jnp arrays.

  Args:
    boxes: ``[..., N, 4]`` normalised xyxy.
    orig_hw: ``[..., 2]`` original (height, width) per image, broadcasting
      against the leading axes of ``boxes`` (e.g. ``[B, 2]`` for ``[B, N, 4]``).
    clip: clip to the image.

  Returns:
    ``[..., N, 4]`` pixel xyxy boxes.
  """
  xp = _xp(boxes, orig_hw)
  scale = _pixel_scale(xp, orig_hw, boxes.dtype)  # [..., 1, 4]
  pixels = boxes * scale
  return xp.clip(pixels, 0, scale) if clip else pixels


def to_normalised(boxes_px, orig_hw):
  """Inverse of ``to_pixels`` (without clipping): pixel xyxy -> normalised xyxy."""
  xp = _xp(boxes_px, orig_hw)
  return boxes_px / _pixel_scale(xp, orig_hw, boxes_px.dtype)
