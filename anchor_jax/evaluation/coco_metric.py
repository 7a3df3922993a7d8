"""COCO box AP through pycocotools ``COCOeval`` (never reimplemented here).

This module only adapts: it builds ``COCO`` objects from in-memory dicts,
exports detections to the COCO results format (``[x, y, w, h]`` in original
pixels, original category ids) and turns ``COCOeval``'s stats and precision
array into a plain dict. pycocotools' prints go to the absl log (debug level)
so that callers can print one JSON object.
"""
from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from absl import logging
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# Order of COCOeval.stats for iouType='bbox' (first six entries).
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@contextlib.contextmanager
def _quiet(what: str):
  """Capture pycocotools' stdout and log it at debug level."""
  buffer = io.StringIO()
  with contextlib.redirect_stdout(buffer):
    yield
  if buffer.getvalue():
    logging.debug("pycocotools %s:\n%s", what, buffer.getvalue().rstrip())


def make_coco(dataset: dict) -> COCO:
  """A ``COCO`` ground-truth object from a dict, filling what COCOeval needs.

  Annotations are renumbered 1..n (COCOeval treats id 0 as "unmatched") and
  get ``area`` = w·h and ``iscrowd`` = 0 where missing.
  """
  dataset = copy.copy(dataset)
  annotations = []
  for i, ann in enumerate(dataset.get("annotations", [])):
    ann = dict(ann, id=i + 1)
    ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
    ann.setdefault("iscrowd", 0)
    annotations.append(ann)
  dataset["annotations"] = annotations
  dataset.setdefault("images", [])
  dataset.setdefault("categories", [])
  coco = COCO()
  coco.dataset = dataset
  with _quiet("createIndex"):
    coco.createIndex()
  return coco


def to_coco_results(*, image_ids, boxes_xyxy, scores, class_indices, category_ids) -> list:
  """Detections -> COCO results list (``image_id, category_id, bbox, score``).

  Args:
    image_ids: ``[D]`` original image ids.
    boxes_xyxy: ``[D, 4]`` xyxy boxes in original pixels.
    scores: ``[D]``.
    class_indices: ``[D]`` contiguous class indices.
    category_ids: sequence mapping a contiguous index to the original
      category id (COCO's ids are not contiguous: 1..90 with gaps).
  """
  boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
  xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)  # [D, 4]
  cat_ids = np.asarray(category_ids)[np.asarray(class_indices, np.int64)].tolist()
  image_ids = np.asarray(image_ids).tolist()
  return [
      {"image_id": i, "category_id": c, "bbox": b, "score": s}
      for i, c, b, s in zip(image_ids, cat_ids, xywh.tolist(),
                            np.asarray(scores, np.float64).tolist())]


def _load_results(coco_gt: COCO, results: list) -> COCO:
  """``coco_gt.loadRes`` that accepts an empty list and leaves ``results`` as is.

  (loadRes fails on an empty list and writes area/id/segmentation into the
  result dicts it is given, so it gets copies.)
  """
  if results:
    with _quiet("loadRes"):
      return coco_gt.loadRes([dict(r) for r in results])
  return make_coco({"images": list(coco_gt.dataset["images"]),
                    "categories": copy.deepcopy(coco_gt.dataset["categories"])})


def _none_if_missing(value: float):
  """COCOeval's -1 ("no ground truth") -> None; else a float."""
  return None if value < 0 else float(value)


def coco_evaluate(coco_gt: COCO, results: list) -> dict:
  """COCO box AP of ``results`` (COCO results format) against ``coco_gt``.

  Returns:
    ``AP`` (.50:.05:.95), ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``
    (COCOeval.stats: 101 recall points, maxDets 100), ``per_class`` and
    ``per_class_AP50`` ({category name: AP}, from ``eval['precision']``, area
    'all', maxDets 100). Values are None where no GT exists (COCOeval's -1).
  """
  coco_dt = _load_results(coco_gt, results)
  evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
  with _quiet("evaluate"):
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  out = {name: _none_if_missing(v) for name, v in zip(STAT_NAMES, evaluator.stats)}
  precision = evaluator.eval["precision"]  # [T, R, K, A, M]; -1 where no GT
  iou_thrs = evaluator.params.iouThrs
  at_50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
  per_class, per_class_50 = {}, {}
  for k, cat_id in enumerate(evaluator.params.catIds):
    name = coco_gt.cats[cat_id].get("name", str(cat_id))
    p = precision[:, :, k, 0, -1]  # [T, R] area 'all', last maxDets (100)
    per_class[name] = float(np.mean(p[p > -1])) if np.any(p > -1) else None
    p50 = p[at_50]
    per_class_50[name] = float(np.mean(p50[p50 > -1])) if np.any(p50 > -1) else None
  out["per_class"] = per_class
  out["per_class_AP50"] = per_class_50
  return out
