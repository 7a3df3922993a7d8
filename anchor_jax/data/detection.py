"""What every file-backed detection dataset shares: box cleaning, counters, padded batches.

A reader (VOC folder, COCO JSON, TFDS VOC/COCO, Brainwash) says how to read one example's
``Annotation`` and image; ``DetectionDataset`` turns them into the fixed-shape batches the
trainer consumes, the untruncated ground truth the evaluator consumes, and the box shapes
k-means consumes. Conventions, the same for every reader:

* Pixel boxes are xyxy in the frame of the annotation's declared size (``height``,
  ``width``): VOC XML corners as written, COCO ``[x, y, x + w, y + h]``. Normalised boxes
  are pixel boxes divided by that size, exactly as TFDS's builders store them. An image
  whose decoded size differs from the declared one is taken as a rescaled copy (boxes keep
  the declared frame; ``orig_hw`` is the declared size; a warning names it).
* Cleaning (``clean_boxes``): a box is clipped to ``[0, W] x [0, H]`` (counted in
  ``fixed_boxes`` when that moves it) and dropped when no area is left (``xmin >= xmax``,
  reversed corners included, or wholly outside; counted in ``dropped_boxes``). Corners are
  never swapped: a reversed box is an annotation error whose intent is unknown.
* An image that cannot be decoded at batch time is replaced by the next readable index
  (``index + 1``, wrapping around; deterministic), counted once in ``skipped_images``,
  logged with its name, and never retried. The row's ``replaced`` flag is set: an eval
  loop must not score that row (its image and ground truth belong to another index).
* Boxes flagged ``difficult`` (VOC difficult, COCO iscrowd) stay in batches with their
  flag set, sorted after the others so that truncation to ``max_boxes`` cuts them
  first; the trainer should not make them positives (darknet's VOC labels leave them out).
* ``stats['truncated']`` adds, per ``batch`` call, the boxes beyond ``max_boxes``.
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
from absl import logging

from anchor_jax.data import augment as augment_lib
from anchor_jax.data import image_io
from anchor_jax.errors import UserError

STATS_KEYS = ("skipped_images", "dropped_boxes", "fixed_boxes", "truncated")


class DatasetError(UserError):
  """A dataset cannot be opened; the message tells the user what to fix (show it, no traceback)."""


class DataNotFoundError(DatasetError, FileNotFoundError):
  """The data is not where the config says; the message says what to put where or what to run."""


class DataFormatError(DatasetError, ValueError):
  """A whole annotation source (e.g. a COCO JSON file) cannot be parsed."""


@dataclasses.dataclass(frozen=True)
class Annotation:
  """One image's cleaned objects in original pixels, and what the image is."""
  boxes: np.ndarray  # [n, 4] float64 xyxy pixels
  labels: np.ndarray  # [n] int32 contiguous class index
  difficult: np.ndarray  # [n] bool
  height: int  # declared image size: the frame of ``boxes``
  width: int
  image_id: int
  name: str  # file name, for logs and exports
  areas: np.ndarray | None = None  # [n] COCO object areas (segment area), where known


def clean_boxes(boxes, height, width):
  """Clips xyxy pixel boxes [n, 4] to the image and drops those left without area.

  Returns ``(boxes [k, 4] float64, keep [k] int indices into the input, num_fixed,
  num_dropped)``. Non-finite boxes are dropped.
  """
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  finite = np.isfinite(boxes).all(1)  # [n]
  safe = np.where(finite[:, None], boxes, 0.0)
  clipped = np.clip(safe, 0.0, [width, height, width, height])  # [n, 4]
  ok = finite & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
  moved = ok & (clipped != safe).any(1)
  keep = np.flatnonzero(ok)
  return clipped[keep], keep, int(moved.sum()), int((~ok).sum())


def empty_annotation(image_id: int, name: str, height: int = 0, width: int = 0) -> Annotation:
  """An image without objects (size 0 x 0: unknown)."""
  return Annotation(np.zeros((0, 4)), np.zeros(0, np.int32), np.zeros(0, bool),
                    height, width, image_id, name)


