"""Training augmentation as darknet's YOLOv2 does it.

One training example goes through (darknet ``data.c: load_data_region``):
  1. jitter: each side of the image moves by ``U(-jitter, jitter) x`` its size (the window
     can reach outside the image, which is padded), changing position, scale and aspect;
  2. that window is resized to ``S x S`` (one PIL ``resize`` call with a ``box``);
  3. a horizontal flip with probability 0.5;
  4. HSV distortion (``image.c: random_distort_image``): hue shifted by ``U(-hue, hue)`` of
     the colour circle, saturation and value scaled by ``rand_scale`` factors in [1/s, s].
Boxes follow the same affine map, are clipped to the output and dropped when degenerate.

Every random number comes from ``np.random.default_rng(seed)``, always the same ten
draws in the same order, so an example is a pure function of (image, boxes, seed) and
turning one knob off does not change what the others draw.

Padding: darknet's YOLOv2 ``crop_image`` repeats the edge pixels (``pad_mode='edge'``);
its later letterboxing loader fills 0.5 grey (``pad_mode='constant'``, ``fill=0.5``, our
default, as it adds no fake texture). Resampling: PIL's filters average over the source
when shrinking (antialiased); darknet's ``resize_image`` point-samples bilinearly.
Images arrive decoded (``image_io.decode_rgb``; the eval path resizes with
``image_io.resize_square``). Decoding JPEGs at a reduced DCT scale ("draft") was measured
and removed: 1.25x the stream at 128 px, nothing at 320 px and above, where detectors train.

Multi-scale training (darknet ``random=1``): ``multiscale_size`` picks the input size of
each block of ``every`` steps from a fixed tuple, so at most ``len(sizes)`` shapes compile.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from typing import Sequence

import numpy as np
from PIL import Image

from anchor_jax.core import box_ops, region

RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC, "box": Image.Resampling.BOX,
            "lanczos": Image.Resampling.LANCZOS}
PAD_MODES = ("constant", "edge")
_NUM_DRAWS = 10  # 4 jitter offsets, flip, hue, 2 x saturation, 2 x exposure


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Augmentation knobs; the defaults are darknet's ``yolov2-voc.cfg``.

  jitter: each side of the crop window moves by up to ``jitter`` x the image size, in
    [0, 0.5) so the window keeps a positive size.
  crop_px: > 0 instead takes a ``crop_px`` x ``crop_px`` window of source pixels at a
    uniformly random position (padded where the image is smaller), so objects keep their
    pixel size when the output size is ``crop_px`` (the paper's Brainwash recipe: 320 px
    crops of 640 x 480 frames, "no random scaling"). Needs ``jitter=0``.
  flip: mirror left-right with probability 0.5.
  hue: hue shift bound, a fraction of the colour circle (0.1 = +-36 degrees), in [0, 0.5].
  saturation, exposure: >= 1; the factor is ``U(1, s)`` or its inverse with p 0.5.
  min_box_px: a box narrower or shorter than this in output pixels is dropped.
  min_visible: a box is dropped when less than this fraction of its (in-image) area lies
    inside the crop window. 0.0 keeps any non-degenerate part, as darknet does.
  fill: value of padded pixels as a fraction of 255 (``pad_mode='constant'``).
  pad_mode: 'constant' (``fill``) or 'edge' (repeat the resized image's border pixels,
    like darknet's crop_image, which repeats the source's before resizing).
  resample: PIL filter for the crop resize (a key of ``RESAMPLE``).
  """
  jitter: float = 0.2
  crop_px: float = 0.0
  flip: bool = True
  hue: float = 0.1
  saturation: float = 1.5
  exposure: float = 1.5
  min_box_px: float = 2.0
  min_visible: float = 0.0
  fill: float = 0.5
  pad_mode: str = "constant"
  resample: str = "bilinear"

  def __post_init__(self):
    errors = []
    if not 0 <= self.jitter < 0.5:
      errors.append(f"jitter={self.jitter}: must be in [0, 0.5)")
    if not self.crop_px >= 0:
      errors.append(f"crop_px={self.crop_px}: must be >= 0 (0 turns native crops off)")
    elif self.crop_px and self.jitter:
      errors.append(f"crop_px={self.crop_px} with jitter={self.jitter}: native-scale crops "
                    "take no jitter; set jitter=0")
    if not 0 <= self.hue <= 0.5:
      errors.append(f"hue={self.hue}: must be in [0, 0.5]")
    for name in ("saturation", "exposure"):
      if not getattr(self, name) >= 1:
        errors.append(f"{name}={getattr(self, name)}: must be >= 1 (1 turns it off)")
    if not self.min_box_px >= 0:
      errors.append(f"min_box_px={self.min_box_px}: must be >= 0")
    if not 0 <= self.min_visible <= 1:
      errors.append(f"min_visible={self.min_visible}: must be in [0, 1]")
    if not 0 <= self.fill <= 1:
      errors.append(f"fill={self.fill}: must be in [0, 1]")
    if self.pad_mode not in PAD_MODES:
      errors.append(f"pad_mode={self.pad_mode!r}: choose one of {PAD_MODES}")
    if self.resample not in RESAMPLE:
      errors.append(f"resample={self.resample!r}: choose one of {tuple(RESAMPLE)}")
    if errors:
      raise ValueError("Bad augment config: " + "; ".join(errors))

  @classmethod
  def from_config(cls, config) -> "AugmentConfig":
    """From a ConfigDict (or dict) with these field names; missing keys keep the default,
    unknown keys raise (they are typos)."""
    if config is None:
      return cls()
    names = {f.name for f in dataclasses.fields(cls)}
    given = dict(config.items())
    unknown = sorted(set(given) - names)
    if unknown:
      raise ValueError(f"Unknown augment keys {unknown}; known: {sorted(names)}")
    return cls(**given)

  @classmethod
  def identity(cls, **overrides) -> "AugmentConfig":
    """No jitter, flip or colour change: ``augment`` then equals ``image_io.resize_square``."""
    return cls(**{"jitter": 0.0, "flip": False, "hue": 0.0, "saturation": 1.0,
                  "exposure": 1.0, **overrides})


