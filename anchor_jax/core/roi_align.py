"""RoIAlign (Mask R-CNN) on channels-last features, single and multi-level.

Semantics of torchvision ``ops.roi_align`` (= Detectron2 ``ROIAlign``; with
``aligned=True`` it is Detectron2's ROIAlignV2): a box is scaled by
``spatial_scale`` and shifted by -0.5 pixel when ``aligned`` (pixel centres
at integer + 0.5); without ``aligned`` its size is at least 1 cell. Each of
the output_size^2 bins averages sampling_ratio^2 bilinear samples on a
regular grid in the bin. A sample outside [-1, H] x [-1, W] is 0; inside,
coordinates are clamped at 0 and at H - 1 / W - 1 (torchvision's
``bilinear_interpolate``).

Deviations: ``sampling_ratio`` must be > 0 (static shapes); torchvision's
and Detectron2's ``sampling_ratio=0`` (ceil(roi size / output size) samples,
per RoI: Detectron2's box-head default) is not supported; torchvision's
``MultiScaleRoIAlign`` uses 2. No gradient flows into the boxes (as in both
peers, whose backward returns none for the RoIs).

Multi-level: the levels' features are flattened and concatenated into one
[sum_l H_l W_l, C] table and every box gathers from its own level (per-box
H, W, scale and offset into the table), so one RoIAlign costs the same
whatever the number of levels; the peers loop over levels with dynamic
index sets. ``fpn_levels`` is Detectron2's ``assign_boxes_to_levels`` /
torchvision's ``LevelMapper`` (Eq. 1 of the FPN paper).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _bilinear_axis(coord, size):
  """Sample coords [...] on an axis of [...] sizes -> (low, high int32, w_low, w_high)."""
  inside = (coord >= -1.0) & (coord <= size)
  c = jnp.maximum(coord, 0.0)
  low = jnp.floor(c)
  at_end = low >= size - 1
  low = jnp.where(at_end, size - 1, low)
  high = jnp.where(at_end, size - 1, low + 1)
  c = jnp.where(at_end, low, c)
  frac = c - low
  w_low = jnp.where(inside, 1.0 - frac, 0.0)
  w_high = jnp.where(inside, frac, 0.0)
  return low.astype(jnp.int32), high.astype(jnp.int32), w_low, w_high


def _sample_coords(start, length, output_size, sampling_ratio):
  """[R] start, [R] length -> [R, output_size * sampling_ratio] sample coordinates."""
  n = output_size * sampling_ratio
  frac = (jnp.arange(n, dtype=start.dtype) + 0.5) / n             # bin b, sample s at (b + (s + .5) / g) / out
  return start[:, None] + frac[None, :] * length[:, None]


def _roi_align_table(table, boxes, level_hw, level_start, scale, *, output_size,
                     sampling_ratio, aligned):
  """table [T, C], boxes [R, 4], per-box level_hw [R, 2] int, level_start [R] int,
  scale [R] -> [R, out, out, C]."""
  if sampling_ratio <= 0:
    raise ValueError(f"sampling_ratio must be > 0 (static shapes), got {sampling_ratio}")
  boxes = jax.lax.stop_gradient(boxes).astype(table.dtype)
  offset = 0.5 if aligned else 0.0
  x0 = boxes[:, 0] * scale - offset
  y0 = boxes[:, 1] * scale - offset
  w = boxes[:, 2] * scale - offset - x0
  h = boxes[:, 3] * scale - offset - y0
  if not aligned:
    w, h = jnp.maximum(w, 1.0), jnp.maximum(h, 1.0)
  hh = level_hw[:, 0].astype(table.dtype)[:, None]                # [R, 1]
  ww = level_hw[:, 1].astype(table.dtype)[:, None]
  ys = _sample_coords(y0, h, output_size, sampling_ratio)         # [R, S], S = out * g
  xs = _sample_coords(x0, w, output_size, sampling_ratio)
  y_lo, y_hi, wy_lo, wy_hi = _bilinear_axis(ys, hh)               # [R, S] each
  x_lo, x_hi, wx_lo, wx_hi = _bilinear_axis(xs, ww)
  start = level_start[:, None, None]                              # [R, 1, 1]
  width = level_hw[:, 1][:, None, None]
  out = 0.0
  for yi, wy in ((y_lo, wy_lo), (y_hi, wy_hi)):
    for xi, wx in ((x_lo, wx_lo), (x_hi, wx_hi)):
      idx = start + yi[:, :, None] * width + xi[:, None, :]         # [R, S, S] rows of table
      weight = wy[:, :, None] * wx[:, None, :]                    # [R, S, S]
      out = out + weight[..., None] * table[idx]                  # [R, S, S, C]
  r, c = boxes.shape[0], table.shape[-1]
  g = sampling_ratio
  out = out.reshape(r, output_size, g, output_size, g, c)
  return jnp.mean(out, axis=(2, 4))                               # [R, out, out, C]


def roi_align(features, boxes, *, output_size, spatial_scale, sampling_ratio=2, aligned=True):
  """features [H, W, C], boxes [R, 4] xyxy in input pixels -> [R, out, out, C]."""
  h, w, c = features.shape
  r = boxes.shape[0]
  return _roi_align_table(
      features.reshape(h * w, c), boxes, jnp.broadcast_to(jnp.asarray([h, w]), (r, 2)),
      jnp.zeros(r, jnp.int32), jnp.full(r, spatial_scale, features.dtype),
      output_size=output_size, sampling_ratio=sampling_ratio, aligned=aligned)


def fpn_levels(boxes, *, min_level, max_level, canonical_size=224, canonical_level=4):
  """[R, 4] xyxy -> [R] int32 index into the level list (0 = min_level).

  level = floor(canonical_level + log2(sqrt(area) / canonical_size + 1e-8)), clamped to
  [min_level, max_level] (Detectron2; torchvision adds its eps 1e-6 outside the log).
  """
  size = jnp.sqrt(jnp.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 0.0))
  level = jnp.floor(canonical_level + jnp.log2(size / canonical_size + 1e-8))
  return (jnp.clip(level, min_level, max_level) - min_level).astype(jnp.int32)


def multilevel_roi_align(features, boxes, levels, strides, *, output_size, sampling_ratio=2,
                         aligned=True):
  """RoIAlign of each box on its own level.

  Args:
    features: list of L [H_l, W_l, C]; boxes: [R, 4] xyxy input pixels;
    levels: [R] int index into ``features`` (``fpn_levels``); strides: L ints (scale 1 / s_l).

  Returns:
    [R, out, out, C].
  """
  hws = [f.shape[:2] for f in features]
  sizes = [h * w for h, w in hws]
  starts = jnp.asarray([sum(sizes[:i]) for i in range(len(sizes))], jnp.int32)   # [L]
  table = jnp.concatenate([f.reshape(-1, f.shape[-1]) for f in features])         # [T, C]
  levels = jnp.clip(levels, 0, len(features) - 1)
  level_hw = jnp.asarray(hws, jnp.int32)[levels]                                  # [R, 2]
  scale = (1.0 / jnp.asarray(strides, table.dtype))[levels]                        # [R]
  return _roi_align_table(table, boxes, level_hw, starts[levels], scale,
                          output_size=output_size, sampling_ratio=sampling_ratio,
                          aligned=aligned)
