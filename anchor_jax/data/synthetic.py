"""Synthetic detection data: coloured shapes on cluttered backgrounds, drawn on the fly.

The default dataset of anchor_jax: it needs no files or network, and it is fast in NumPy,
so training, anchor learning and evaluation run anywhere. An example is a pure function
of ``(seed, split, index)``: two independent random streams are seeded with
``[seed, split_id, index, stream]``, one for the *layout* (how many objects, their
classes, box shapes, positions and shape parameters) and one for the *appearance*
(background, distractors, colours, noise). The boxes therefore never depend on the
clutter, and ``boxes_wh`` can read them without painting any image.

What an image holds, back to front:
  * a background: a random base colour plus a linear colour gradient;
  * distractors that are never labelled: soft translucent Gaussian blobs and thin
    anti-aliased line strokes at random angles;
  * the objects: solid shapes of the classes in ``SHAPES``, each in its own colour chosen
    to contrast with what lies under it, drawn in order of decreasing area (large objects
    at the back, small ones in front);
  * per-pixel Gaussian noise over everything.
``clutter`` scales the gradient, the number of distractors and the noise; ``clutter=0``
gives a plain one-colour background, which the tests use to check tight boxes.

Boxes. A shape fills its integer-pixel crop and touches all four sides of it, so an
unoccluded object's box is exactly its crop. A later object may cover part of an earlier
one; a placement is accepted only if every earlier object keeps at least
``min_visible`` of its pixels and a visible box of at least ``min_box_px`` per side (else
up to ``place_tries`` other positions are tried, then the object is skipped). The box
of an object is the tight box of its *visible* pixels. Objects lie fully inside the
image. At most ``max_boxes`` objects are generated, so the mask count is
``min(n, max_boxes)`` with ``n`` drawn from the preset's ``num_objects`` range (a
skipped placement can make it smaller; the first object is never skipped).
"""
from __future__ import annotations

import dataclasses
import functools
import statistics

import numpy as np

from anchor_jax.data.shapes import SHAPES, RenderParams, paint_image, shape_mask

__all__ = ["SHAPES", "PRESETS", "BoxPreset", "RenderParams", "SyntheticDataset",
           "sample_box_wh", "sample_layout"]

SPLITS = ("train", "eval")
_LAYOUT_STREAM, _APPEARANCE_STREAM = 0, 1


@dataclasses.dataclass(frozen=True)
class BoxPreset:
  """Distribution of box counts and shapes; sizes are fractions of the image side.

  The geometric-mean side ``sqrt(w*h)`` is log-normal (median ``size_median``, log-std
  ``size_sigma``) truncated to ``size_range``. ``|log(w/h)|`` is uniform between the logs
  of ``aspect_range``; a box is wide (w > h) with probability ``wide_fraction``, else
  tall. A box whose long side exceeds ``max_extent`` is shrunk, aspect kept.
  ``num_objects`` is an inclusive range.
  """
  num_objects: tuple[int, int]
  size_median: float
  size_sigma: float
  size_range: tuple[float, float]
  aspect_range: tuple[float, float]
  wide_fraction: float
  max_extent: float = 0.95


PRESETS = {
  # Many small near-square objects, like heads in Brainwash: sides ~3-9 % of the image.
  "tiny": BoxPreset(num_objects=(4, 20), size_median=0.05, size_sigma=0.3,
                    size_range=(0.03, 0.08), aspect_range=(1.0, 1.25), wide_fraction=0.5),
  # Extreme aspect ratios, like text lines: w/h from 1:6 to 6:1 (never within 1:1.5..1.5:1),
  # 80 % wide.
  "wide": BoxPreset(num_objects=(1, 8), size_median=0.15, size_sigma=0.5,
                    size_range=(0.05, 0.4), aspect_range=(1.5, 6.0), wide_fraction=0.8),
  # A VOC-like spread: sizes 5-90 % of the side, aspect 1:3..3:1, 1-6 objects.
  "mixed": BoxPreset(num_objects=(1, 6), size_median=0.25, size_sigma=0.6,
                     size_range=(0.05, 0.9), aspect_range=(1.0, 3.0), wide_fraction=0.5),
}


