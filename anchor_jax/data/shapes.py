"""Drawing for the synthetic dataset: shape masks, background, distractors, painting.

Shapes are boolean masks over an integer-pixel crop that touch all four sides of it (so
an unoccluded shape's tight box is its crop). Painting works on a float32 planar image
[3, S, S] (NumPy is slow on a trailing axis of length 3) that is interleaved into uint8
[S, S, 3] at the end. Every random number comes from the caller (a generator or
uniforms in [0, 1)), so the functions here are deterministic.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

SHAPES = ("rectangle", "ellipse", "triangle", "cross", "ring")


@dataclasses.dataclass(frozen=True)
class RenderParams:
  """Drawing knobs. Intensities are on the 0..255 scale, lengths in fractions of the side
  unless named ``_px``. The fields under "Layout" change the boxes, the others only pixels.
  """
  # Appearance (scaled by ``clutter``).
  noise_std: float = 8.0  # per-pixel Gaussian noise, drawn last
  gradient_amp: float = 60.0  # max per-channel change of the background across the image
  num_blobs: tuple[int, int] = (1, 4)  # soft translucent Gaussian blobs per image
  blob_sigma: tuple[float, float] = (0.03, 0.12)
  blob_alpha: float = 0.6  # peak opacity of a blob
  num_strokes: tuple[int, int] = (1, 5)  # thin line strokes per image
  stroke_length: tuple[float, float] = (0.1, 0.6)
  stroke_half_width_px: tuple[float, float] = (0.5, 1.5)
  min_contrast: float = 60.0  # min |object colour - mean colour under it| in a channel; <= 127
  contrast_grid: int = 16  # that mean is taken over about this many rows x columns
  # Layout.
  min_visible: float = 0.5  # fraction of its pixels each object keeps visible
  min_box_px: int = 2  # min box side, before and after occlusion
  place_tries: int = 10  # positions tried per object before it is skipped
  cross_arm: tuple[float, float] = (0.15, 0.4)  # half-thickness of a cross arm / half-side
  ring_inner: tuple[float, float] = (0.45, 0.7)  # inner radius of a ring / outer radius


# ---------------------------------------------------------------------------- shapes


@functools.lru_cache(maxsize=4096)
def _centred_grid(h, w):
  """Pixel-centre coordinates of an h x w crop, spanning [-1, 1] edge to edge.

  Returns signed ``(u [1, w], v [h, 1])`` and magnitudes ``(au, av)`` shifted so that the
  central pixel(s) sit at exactly 0 (for even sizes too): a shape that includes the
  points ``au = 0, |v| = 1`` and ``av = 0, |u| = 1`` then touches all four crop sides.
  Cached (sizes repeat), so the arrays are read-only.
  """
  u = (np.arange(w, dtype=np.float32) * np.float32(2.0 / (w - 1)) - 1.0)[None, :]
  v = (np.arange(h, dtype=np.float32) * np.float32(2.0 / (h - 1)) - 1.0)[:, None]
  au = np.maximum(np.abs(u) - 1.0 / (w - 1), 0.0)
  av = np.maximum(np.abs(v) - 1.0 / (h - 1), 0.0)
  for a in (u, v, au, av):
    a.flags.writeable = False
  return u, v, au, av


def _triangle_up(h, w):
  """Isosceles triangle, apex at the top centre, base along the bottom row: [h, w] bool."""
  _, v, au, _ = _centred_grid(h, w)
  return au <= (v + 1.0) / 2.0


def shape_mask(label, h, w, param, render=None):
  """Boolean [h, w] mask of shape class ``label`` filling an h x w crop (h, w >= 2).

  ``param`` in [0, 1) picks the per-instance variant: the triangle's orientation (up,
  down, left, right), the cross's arm thickness, the ring's inner radius. Every mask
  touches all four sides of its crop, so its tight box is the crop.
  """
  render = RenderParams() if render is None else render
  name = SHAPES[label]
  if name == "rectangle":
    return np.ones((h, w), bool)
  if name == "triangle":
    orientation = int(param * 4)
    mask = _triangle_up(h, w) if orientation < 2 else _triangle_up(w, h).T
    return mask[::-1] if orientation == 1 else mask[:, ::-1] if orientation == 3 else mask
  u, v, au, av = _centred_grid(h, w)
  if name == "cross":
    lo, hi = render.cross_arm
    arm = lo + (hi - lo) * param
    return (au <= arm) | (av <= arm)
  r2 = au * au + av * av
  if name == "ellipse":
    return r2 <= 1.0
  if name == "ring":
    lo, hi = render.ring_inner
    inner = lo + (hi - lo) * param
    # The hole uses the unshifted grid: the edge pixels (|u| = 1 or |v| = 1) stay filled.
    return (r2 <= 1.0) & (u * u + v * v >= inner * inner)
  raise ValueError(f"unknown shape {name!r}")


# ---------------------------------------------------------------------------- painting


def _scaled_count(u, count_range, clutter):
  """Number of distractors from u in [0, 1): uniform in the inclusive range, times clutter."""
  lo, hi = count_range
  return int(round(int(lo + u * (hi - lo + 1)) * clutter))


def _paint_background(u, size, clutter, render):
  """Base colour + linear gradient from u [7] in [0, 1): float32 planar [3, S, S]."""
  base = (255 * u[:3]).astype(np.float32)[:, None, None]
  angle = 2 * math.pi * float(u[3])  # Python floats keep the arrays float32
  delta = ((2 * u[4:7] - 1) * render.gradient_amp * clutter).astype(np.float32)[:, None, None]
  t = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5  # [S]
  ramp = math.cos(angle) * t[None, :] + math.sin(angle) * t[:, None]  # [S, S]
  return base + ramp[None] * delta  # [3, S, S] float32


def _crop_slices(size, x_lo, x_hi, y_lo, y_hi):
  """Integer crop covering [x_lo, x_hi] x [y_lo, y_hi] clipped to the image, or None."""
  x0, y0 = max(int(np.floor(x_lo)), 0), max(int(np.floor(y_lo)), 0)
  x1, y1 = min(int(np.ceil(x_hi)) + 1, size), min(int(np.ceil(y_hi)) + 1, size)
  return None if x0 >= x1 or y0 >= y1 else (x0, y0, x1, y1)


def _blend(img, crop, alpha, colour):
  """img[:, crop] += alpha * (colour - img[:, crop]), alpha [h, w]: composite in place."""
  x0, y0, x1, y1 = crop
  region = img[:, y0:y1, x0:x1]  # [3, h, w] view
  region += alpha[None] * (colour[:, None, None] - region)


def _paint_blob(u, img, render):
  """One soft Gaussian blob from u [6] (translucent, no hard edge, so never shape-like)."""
  size = img.shape[1]
  cx, cy = u[:2] * size
  lo, hi = render.blob_sigma
  sigma = (lo + (hi - lo) * u[2]) * size
  colour = (255 * u[3:6]).astype(np.float32)
  crop = _crop_slices(size, cx - 3 * sigma, cx + 3 * sigma, cy - 3 * sigma, cy + 3 * sigma)
  if crop is None:
    return
  x = np.arange(crop[0], crop[2], dtype=np.float32)[None, :] + np.float32(0.5 - cx)
  y = np.arange(crop[1], crop[3], dtype=np.float32)[:, None] + np.float32(0.5 - cy)
  alpha = render.blob_alpha * np.exp((x * x + y * y) * np.float32(-0.5 / sigma**2))
  _blend(img, crop, alpha, colour)


def _paint_stroke(u, img, render):
  """One thin anti-aliased line segment at a random angle, from u [8]."""
  size = img.shape[1]
  p0 = u[:2] * size
  angle = np.pi * u[2]
  lo, hi = render.stroke_length
  d = (lo + (hi - lo) * u[3]) * size * np.array([np.cos(angle), np.sin(angle)])
  lo, hi = render.stroke_half_width_px
  half = lo + (hi - lo) * u[4]
  colour = (255 * u[5:8]).astype(np.float32)
  p1, pad = p0 + d, half + 1
  crop = _crop_slices(size, min(p0[0], p1[0]) - pad, max(p0[0], p1[0]) + pad,
                      min(p0[1], p1[1]) - pad, max(p0[1], p1[1]) + pad)
  if crop is None:
    return
  x = np.arange(crop[0], crop[2], dtype=np.float32)[None, :] + np.float32(0.5 - p0[0])
  y = np.arange(crop[1], crop[3], dtype=np.float32)[:, None] + np.float32(0.5 - p0[1])
  dx, dy = np.float32(d[0]), np.float32(d[1])
  t = np.clip((x * dx + y * dy) * np.float32(1 / (d @ d)), 0.0, 1.0)  # [h, w] along segment
  dist = np.hypot(x - t * dx, y - t * dy)  # [h, w] pixels to the segment
  _blend(img, crop, np.clip(np.float32(half + 0.5) - dist, 0.0, 1.0), colour)


def _contrasting_colour(u, under, min_contrast):
  """Colour from u [5] that differs from ``under`` [3] by >= min_contrast in one channel."""
  colour = 255 * u[:3]
  c = int(3 * u[3])
  room_up, room_down = 255.0 - under[c], float(under[c])
  step = min_contrast + (max(room_up, room_down) - min_contrast) * u[4]
  colour[c] = under[c] + step if room_up >= room_down else under[c] - step
  return colour.astype(np.float32)


def _interleave(planes):
  """float32 [3, S, S] in [0, 255] -> rounded uint8 [S, S, 3].

  Painting works on channel planes because NumPy is slow on a trailing axis of length 3
  (every broadcast op would loop 3 elements at a time); one strided copy per channel
  interleaves them at the end.
  """
  planes = (planes + 0.5).astype(np.uint8).reshape(3, -1)  # [3, S*S]
  out = np.empty((planes.shape[1], 3), np.uint8)
  for c in range(3):
    out[:, c] = planes[c]
  size = int(round(math.sqrt(planes.shape[1])))
  return out.reshape(size, size, 3)


def _mean_under(region, mask, grid):
  """Mean colour [3] of ``region`` [3, h, w] under ``mask`` [h, w], on a ~grid x grid
  subsample (the exact mean over a large object costs more than drawing it)."""
  step = max(1, max(mask.shape) // grid)
  sub_mask = mask[::step, ::step]
  sub = region[:, ::step, ::step]
  count = np.count_nonzero(sub_mask)
  return sub[:, sub_mask].sum(1) / count if count else sub.mean((1, 2))


def paint_image(rng, draws, *, image_size, clutter, render, noise_bank):
  """Renders background, distractors, the objects in ``draws`` and noise: uint8 [S, S, 3].

  ``draws``: per object ``(x0, y0, mask [h, w])``, back to front. ``noise_bank``: float32
  [3, 2S, 2S] standard normals; an S x S window of it at a random offset is the noise.
  """
  u = rng.random(12)  # background (7), distractor counts (2), noise offset and sign (3)
  img = _paint_background(u[:7], image_size, clutter, render)
  num_blobs = _scaled_count(u[7], render.num_blobs, clutter)
  num_strokes = _scaled_count(u[8], render.num_strokes, clutter)
  for ub in rng.random((num_blobs, 6)):
    _paint_blob(ub, img, render)
  for us in rng.random((num_strokes, 8)):
    _paint_stroke(us, img, render)
  for (x0, y0, mask), uc in zip(draws, rng.random((len(draws), 5))):
    region = img[:, y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]]  # [3, h, w] view
    colour = _contrasting_colour(uc, _mean_under(region, mask, render.contrast_grid),
                                 render.min_contrast)
    for c in range(3):  # copyto(where=) is much faster than boolean-index assignment
      np.copyto(region[c], colour[c], where=mask)
  noise_std = render.noise_std * clutter
  if noise_std > 0:
    ox, oy = (int(v * (image_size + 1)) for v in u[9:11])
    scale = np.float32(noise_std if u[11] < 0.5 else -noise_std)
    img += noise_bank[:, oy:oy + image_size, ox:ox + image_size] * scale
  assert img.dtype == np.float32, img.dtype  # a float64 scalar would silently double the cost
  np.clip(img, 0, 255, out=img)
  return _interleave(img)
