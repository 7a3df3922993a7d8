"""A user's own data as COCO JSON (``dataset.name=coco_json``, ``dataset.path``).

Layout, as COCO 2017 ships it (``path`` a folder):
  ``{path}/annotations/instances_{split}.json`` and images at ``{path}/{split}/<file_name>``.
Or ``path`` is the JSON file itself: images are then looked up at
``{image_dir}/<file_name>``, ``image_dir`` defaulting to the JSON's own folder (the layout of
exports that keep ``_annotations.coco.json`` beside the images).

Conventions:
* Classes are the JSON's ``categories`` sorted by id, all of them (with or without
  annotations), so class index ``i`` is category ``category_ids[i]`` (the original ids,
  used again in exported detections).
* Examples are the ``images`` sorted by id; ``image_id`` is the original image id. Images
  without annotations are kept (no boxes).
* ``bbox`` ``[x, y, w, h]`` becomes xyxy ``[x, y, x + w, y + h]`` in pixels, as TFDS's
  ``coco`` builder and pycocotools read it; then ``detection.clean_boxes`` rules apply.
* ``iscrowd`` (and a ``"difficult": 1`` or ``"ignore": 1`` flag) makes a box *difficult*:
  scored by neither VOC metric nor pycocotools (there it is a crowd region), and kept out of
  training targets by the trainer. ``area`` is kept for COCO's size split
  (``ground_truth_areas``).
* An annotation naming an unknown image or category, or without a 4-number ``bbox``, is
  dropped (``stats['dropped_boxes']``); an image entry without ``id``/``file_name``, or
  whose size is missing and whose file header cannot be read, is skipped
  (``skipped_images``); a JSON file that does not parse is a ``DataFormatError``.
"""
from __future__ import annotations

import collections
import json
import os

import numpy as np
from absl import logging

from anchor_jax.data import detection, image_io

LAYOUT = """  {root}/annotations/instances_{split}.json   COCO instances JSON of the split
  {root}/{split}/<file_name>                   its images
(or set dataset.path to the JSON file itself; images then sit beside it)"""
_DIFFICULT_KEYS = ("iscrowd", "difficult", "ignore")


def resolve_paths(path, split, image_dir=None):
  """``(json path, image folder)`` for a dataset folder or an explicit JSON file."""
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  explicit = path.endswith(".json") or os.path.isfile(path)
  if explicit:
    json_path, images = path, image_dir or os.path.dirname(path)
  else:
    json_path = os.path.join(path, "annotations", f"instances_{split}.json")
    images = image_dir or os.path.join(path, split)
  images = os.path.abspath(os.path.expanduser(os.fspath(images)))
  layout = LAYOUT.format(root=os.path.dirname(path) if explicit else path, split=split)
  for found, what in ((os.path.isfile(json_path), f"COCO annotation file {json_path}"),
                      (os.path.isdir(images), f"Image folder {images}")):
    if not found:
      raise detection.DataNotFoundError(
          f"{what} not found. dataset.name=coco_json expects dataset.path to be a folder "
          f"laid out as\n{layout}")
  return json_path, images


def _load(json_path):
  try:
    with open(json_path, encoding="utf-8") as f:
      data = json.load(f)
    categories = sorted(data["categories"], key=lambda c: int(c["id"]))
    return data.get("images", []), data.get("annotations", []), categories
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise detection.DataFormatError(
        f"{json_path} is not a COCO instances file (needs 'images', 'annotations' and "
        f"'categories' with ids): {type(e).__name__}: {e}") from e


def _box(ann):
  """xyxy float [4] from a COCO ``bbox``, or None if it is not 4 numbers."""
  bbox = ann.get("bbox")
  try:
    x, y, w, h = (float(v) for v in bbox)
  except (TypeError, ValueError):
    return None
  return [x, y, x + w, y + h]