# ---------------------------------------------------------------------------- layout


def _truncated_lognormal(rng, n, median, sigma, lo, hi):
  """[n] samples of exp(N(log median, sigma)) restricted to [lo, hi] (inverse CDF)."""
  normal = statistics.NormalDist()
  c_lo = normal.cdf(np.log(lo / median) / sigma)
  c_hi = normal.cdf(np.log(hi / median) / sigma)
  q = rng.uniform(c_lo, c_hi, n)
  z = np.array([normal.inv_cdf(min(max(x, 1e-12), 1 - 1e-12)) for x in q])
  return median * np.exp(sigma * z)


def sample_box_wh(rng, preset, n, image_size, min_box_px):
  """[n, 2] integer (w, h) in pixels drawn from ``preset`` (see ``BoxPreset``)."""
  side = _truncated_lognormal(rng, n, preset.size_median, preset.size_sigma, *preset.size_range)
  log_lo, log_hi = np.log(preset.aspect_range[0]), np.log(preset.aspect_range[1])
  log_aspect = rng.uniform(log_lo, log_hi, n)
  log_aspect = np.where(rng.random(n) < preset.wide_fraction, log_aspect, -log_aspect)
  w = side * np.exp(log_aspect / 2) * image_size  # [n] pixels
  h = side * np.exp(-log_aspect / 2) * image_size
  shrink = np.minimum(1.0, preset.max_extent * image_size / np.maximum(w, h))
  grow = np.maximum(1.0, min_box_px / np.minimum(w * shrink, h * shrink))
  wh = np.stack([w, h], -1) * (shrink * grow)[:, None]
  return np.clip(np.rint(wh), min_box_px, image_size).astype(np.int64)


def _visible_box(owner, k, box):
  """Tight [x0, y0, x1, y1] (exclusive ends) of pixels owned by object k inside ``box``."""
  x0, y0, x1, y1 = box
  vis = owner[y0:y1, x0:x1] == k  # [h, w]
  cols, rows = np.flatnonzero(vis.any(0)), np.flatnonzero(vis.any(1))
  return (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)


@dataclasses.dataclass
class _Placed:
  """Bookkeeping of one placed object: its crop box and how much of it is still visible."""
  box: tuple[int, int, int, int]  # crop, xyxy, exclusive ends
  full: int  # pixels of its mask
  visible: int  # pixels not covered by later objects
  covered: bool = False  # whether any later object covers it (then its box may shrink)


def _try_place(owner, placed, box, mask, render):
  """Writes a new object into ``owner`` if every earlier object it covers keeps at least
  ``min_visible`` of its pixels and a visible box of ``min_box_px`` per side.

  ``owner`` [S, S]: index into ``placed`` of the top object per pixel, -1 for none.
  Returns whether the placement was kept (then ``placed`` gains an entry).
  """
  x0, y0, x1, y1 = box
  crop = owner[y0:y1, x0:x1]  # view
  under = crop[mask]  # [pixels] owners under the new mask
  crop[mask] = len(placed)
  if under.max() >= 0:
    hit = np.bincount(under[under >= 0], minlength=len(placed))
    hit_ids = np.flatnonzero(hit)
    ok = all(placed[j].visible - hit[j] >= render.min_visible * placed[j].full for j in hit_ids)
    for j in hit_ids if ok else ():
      vx0, vy0, vx1, vy1 = _visible_box(owner, j, placed[j].box)
      ok = min(vx1 - vx0, vy1 - vy0) >= render.min_box_px
      if not ok:
        break
    if not ok:
      crop[mask] = under
      return False
    for j in hit_ids:
      placed[j].visible -= int(hit[j])
      placed[j].covered = True
  pixels = int(mask.sum())
  placed.append(_Placed(box=box, full=pixels, visible=pixels))
  return True