class DetectionDataset:
  """Random-access detection data with the batch/ground-truth/k-means interface.

  Subclasses set ``num_examples`` and implement ``_annotation(index) -> Annotation``
  and either ``_image_path(index)`` (file-based readers), ``_image(index) -> uint8
  [H, W, 3]`` or a PIL RGB image (raising ``image_io.ImageError`` for an image that cannot
  be read), or ``_read(index)`` returning both when one read serves both.
  ``augment_config`` (an ``augment.AugmentConfig``) is passed as ``cfg`` to
  ``augment.augment`` for training batches.
  """

  num_examples: int
  # How box corners count pixels: "continuous" (COCO, Brainwash: x1 - x0 is the width) or
  # "voc" (corners are inclusive integer pixels; the VOC devkit adds 1 to widths).
  pixel_convention: str = "continuous"

  def __init__(self, *, class_names, category_ids, max_boxes: int, augment_config=None):
    if max_boxes < 1:
      raise ValueError(f"max_boxes must be >= 1, got {max_boxes}")
    if len(category_ids) != len(class_names):
      raise ValueError("class_names and category_ids differ in length")
    self.class_names = list(class_names)
    self.category_ids = [int(c) for c in category_ids]
    self.max_boxes = max_boxes
    self.augment_config = augment_config
    self.stats = dict.fromkeys(STATS_KEYS, 0)
    self._unreadable: set[int] = set()
    self._stats_lock = threading.Lock()   # batch() may run on several threads at once

  def __getstate__(self):
    """Picklable for worker processes (the grain loader): the lock is not copied."""
    state = dict(self.__dict__)
    del state["_stats_lock"]
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._stats_lock = threading.Lock()

  def _add_stats(self, **counts: int) -> None:
    """Adds to ``stats``; safe when several threads prepare batches."""
    with self._stats_lock:
      for key, n in counts.items():
        self.stats[key] += n

  # ------------------------------------------------------------------ subclass hooks

  def _annotation(self, index: int) -> Annotation:
    raise NotImplementedError

  def _image_path(self, index: int) -> str:
    raise NotImplementedError

  def _image(self, index: int):
    """Decodes ``_image_path(index)`` to a PIL image (augmentation takes it without an
    array copy); file-based readers only implement that hook."""
    path = self._image_path(index)
    try:
      return image_io.decode_image(path)
    except image_io.ImageError as e:
      raise image_io.ImageError(f"{path}: {e}") from e

  def _read(self, index: int) -> tuple[Annotation, np.ndarray]:
    return self._annotation(index), self._image(index)

  # ------------------------------------------------------------------ public interface

  def __len__(self) -> int:
    return self.num_examples

  def image_name(self, index: int) -> str:
    """The image's file name (or TFDS key), for logs and detection exports."""
    return self._annotation(self._check(index)).name

  def ground_truth(self, index: int):
    """``(boxes_px float64 [n, 4] xyxy original pixels, labels int32 [n], difficult bool [n])``,
    cleaned but not truncated."""
    ann = self._annotation(self._check(index))
    return ann.boxes.copy(), ann.labels.copy(), ann.difficult.copy()

  def ground_truth_areas(self, index: int):
    """float64 [n] COCO object areas aligned with ``ground_truth`` (COCO's small/medium/large
    split uses them), or None where the source has none (then use box areas)."""
    areas = self._annotation(self._check(index)).areas
    return None if areas is None else np.asarray(areas, np.float64).copy()

  def boxes_wh(self, num: int, *, image_size: int | None = None,
               scale: float | None = None) -> np.ndarray:
    """float32 [K, 2] pixel (w, h) of the non-difficult boxes of examples ``0..num-1`` after a
    plain resize to ``image_size`` x ``image_size``, or scaled by ``scale`` on both axes
    (annotations only, no image decoded)."""
    if (image_size is None) == (scale is None):
      raise ValueError("give one of image_size and scale")
    wh = []
    for index in range(min(num, self.num_examples)):
      ann = self._annotation(index)
      if not ann.height or not ann.width:
        continue  # size unknown (unreadable image header): no shape to report
      boxes = ann.boxes[~ann.difficult]  # [k, 4]
      factor = (np.array([scale, scale]) if scale is not None
                else image_size / np.array([ann.width, ann.height], np.float64))
      wh.append((boxes[:, 2:] - boxes[:, :2]) * factor)
    return np.concatenate(wh, 0).astype(np.float32) if wh else np.zeros((0, 2), np.float32)

  def batch(self, indices, *, image_size: int, augment_seeds=None) -> dict:
    """Padded batch of the examples at ``indices`` (see the module docstring).

    ``augment_seeds``: None for eval (whole image resized to S x S), else one int per
    example, the seed of ``augment.augment``. Returns image uint8 [B, S, S, 3], boxes
    float32 [B, M, 4] (xyxy in [0, 1]), labels int32 [B, M], mask/difficult bool [B, M],
    image_id int64 [B], orig_hw int32 [B, 2], replaced bool [B].
    """
    indices = np.asarray(indices, np.int64).reshape(-1)
    seeds = None if augment_seeds is None else np.asarray(augment_seeds).reshape(-1)
    if seeds is not None and len(seeds) != len(indices):
      raise ValueError(f"{len(seeds)} augment_seeds for {len(indices)} indices")
    b, m, s = len(indices), self.max_boxes, image_size
    out = dict(image=np.zeros((b, s, s, 3), np.uint8), boxes=np.zeros((b, m, 4), np.float32),
               labels=np.zeros((b, m), np.int32), mask=np.zeros((b, m), bool),
               difficult=np.zeros((b, m), bool), image_id=np.zeros(b, np.int64),
               orig_hw=np.zeros((b, 2), np.int32), replaced=np.zeros(b, bool))
    for row, index in enumerate(indices):
      used, ann, image = self._read_readable(self._check(int(index)))
      height, width = augment_lib.image_hw(image)
      if (height, width) != (ann.height, ann.width):
        # Boxes stay in the declared frame; the image is taken as a rescaled copy.
        logging.log_first_n(logging.WARNING, "%s: image is %dx%d but annotated as %dx%d", 10,
                            ann.name, width, height, ann.width, ann.height)
      seed = None if seeds is None else int(seeds[row])
      boxes, labels, difficult = self._transform(ann, image, size=s, seed=seed,
                                                 out=out["image"][row])
      order = np.argsort(difficult, kind="stable")[:m]  # non-difficult first
      self._add_stats(truncated=len(labels) - len(order))
      k = len(order)
      out["boxes"][row, :k] = boxes[order]
      out["labels"][row, :k] = labels[order]
      out["difficult"][row, :k] = difficult[order]
      out["mask"][row, :k] = True
      out["image_id"][row] = ann.image_id
      out["orig_hw"][row] = (ann.height, ann.width)
      out["replaced"][row] = used != index
    return out

  # ------------------------------------------------------------------ internals

  def _check(self, index: int) -> int:
    if not 0 <= index < self.num_examples:
      raise IndexError(f"index {index} out of range for {self.num_examples} examples")
    return index

  def _read_readable(self, index: int):
    """``(index used, Annotation, image)``: ``index`` or, if its image is unreadable, the
    next readable index (wrapping around)."""
    for step in range(self.num_examples):
      candidate = (index + step) % self.num_examples
      if candidate in self._unreadable:
        continue
      try:
        ann, image = self._read(candidate)
        return candidate, ann, image
      except image_io.ImageError as e:
        with self._stats_lock:     # threads may meet the same bad image: count it once
          first = candidate not in self._unreadable
          self._unreadable.add(candidate)
        if first:
          self._add_stats(skipped_images=1)
          logging.warning("Skipping unreadable image (index %d): %s", candidate, e)
    raise DataNotFoundError(f"None of the {self.num_examples} images can be read "
                            "(see the warnings above).")

  def _transform(self, ann: Annotation, image, *, size: int, seed, out: np.ndarray):
    """Eval resize or augmentation of ``image`` into ``out`` [S, S, 3]. Returns boxes
    [n, 4] in [0, 1], labels [n], difficult [n]."""
    if seed is None:
      out[...] = image_io.resize_square(image, size)
      boxes = ann.boxes / np.array([ann.width, ann.height] * 2, np.float64)
      return boxes, ann.labels, ann.difficult
    h, w = augment_lib.image_hw(image)
    boxes_px = ann.boxes * np.array([w / ann.width, h / ann.height] * 2)
    pixels, boxes_px, labels, keep = augment_lib.augment(
        image, boxes_px, ann.labels, out_size=size, seed=seed, cfg=self.augment_config,
        out=out)
    if pixels is not out:
      out[...] = pixels
    boxes = np.asarray(boxes_px, np.float64).reshape(-1, 4) / size
    keep = np.asarray(keep, np.int64).reshape(-1)
    return boxes, np.asarray(labels, np.int32), ann.difficult[keep]
