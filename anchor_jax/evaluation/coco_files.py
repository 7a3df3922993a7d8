"""Scoring detections given as files: COCO-format ground truth and COCO results.

``evaluate_files(gt, dets, metric)`` is what ``python -m anchor_jax.evaluate --gt --dets``
prints. GT.json is COCO-format ground truth (``images``, ``annotations`` with ``bbox``
[x, y, w, h] in pixels, ``category_id``, optional ``"difficult": 1`` and ``iscrowd``;
``categories``). DETS.json is a COCO results list (``image_id``, ``category_id``, ``bbox``
[x, y, w, h], ``score``). Boxes are taken as xyxy = [x, y, x + w, y + h]; the VOC metrics
then take the devkit's +1 pixel widths when ``plus_one`` (``voc_metric.py``). Categories get
contiguous indices in ascending id order.
"""
from __future__ import annotations

import collections
import json

import numpy as np

from anchor_jax.errors import UserError
from anchor_jax.evaluation import accumulator


class InputError(UserError, ValueError):
  """Malformed ground-truth or detection input."""


def load_json(source):
  """Parsed JSON from a path; already-parsed objects pass through."""
  if isinstance(source, (dict, list)):
    return source
  try:
    with open(source, encoding="utf-8") as f:
      return json.load(f)
  except OSError as e:
    raise InputError(f"{source}: cannot read ({e.strerror})") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise InputError(f"{source}: not a JSON file ({e})") from None


def _xyxy(xywh):
  """[n, 4] [x, y, w, h] -> [n, 4] [x0, y0, x1, y1]."""
  xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
  return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def evaluator_from_coco_gt(gt: dict, metric: str, *, plus_one: bool | None = None):
  """A DetectionEvaluator holding a COCO-format GT; also returns {cat id: index}."""
  try:
    categories = sorted(gt["categories"], key=lambda c: c["id"])
    images = gt["images"]
    annotations = gt.get("annotations", [])
    known_images = {image["id"] for image in images}
  except (KeyError, TypeError) as e:
    raise InputError(f"ground truth is not COCO format: missing {e}") from None
  cat_index = {c["id"]: k for k, c in enumerate(categories)}
  evaluator = accumulator.DetectionEvaluator(
      metric=metric, class_names=[str(c.get("name", c["id"])) for c in categories],
      category_ids=[c["id"] for c in categories], plus_one=plus_one)
  per_image = collections.defaultdict(list)
  for i, ann in enumerate(annotations):
    if ann.get("image_id") not in known_images:
      raise InputError(f'GT annotation {i} names unknown image_id {ann.get("image_id")!r}')
    if ann.get("category_id") not in cat_index:
      raise InputError(f'GT annotation {i} names unknown category_id {ann.get("category_id")!r}')
    per_image[ann["image_id"]].append(ann)
  for image in images:
    try:
      _add_image_gt(evaluator, image, per_image.get(image["id"], []), cat_index)
    except (KeyError, TypeError, ValueError) as e:
      raise InputError(f'GT image {image.get("id")!r}: {e!r}') from None
  return evaluator, cat_index


def _add_image_gt(evaluator, image: dict, anns: list, cat_index: dict):
  """Registers one COCO GT image and its annotations."""
  has_hw = "height" in image and "width" in image
  evaluator.add_ground_truth(
      image["id"], _xyxy([a["bbox"] for a in anns]),
      [cat_index[a["category_id"]] for a in anns],
      difficult=[bool(a.get("difficult", 0)) for a in anns],
      iscrowd=[bool(a.get("iscrowd", 0)) for a in anns],
      areas=[a["area"] if "area" in a else a["bbox"][2] * a["bbox"][3] for a in anns],
      image_hw=(image["height"], image["width"]) if has_hw else None)


def add_coco_results(evaluator, dets: list, cat_index: dict, image_ids) -> int:
  """Adds COCO-format results; unknown ids raise UnknownIdError naming them."""
  if not isinstance(dets, list):
    raise InputError("detections must be a JSON list of COCO results")
  try:
    det_images = [d["image_id"] for d in dets]
    det_cats = [d["category_id"] for d in dets]
    boxes = np.asarray([d["bbox"] for d in dets], np.float64).reshape(-1, 4)
    scores = np.asarray([d["score"] for d in dets], np.float64).reshape(-1)
    id_sets = (set(det_images), set(det_cats))  # ids must be hashable
  except (KeyError, TypeError, ValueError) as e:
    bad = next((i for i, d in enumerate(dets) if not _well_formed(d)), None)
    raise InputError(f"detection {bad} is malformed: {dets[bad]!r:.200}" if bad is not None
                     else f"malformed detections: {e}") from None
  for name, values, present, known in (("image_id", det_images, id_sets[0], set(image_ids)),
                                       ("category_id", det_cats, id_sets[1], set(cat_index))):
    unknown = present - known
    if unknown:
      first = next(i for i, v in enumerate(values) if v in unknown)
      raise accumulator.UnknownIdError(
          f"detection {first} names unknown {name} {values[first]!r} "
          f"({len(unknown)} unknown {name}s in all)")
  classes = np.fromiter((cat_index[c] for c in det_cats), np.int64, len(det_cats))
  return evaluator.add_detections(det_images, _xyxy(boxes), scores, classes)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _well_formed(det) -> bool:
  """True if ``det`` looks like one COCO box result (NaN/None values allowed)."""
  if not isinstance(det, dict) or not {"image_id", "category_id", "bbox", "score"} <= det.keys():
    return False
  bbox, score = det["bbox"], det["score"]
  ids_ok = all(isinstance(det[k], (int, str)) for k in ("image_id", "category_id"))
  return (ids_ok and isinstance(bbox, list) and len(bbox) == 4
          and all(v is None or _is_number(v) for v in bbox)
          and (score is None or _is_number(score)))


def evaluate_files(gt, dets, metric: str, *, plus_one: bool | None = None) -> dict:
  """Scores COCO results ``dets`` against COCO-format ``gt`` (paths or parsed), exactly
  as given. ``plus_one``: the devkit's +1 pixel widths (None: the metric's default)."""
  gt = load_json(gt)
  dets = load_json(dets)
  evaluator, cat_index = evaluator_from_coco_gt(gt, metric, plus_one=plus_one)
  add_coco_results(evaluator, dets, cat_index, [image["id"] for image in gt["images"]])
  return evaluator.compute()