def sample_layout(rng, *, preset, image_size, num_classes, max_boxes, render):
  """Objects of one image, in drawing order (back to front: decreasing area).

  Returns ``labels [m]``, visible ``boxes [m, 4]`` (integer pixels, xyxy, exclusive ends)
  and ``draws``: per object ``(x0, y0, mask [h, w])`` to paint in that order.
  """
  lo, hi = preset.num_objects
  n = min(int(rng.integers(lo, hi + 1)), max_boxes)
  labels = rng.integers(0, num_classes, n)
  wh = sample_box_wh(rng, preset, n, image_size, render.min_box_px)  # [n, 2]
  params = rng.random(n)
  tries = rng.random((n, render.place_tries, 2))  # candidate positions in [0, 1)
  owner = np.full((image_size, image_size), -1, np.int32)
  placed, kept, draws = [], [], []
  for i in np.argsort(-wh[:, 0] * wh[:, 1], kind="stable"):
    w, h = (int(x) for x in wh[i])
    mask = shape_mask(labels[i], h, w, params[i], render)
    for fx, fy in tries[i] * [image_size - w + 1, image_size - h + 1]:
      x0, y0 = int(fx), int(fy)
      if _try_place(owner, placed, (x0, y0, x0 + w, y0 + h), mask, render):
        kept.append(i)
        draws.append((x0, y0, mask))
        break
  boxes = [_visible_box(owner, k, p.box) if p.covered else p.box for k, p in enumerate(placed)]
  return labels[kept].astype(np.int32), np.array(boxes, np.int64).reshape(-1, 4), draws


# ---------------------------------------------------------------------------- dataset


@functools.lru_cache(maxsize=8)
def _noise_bank(seed, size):
  """Read-only float32 [3, 2S, 2S] standard-normal noise for one dataset seed.

  Each image adds an S x S window of it at a random offset: per-pixel noise at the cost of
  an add (drawing fresh normals per image would dominate the generation time).
  """
  rng = np.random.default_rng([seed, len(SPLITS), 0, 0])  # split slot no split uses
  bank = rng.standard_normal((3, 2 * size, 2 * size), dtype=np.float32)
  bank.flags.writeable = False
  return bank