@dataclasses.dataclass(frozen=True)
class AugmentParams:
  """The random choices for one example.

  window: crop window (x0, y0, x1, y1) in source pixels; may reach outside the image.
  flip: mirror the output left-right.
  hue: hue shift, a fraction of the colour circle.
  saturation, exposure: multiplicative factors for S and V.
  """
  window: tuple[float, float, float, float]
  flip: bool
  hue: float
  saturation: float
  exposure: float


def _rand_scale(u_scale: float, u_invert: float, s: float) -> float:
  """darknet ``rand_scale``: ``U(1, s)``, inverted with probability 0.5."""
  scale = 1.0 + u_scale * (s - 1.0)
  return 1.0 / scale if u_invert < 0.5 else scale


def _crop_offset(u: float, size: int, crop: float) -> float:
  """A whole-pixel offset of a ``crop``-wide window, uniform over the positions that keep
  it inside ``size`` (or, for a smaller image, that keep the image inside it)."""
  lo, hi = sorted((0.0, size - crop))
  return float(lo + math.floor(u * (math.floor(hi - lo) + 1)))


def sample_params(rng: np.random.Generator, width: int, height: int,
                  cfg: AugmentConfig) -> AugmentParams:
  """Draws the augmentation of a ``width x height`` image (always ``_NUM_DRAWS`` numbers)."""
  u = rng.random(_NUM_DRAWS)
  if cfg.crop_px:
    x0, y0 = (_crop_offset(v, size, cfg.crop_px) for v, size in ((u[0], width), (u[2], height)))
    window = (x0, y0, x0 + cfg.crop_px, y0 + cfg.crop_px)
  else:
    left, right, top, bottom = (2 * u[:4] - 1) * cfg.jitter * np.array(
        [width, width, height, height], np.float64)
    window = (float(left), float(top), float(width - right), float(height - bottom))
  return AugmentParams(
      window=window,
      flip=bool(cfg.flip and u[4] < 0.5),
      hue=float((2 * u[5] - 1) * cfg.hue),
      saturation=_rand_scale(u[6], u[7], cfg.saturation),
      exposure=_rand_scale(u[8], u[9], cfg.exposure))


def _covered(lo: float, hi: float, size: float, out_size: int) -> tuple[int, int]:
  """Whole output pixels [o0, o1) whose source span lies inside [0, size] for a window
  side [lo, hi) mapped onto ``out_size`` pixels."""
  step = (hi - lo) / out_size                  # source pixels per output pixel
  o0 = math.ceil(-lo / step - 1e-6)
  o1 = math.floor((size - lo) / step + 1e-6)
  return min(max(o0, 0), out_size), min(max(o1, 0), out_size)