class CocoJsonDataset(detection.DetectionDataset):
  """COCO-JSON dataset; ``path`` a folder (see module docstring) or a ``.json`` file;
  ``image_dir`` overrides where images are found."""

  def __init__(self, *, path, split: str, max_boxes: int, image_dir=None,
               augment_config=None):
    json_path, self.image_dir = resolve_paths(path, split, image_dir)
    images, annotations, categories = _load(json_path)
    ids = [int(c["id"]) for c in categories]
    if len(set(ids)) != len(ids):
      raise detection.DataFormatError(f"{json_path}: repeated category ids {ids}")
    super().__init__(class_names=[str(c.get("name", c["id"])) for c in categories],
                     category_ids=ids, max_boxes=max_boxes, augment_config=augment_config)
    self.json_path, self.split = json_path, split
    class_of = {cid: i for i, cid in enumerate(ids)}
    by_image = collections.defaultdict(list)
    for ann in annotations:
      by_image[ann.get("image_id") if isinstance(ann, dict) else None].append(ann)
    image_ids = collections.Counter(int(i["id"]) for i in images if _has_id(i))
    repeated = sorted(k for k, n in image_ids.items() if n > 1)
    if repeated:   # annotations name images by id: a repeated id would mix two images' boxes
      raise detection.DataFormatError(
          f"{json_path}: {len(repeated)} image id(s) used by more than one image entry, e.g. "
          f"{repeated[:5]}; image ids must be unique")
    self._files, self._annotations = [], []
    known_images = set()
    for info in sorted((i for i in images if _has_id(i)), key=lambda i: int(i["id"])):
      known_images.add(info["id"])
      record = self._record(info, by_image.get(info["id"], []), class_of)
      if record is not None:
        self._files.append(record[0])
        self._annotations.append(record[1])
    self.stats["skipped_images"] += sum(not _has_id(i) for i in images)
    self.stats["dropped_boxes"] += sum(len(v) for k, v in by_image.items()
                                       if k not in known_images)
    self.num_examples = len(self._files)
    if not self.num_examples:
      raise detection.DataNotFoundError(f"{json_path}: no usable image entry")

  def _record(self, info, anns, class_of):
    """``(file path, Annotation)`` of one image entry, or None if it is skipped."""
    path = os.path.join(self.image_dir, str(info["file_name"]))
    try:
      hw = (int(info["height"]), int(info["width"]))
      if min(hw) <= 0:
        raise ValueError
    except (KeyError, TypeError, ValueError):
      try:
        hw = image_io.image_hw(path)
      except image_io.ImageError as e:
        self.stats["skipped_images"] += 1
        logging.warning("Skipping image %s: no size in the JSON and %s", path, e)
        return None
    usable = [a for a in anns if isinstance(a, dict) and _box(a) is not None
              and a.get("category_id") in class_of]
    # By annotation id, as TFDS orders them (stable; entries without an int id go last).
    usable.sort(key=lambda a: a["id"] if isinstance(a.get("id"), int) else float("inf"))
    boxes, keep, fixed, dropped = detection.clean_boxes([_box(a) for a in usable], *hw)
    kept = [usable[k] for k in keep]
    self.stats["fixed_boxes"] += fixed
    self.stats["dropped_boxes"] += dropped + len(anns) - len(usable)
    ann = detection.Annotation(
        boxes=boxes, labels=np.array([class_of[a["category_id"]] for a in kept], np.int32),
        difficult=np.array([any(bool(a.get(k, 0)) for k in _DIFFICULT_KEYS) for a in kept], bool),
        height=hw[0], width=hw[1], image_id=int(info["id"]), name=str(info["file_name"]),
        areas=np.array([float(a.get("area", (b[2] - b[0]) * (b[3] - b[1])))
                        for a, b in zip(kept, boxes)], np.float64))
    return path, ann

  def _annotation(self, index):
    return self._annotations[index]

  def _image_path(self, index):
    return self._files[index]


def _has_id(info):
  """Whether an ``images`` entry has an integer ``id`` and a ``file_name``."""
  if not (isinstance(info, dict) and "file_name" in info):
    return False
  try:
    return int(info["id"]) == info["id"]
  except (KeyError, TypeError, ValueError):
    return False