class SyntheticDataset:
  pixel_convention = "continuous"
  """Shapes-on-clutter detection dataset, deterministic by (seed, split, index).

  ``num_examples``: size of the split (required for ``eval``); ``None`` makes ``train``
  unbounded. ``num_classes`` (default: all of ``SHAPES``) keeps the first shape classes.
  ``preset`` is a ``PRESETS`` name or a ``BoxPreset``; ``clutter`` in [0, 1] scales the
  background gradient, distractors and noise (0: plain background; boxes never change).
  ``image_id`` is the index within the split.
  """

  def __init__(self, *, preset, image_size, max_boxes, seed, split, num_classes=None,
               num_examples=None, clutter=1.0, render=None):
    if split not in SPLITS:
      raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "eval" and num_examples is None:
      raise ValueError("the eval split needs a fixed num_examples")
    render = RenderParams() if render is None else render
    num_classes = len(SHAPES) if num_classes is None else num_classes
    if not 1 <= num_classes <= len(SHAPES):
      raise ValueError(f"num_classes must be in 1..{len(SHAPES)}, got {num_classes}")
    if isinstance(preset, str):
      if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
      preset = PRESETS[preset]
    if max_boxes < 1 or image_size < 4 * render.min_box_px or seed < 0:
      raise ValueError("need max_boxes >= 1, image_size >= 4 * min_box_px, seed >= 0")
    if not (0 < render.min_visible <= 1 and render.min_box_px >= 2 and render.place_tries >= 1):
      raise ValueError("need 0 < min_visible <= 1, min_box_px >= 2, place_tries >= 1")
    self.preset, self.image_size, self.max_boxes = preset, image_size, max_boxes
    self.seed, self.split, self.num_classes = seed, split, num_classes
    self.num_examples, self.clutter, self.render = num_examples, clutter, render
    self.class_names = list(SHAPES[:num_classes])
    self.stats = {}   # nothing is ever skipped or dropped: boxes are generated valid

  def __len__(self):
    if self.num_examples is None:
      raise TypeError("unbounded train split has no length")
    return self.num_examples

  def _rng(self, split, index, stream):
    """Independent generator for one (split, index, stream)."""
    if index < 0 or (split == self.split and self.num_examples is not None
                     and index >= self.num_examples):
      raise IndexError(f"index {index} out of range for split {split!r}")
    return np.random.default_rng([self.seed, SPLITS.index(split), index, stream])

  def _layout(self, split, index):
    return sample_layout(self._rng(split, index, _LAYOUT_STREAM), preset=self.preset,
                         image_size=self.image_size, num_classes=self.num_classes,
                         max_boxes=self.max_boxes, render=self.render)

  def example(self, index):
    """One example: image uint8 [S, S, 3], boxes float32 [max_boxes, 4] (xyxy in [0, 1],
    zero-padded), labels int32 [max_boxes], mask bool [max_boxes], image_id int."""
    labels, boxes_px, draws = self._layout(self.split, index)
    image = paint_image(self._rng(self.split, index, _APPEARANCE_STREAM), draws,
                        image_size=self.image_size, clutter=self.clutter, render=self.render,
                        noise_bank=_noise_bank(self.seed, self.image_size))
    m = len(labels)
    out_boxes = np.zeros((self.max_boxes, 4), np.float32)
    out_boxes[:m] = boxes_px / self.image_size
    out_labels = np.zeros(self.max_boxes, np.int32)
    out_labels[:m] = labels
    return dict(image=image, boxes=out_boxes, labels=out_labels,
                mask=np.arange(self.max_boxes) < m, image_id=int(index))

  def batch(self, indices, *, image_size=None, augment_seeds=None):
    """Examples stacked on a leading axis B, with the keys every dataset returns
    (``anchor_jax.data.detection``): also difficult (all False), orig_hw, replaced.

    ``augment_seeds`` is accepted and ignored: every index is already a fresh random
    image. Images exist at one size only (``image_size`` must be None or equal it).
    """
    if image_size is not None and image_size != self.image_size:
      raise ValueError(f"synthetic images are generated at {self.image_size} px, not "
                       f"{image_size}; multi-scale training needs a real dataset.")
    del augment_seeds
    examples = [self.example(int(i)) for i in indices]
    out = {k: np.stack([e[k] for e in examples]) for k in examples[0] if k != "image_id"}
    out["image_id"] = np.array([e["image_id"] for e in examples], np.int64)
    out["difficult"] = np.zeros_like(out["mask"])
    out["orig_hw"] = np.full((len(examples), 2), self.image_size, np.int32)
    out["replaced"] = np.zeros(len(examples), bool)
    return out

  @property
  def category_ids(self):
    return list(range(self.num_classes))

  def ground_truth(self, index):
    """(boxes_px [n, 4] xyxy, labels [n], difficult [n]) of one example, in pixels."""
    labels, boxes_px, _ = self._layout(self.split, index)
    return boxes_px.astype(np.float64), labels.astype(np.int32), np.zeros(len(labels), bool)

  def ground_truth_areas(self, index):
    del index
    return None

  def boxes_wh(self, num, *, image_size=None):
    """float32 [M, 2] pixel (w, h) of the GT boxes of train examples 0..num-1 (all their
    boxes, in order), for k-means anchors. Uses the layout only, so no image is painted;
    the shapes are exactly those of ``example`` on the train split. A finite train split
    contributes at most its ``num_examples`` images."""
    if self.split == "train" and self.num_examples is not None:
      num = min(num, self.num_examples)
    scale = 1.0 if image_size is None else image_size / self.image_size
    wh = [b[:, 2:] - b[:, :2] for b in (self._layout("train", i)[1] for i in range(num))]
    wh = np.concatenate(wh, 0) * scale if wh else np.zeros((0, 2))
    return wh.astype(np.float32)