def _bands(image: Image.Image, window, out_size: int, cfg: AugmentConfig) -> list[np.ndarray]:
  """The ``window`` (x0, y0, x1, y1) of an RGB ``image`` resized to three uint8 [S, S]
  planes (R, G, B).

  Only the output pixels whose source lies inside the image are resampled, by one PIL
  ``resize`` with the exactly corresponding ``box``, so the affine map is the window's;
  the rest is padded per ``cfg.pad_mode``. This skips building a padded source image.
  Planes, as PIL's ``split`` makes them, because the colour distortion works on planes.
  (Resizing the three bands instead of the RGB image was measured: slower.)
  """
  x0, y0, x1, y1 = window
  width, height = image.size
  ox0, ox1 = _covered(x0, x1, width, out_size)
  oy0, oy1 = _covered(y0, y1, height, out_size)
  fill = round(cfg.fill * 255)
  if ox1 <= ox0 or oy1 <= oy0:                 # the window misses the image
    return [np.full((out_size, out_size), fill, np.uint8)] * 3
  sx, sy = (x1 - x0) / out_size, (y1 - y0) / out_size
  box = (max(0.0, x0 + ox0 * sx), max(0.0, y0 + oy0 * sy),
         min(float(width), x0 + ox1 * sx), min(float(height), y0 + oy1 * sy))
  size = (ox1 - ox0, oy1 - oy0)
  part = image.resize(size, RESAMPLE[cfg.resample], box=box)
  if size != (out_size, out_size):
    if cfg.pad_mode == "edge":
      pads = ((oy0, out_size - oy1), (ox0, out_size - ox1))
      return [np.pad(np.asarray(band), pads, mode="edge") for band in part.split()]
    canvas = Image.new("RGB", (out_size, out_size), (fill,) * 3)
    canvas.paste(part, (ox0, oy0))
    part = canvas
  return [np.asarray(band) for band in part.split()]


def _interleave(planes, out: np.ndarray) -> np.ndarray:
  """Writes three [H, W] planes into ``out`` [H, W, 3] (any strides: a flipped view too)."""
  for channel, plane in enumerate(planes):
    out[..., channel] = plane
  return out


def crop_resize(image: Image.Image, window, out_size: int, cfg: AugmentConfig) -> np.ndarray:
  """The ``window`` (x0, y0, x1, y1) of an RGB ``image`` resized to uint8 [S, S, 3]
  (see ``_bands``)."""
  return _interleave(_bands(image, window, out_size, cfg),
                     np.empty((out_size, out_size, 3), np.uint8))


def flip_boxes(boxes_px: np.ndarray, width: float) -> np.ndarray:
  """Mirrors xyxy boxes [..., 4] in an image ``width`` pixels wide."""
  b = np.asarray(boxes_px)
  return np.stack([width - b[..., 2], b[..., 1], width - b[..., 0], b[..., 3]], axis=-1)


def transform_boxes(boxes_px: np.ndarray, window, image_wh: tuple[int, int], out_size: int,
                    *, min_box_px: float, min_visible: float):
  """Maps xyxy source-pixel boxes [n, 4] through the crop ``window`` to output pixels.

  Boxes are first clipped to the image (nothing lies outside it), then mapped, clipped to
  [0, S], and kept if finite, at least ``min_box_px`` on each side (and non-empty), and
  at least ``min_visible`` of their in-image area survives. Returns (boxes [k, 4] float64,
  keep_index [k]).
  """
  width, height = image_wh
  boxes = np.asarray(boxes_px, np.float64).reshape(-1, 4)         # [n, 4]
  finite = np.isfinite(boxes).all(axis=1)
  boxes = np.clip(np.where(finite[:, None], boxes, 0.0), 0, [width, height, width, height])
  x0, y0, x1, y1 = window
  scale = np.array([out_size / (x1 - x0), out_size / (y1 - y0)] * 2)
  mapped = (boxes - np.array([x0, y0, x0, y0])) * scale           # [n, 4]
  clipped = np.clip(mapped, 0, out_size)
  w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
  keep = (finite & (w > 0) & (h > 0) & (w >= min_box_px) & (h >= min_box_px)
          & (box_ops.box_area(clipped) >= min_visible * box_ops.box_area(mapped)))
  index = np.flatnonzero(keep)
  return clipped[index], index


def _select(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> None:
  """``dst[mask] = src[mask]`` as arithmetic (masked NumPy writes are ~10x slower);
  overwrites ``src``."""
  src -= dst
  src *= mask
  dst += src


_SCRATCH = threading.local()
_SCRATCH_SHAPES = 3          # image sizes whose buffers a thread keeps (multi-scale training)


def _scratch(height: int, width: int):
  """This thread's work buffers for [H, W] images: float32 [7, H, W], uint8 [3, H, W] and
  bool [2, H, W], kept between calls. Fresh image-sized temporaries cost more than the
  arithmetic on them (page faults), so ``_distort_planes`` allocates nothing."""
  cache = getattr(_SCRATCH, "buffers", None)
  if cache is None:
    cache = _SCRATCH.buffers = {}
  key = (height, width)
  buffers = cache.pop(key, None)
  if buffers is None:
    buffers = (np.empty((7, height, width), np.float32), np.empty((3, height, width), np.uint8),
               np.empty((2, height, width), bool))
  cache[key] = buffers                                  # the most recent last
  while len(cache) > _SCRATCH_SHAPES:
    del cache[next(iter(cache))]
  return buffers


def _distort_planes(planes, out: np.ndarray, *, hue: float, saturation: float,
                    exposure: float) -> np.ndarray:
  """``distort_hsv_exact``'s arithmetic on three uint8 [H, W] planes (R, G, B), written
  into ``out`` [H, W, 3] (any strides). Float32 planes, contiguous, in reused buffers: the
  same float operations as the reference on the same values (V, D and the hue numerators
  are whole numbers, exact in float32, so forming them from uint8 planes changes nothing),
  so the result is the reference's bit for bit."""
  red, green, blue = planes
  f32, u8, masks = _scratch(*red.shape)
  rgb, v, d, h, tmp = f32[:3], f32[3], f32[4], f32[5], f32[6]
  v8, d8 = u8[0], u8[1]
  np.maximum(red, green, out=v8)                                  # V, in uint8
  np.maximum(v8, blue, out=v8)
  for channel, plane in zip(rgb, planes):
    np.copyto(channel, plane)
  np.copyto(v, v8)
  if hue == 0:
    rgb -= v
    rgb *= saturation
    rgb += v
    rgb *= exposure
  else:
    np.minimum(red, green, out=d8)
    np.minimum(d8, blue, out=d8)
    np.subtract(v8, d8, out=d8)                                   # D = max - min
    np.copyto(d, d8)
    green_max, red_max = masks
    np.equal(green, v8, out=green_max)
    np.equal(red, v8, out=red_max)
    r, g, b = rgb
    np.multiply(d, 4, out=h)                                      # blue is max: 4+(r-g)/d
    h += r
    h -= g
    np.multiply(d, 2, out=tmp)                                    # green is max: 2+(b-r)/d
    tmp += b
    tmp -= r
    _select(h, tmp, green_max)
    np.subtract(g, b, out=tmp)                                    # red is max: (g-b)/d
    _select(h, tmp, red_max)
    np.maximum(d8, 1, out=d8)          # d is 0 (then h = 0) or >= 1
    np.copyto(tmp, d8)
    h /= tmp                                                      # sextants in [-1, 5)
    h += 6 * hue
    np.multiply(h, 1 / 6, out=tmp)
    np.floor(tmp, out=tmp)
    tmp *= 6
    h -= tmp                                                      # wrapped to [0, 6)
    for channel, centre in ((r, 3), (g, 2), (b, 4)):  # red: |h-3| - 1; green, blue: 2 - |h-c|
      np.subtract(h, centre, out=channel)
      np.abs(channel, out=channel)
      if centre == 3:
        channel -= 1
      else:
        np.subtract(2, channel, out=channel)
    np.clip(rgb, 0, 1, out=rgb)        # trapezoids g_c(h); np.clip: maximum/minimum are slower
    d *= saturation * exposure                                    # k*f*D
    rgb *= d
    v *= exposure
    v -= d
    rgb += v
  np.clip(rgb, 0, 255, out=rgb)
  np.rint(rgb, out=rgb)
  np.copyto(u8, rgb, casting="unsafe")
  return _interleave(u8, out)


def distort_hsv(image: np.ndarray, *, hue: float, saturation: float,
                exposure: float) -> np.ndarray:
  """darknet ``distort_image`` on uint8 [H, W, 3]: H += hue (of the circle), S *= saturation,
  V *= exposure, back to RGB, each channel clipped to [0, 255] (S and V are not clipped
  before, as in darknet). Returns a new array.

  Vectorised through the hexcone identity: with V = max, D = max - min and hue h in
  sextants, channel c = V - S*V*(1 - g_c(h)) = (V - D) + D*g_c(h) with trapezoids g_c, so
  scaling S and V gives ``f*(V - k*D) + f*k*D*g_c(h + 6*hue)``; in float32 on contiguous
  planes in reused buffers (``_distort_planes``: ~3x the speed of the same math on a
  strided [3, H, W] view with fresh temporaries, which it replaced bit for bit).

  Tolerance against darknet's formulas in float64 (``distort_hsv_exact``), tested on
  random pixels, greys, pure colours and ties for draws across the knob ranges: at most 1
  uint8 level, where float32 rounding lands on the other side of a .5: on random draws
  under 0.1 % of the values (measured: 6e-6 on average over 60 draws of 256 x 256 random
  pixels), more on round draws whose values sit on .5 ties (f*k = 1: ~10 %). darknet
  keeps float pixels, so 1 level is below the uint8 quantisation every loader applies.

  A fused per-pixel numba kernel of the same float32 arithmetic (bit-identical to this on
  random pixels and greys) was measured in a side test, not in the repo, and not adopted:
  4.6 vs 4.0 ms at 416 px (idle, 30 calls, median). Why it is slower was not found:
  replacing its ``rint`` and ``floor`` by integer casts did not speed it up.
  """
  image = np.asarray(image)
  if hue == 0 and saturation == 1 and exposure == 1:
    return image
  planes = [np.ascontiguousarray(image[..., channel]) for channel in range(3)]
  return _distort_planes(planes, np.empty(image.shape, np.uint8), hue=hue,
                         saturation=saturation, exposure=exposure)


def distort_hsv_exact(image: np.ndarray, *, hue: float, saturation: float,
                      exposure: float) -> np.ndarray:
  """The reference of ``distort_hsv`` (the tests compare the two): darknet's own per-pixel
  formulas (``image.c``: ``rgb_to_hsv``, S *= saturation and V *= exposure unclipped, H +=
  hue wrapped once, ``hsv_to_rgb`` through its sextant index and p, q, t, then
  ``constrain_image``) on uint8 [H, W, 3] / 255, in float64, rounded to uint8. Slow and
  plain: a transcription to check against, not to train with. One departure: a shifted
  hue of exactly 1 wraps to 0 (darknet wraps only above 1, so index 6 takes the magenta
  sextant's formula: red turns magenta; its float draws almost never land there)."""
  rgb = np.moveaxis(np.asarray(image, np.float64) / 255, -1, 0)   # [3, H, W]
  r, g, b = rgb
  v = rgb.max(0)
  delta = v - rgb.min(0)
  safe = np.where(delta > 0, delta, 1.0)
  h = np.select([r == v, g == v], [(g - b) / safe, 2 + (b - r) / safe], 4 + (r - g) / safe)
  h = np.where(delta > 0, h, 0.0)                  # grey: darknet's 0/0, unused as s = 0
  h = np.where(h < 0, h + 6, h) / 6
  s = np.where(v > 0, delta / np.where(v > 0, v, 1.0), 0.0) * saturation
  v = v * exposure
  h = h + hue
  h = np.where(h >= 1, h - 1, np.where(h < 0, h + 1, h)) * 6
  index = np.floor(h)
  f = h - index
  p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
  cases = [index == k for k in range(5)]
  out = np.stack([np.select(cases, [v, q, p, p, t], v), np.select(cases, [t, v, v, q, p], p),
                  np.select(cases, [p, p, t, v, v], q)])
  out = np.where(s == 0, v, out)
  return np.rint(np.clip(np.moveaxis(out, 0, -1), 0, 1) * 255).astype(np.uint8)


def _as_labels(labels, n: int) -> np.ndarray:
  labels = np.asarray(labels).reshape(-1)
  if labels.shape[0] != n:
    raise ValueError(f"{n} boxes but {labels.shape[0]} labels")
  return labels


def _rgb_image(image) -> Image.Image:
  """A PIL RGB image (what ``image_io.decode_image`` returns) as it is, or uint8
  [H, W, 3] (``image_io.decode_rgb``) as a PIL RGB image."""
  if isinstance(image, Image.Image):
    if image.mode != "RGB" or min(image.size) < 1:
      raise ValueError(f"image must be an RGB image of at least 1 x 1 pixels, got "
                       f"{image.mode} {image.size}")
    return image
  array = np.asarray(image)
  if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3 or min(
      array.shape[:2]) < 1:
    raise ValueError(f"image must be uint8 [H, W, 3] with H, W >= 1 (image_io.decode_rgb), "
                     f"got {array.dtype} {array.shape}")
  return Image.fromarray(np.ascontiguousarray(array))


def image_hw(image) -> tuple[int, int]:
  """(height, width) of a PIL image or of an [H, W, ...] array."""
  if isinstance(image, Image.Image):
    return image.height, image.width
  return tuple(np.shape(image)[:2])


def apply_params(image, boxes_px, labels, params: AugmentParams, *, out_size: int,
                 cfg: AugmentConfig, out: np.ndarray | None = None):
  """Applies drawn ``params`` (see ``augment``, which samples them)."""
  pil = _rgb_image(image)
  boxes = np.asarray(boxes_px, np.float64).reshape(-1, 4)
  labels = _as_labels(labels, boxes.shape[0])
  planes = _bands(pil, params.window, out_size, cfg)              # 3 x [S, S]
  boxes_out, keep = transform_boxes(boxes, params.window, pil.size, out_size,
                                    min_box_px=cfg.min_box_px, min_visible=cfg.min_visible)
  if out is None:
    out = np.empty((out_size, out_size, 3), np.uint8)
  elif out.shape != (out_size, out_size, 3) or out.dtype != np.uint8:
    raise ValueError(f"out must be uint8 {(out_size, out_size, 3)}, got {out.dtype} {out.shape}")
  target = out
  if params.flip:                      # the planes are written mirrored: no extra copy
    target = out[:, ::-1]
    boxes_out = flip_boxes(boxes_out, out_size)
  if params.hue == 0 and params.saturation == 1 and params.exposure == 1:
    _interleave(planes, target)
  else:
    _distort_planes(planes, target, hue=params.hue, saturation=params.saturation,
                    exposure=params.exposure)
  return out, boxes_out.astype(np.float32), labels[keep], keep


def augment(image, boxes_px, labels, *, out_size: int, seed, cfg: AugmentConfig,
            out: np.ndarray | None = None):
  """One darknet-style training example.

  image: uint8 [H, W, 3] or a PIL RGB image (``image_io.decode_image``: no array copy).
  boxes_px: float [n, 4] xyxy in the image's pixels; labels: [n].
  seed: an int or a sequence of ints for ``np.random.default_rng``.
  out: optional uint8 [S, S, 3] to write the image into (e.g. a row of a batch).
  Returns image uint8 [S, S, 3] (``out`` when given), boxes float32 [k, 4] xyxy in output
  pixels (divide by S to normalise), labels [k] and keep_index int [k] (positions in the
  input).
  """
  height, width = image_hw(image)
  params = sample_params(np.random.default_rng(seed), width, height, cfg)
  return apply_params(image, boxes_px, labels, params, out_size=out_size, cfg=cfg, out=out)


def multiscale_size(step: int, *, sizes: Sequence[int], every: int, seed: int) -> int:
  """Training input size at ``step``: one of ``sizes``, drawn uniformly per block of
  ``every`` steps from ``default_rng([seed, step // every])`` (darknet: every 10 batches
  from 320..608 step 32). Pure, so every process and a resumed run agree, and the
  number of compiled input shapes is at most ``len(sizes)``."""
  stride = region.STRIDE
  if not sizes or any(int(s) != s or s < stride or s % stride for s in sizes):
    raise ValueError(f"sizes={tuple(sizes)}: need positive multiples of {stride} (the stride)")
  if every < 1 or step < 0:
    raise ValueError(f"need every >= 1 and step >= 0, got every={every}, step={step}")
  block = np.random.default_rng([seed, step // every])
  return int(sizes[int(block.integers(len(sizes)))])
