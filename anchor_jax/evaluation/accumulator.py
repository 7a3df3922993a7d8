"""Accumulate ground truth and detections over an eval pass, then score them.

The eval runner (and ``python -m anchor_jax.evaluate``) register ground truth
per image, add NMS output batch by batch, and call ``compute()``:

  ev = DetectionEvaluator(metric='voc07', class_names=names)
  ev.add_ground_truth(image_id, boxes_px, classes, difficult=difficult, image_hw=(h, w))
  ev.add_batch(image_ids, det_boxes_px, det_scores, det_classes, det_valid)
  result = ev.compute()   # {'AP50': ..., 'per_class': {...}, ...}

Metrics: ``voc07`` (11-point), ``voc12`` (all-point), ``brainwash`` (single class,
all-point AP at IoU > 0.5), ``coco`` (pycocotools). The VOC-style metrics take the
devkit's "+1 pixel" widths (``plus_one``) on VOC-convention data, where a box's corners
are inclusive integer pixels; continuous coordinates (COCO, the synthetic data,
Brainwash) take none. By default voc07/voc12 use it and brainwash does not; the eval
runner passes the dataset's own convention. GT flagged ``iscrowd`` counts as difficult
for the VOC metrics; GT flagged ``difficult`` goes to pycocotools as ``iscrowd`` (an
ignore region, as mmdetection's VOC->COCO converter does).

Boxes are scored exactly as given (pycocotools and the devkit do not clip detections
either; the eval runner clips the model's own boxes to the image). Detections with a
non-finite score or box, or with non-positive width or height, are dropped and counted
(``num_dropped``); so are GT boxes with non-positive or non-finite sides
(``num_dropped_gt``): such a GT could never be matched.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from anchor_jax.errors import UserError
from anchor_jax.evaluation import coco_metric, voc_metric

# name -> (11-point AP?, +1 pixel by default) of voc_metric.voc_evaluate; 'coco' goes
# to pycocotools.
VOC_METRICS = {
    "voc07": dict(use_07_metric=True, plus_one=True),
    "voc12": dict(use_07_metric=False, plus_one=True),
    "brainwash": dict(use_07_metric=False, plus_one=False),
}
METRICS = tuple(VOC_METRICS) + ("coco",)
PIXEL_CONVENTIONS = ("voc", "continuous")   # +1 pixel widths, or none


class MetricError(UserError, ValueError):
  """A metric that does not fit the data (e.g. brainwash on several classes)."""


class UnknownIdError(UserError, ValueError):
  """A detection names an image or category the ground truth does not have."""


def _has_area(boxes) -> np.ndarray:
  """[n, 4] xyxy -> [n] bool: finite, with positive width and height."""
  return (np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0])
          & (boxes[:, 3] > boxes[:, 1]))


def _json_float(value):
  """float, or None for NaN (JSON has no NaN)."""
  return None if value is None or math.isnan(value) else float(value)


class DetectionEvaluator:
  """Collects per-image GT and padded detections; ``compute()`` scores them."""

  def __init__(self, *, metric: str, class_names: Sequence[str],
               category_ids: Sequence[int] | None = None,
               iou_threshold: float = 0.5, plus_one: bool | None = None):
    """
    Args:
      metric: one of ``METRICS``.
      class_names: name per contiguous class index (keys of ``per_class``).
      category_ids: original category id per class index (COCO export);
        defaults to the indices themselves.
      iou_threshold: match threshold of the VOC-style metrics (IoU > it).
      plus_one: the devkit's +1 pixel widths in the VOC-style metrics (None: the
        metric's default, see ``VOC_METRICS``). Ignored by coco.
    """
    if metric not in METRICS:
      raise MetricError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if metric == "brainwash" and len(class_names) != 1:
      raise MetricError(f"brainwash is single-class; got {len(class_names)} classes")
    self.metric = metric
    self.class_names = list(class_names)
    self.category_ids = list(range(len(class_names)) if category_ids is None else category_ids)
    if len(self.category_ids) != len(self.class_names):
      raise ValueError("category_ids and class_names differ in length")
    self.iou_threshold = iou_threshold
    self.plus_one = (VOC_METRICS[metric]["plus_one"] if plus_one is None and metric != "coco"
                     else bool(plus_one))
    self.reset()

  def reset(self):
    """Forget all ground truth and detections."""
    self._image_index = {}  # image id -> dense index
    self._image_ids = []  # dense index -> image id
    self._image_hw = []  # dense index -> (h, w), NaN when unknown
    self._has_gt = []  # dense index -> registered through add_ground_truth
    self._gt = []  # per call: (index, boxes [n, 4], classes, difficult, areas, iscrowd)
    self._dets = []  # per call: (index [d], boxes [d, 4], scores [d], classes [d])
    self.num_dropped = 0
    self.num_dropped_gt = 0

  def _index(self, image_id) -> int:
    """Dense index of ``image_id`` (NumPy/JAX scalars become Python scalars)."""
    if getattr(image_id, "ndim", None) == 0:
      image_id = image_id.item()
    if image_id not in self._image_index:
      self._image_index[image_id] = len(self._image_ids)
      self._image_ids.append(image_id)
      self._image_hw.append((math.nan, math.nan))
      self._has_gt.append(False)
    return self._image_index[image_id]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def add_ground_truth(self, image_id, boxes_px, classes, *, difficult=None,
                       image_hw=None, areas=None, iscrowd=None):
    """Registers one image (call it for images without objects too).

    Args:
      image_id: any hashable id (COCO: the original image id).
      boxes_px: ``[n, 4]`` xyxy in original pixels.
      classes: ``[n]`` contiguous class indices.
      difficult: ``[n]`` bool (VOC): not a positive; matches are ignored.
      image_hw: (height, width), for COCO's image records; None: unknown.
      areas: ``[n]`` COCO object areas (COCO's size split uses the mask
        area); default box area.
      iscrowd: ``[n]`` bool (COCO crowd regions; VOC metrics treat them as
        difficult).
    """
    index = self._index(image_id)
    if self._has_gt[index]:
      raise ValueError(f"ground truth for image {image_id!r} registered twice")
    self._has_gt[index] = True
    if image_hw is not None:
      self._image_hw[index] = (float(image_hw[0]), float(image_hw[1]))
    boxes = np.asarray(boxes_px, np.float64).reshape(-1, 4)
    n = boxes.shape[0]
    classes = np.asarray(classes, np.int64).reshape(n)
    if n and (classes.min() < 0 or classes.max() >= self.num_classes):
      raise ValueError(f"image {image_id!r}: GT class outside [0, {self.num_classes})")
    flags = [np.zeros(n, bool) if x is None else np.asarray(x, bool).reshape(n)
             for x in (difficult, iscrowd)]
    areas = None if areas is None else np.asarray(areas, np.float64).reshape(n)
    ok = _has_area(boxes)                                         # [n]
    self.num_dropped_gt += int(n - ok.sum())
    self._gt.append((index, boxes[ok], classes[ok], flags[0][ok],
                     None if areas is None else areas[ok], flags[1][ok]))

  def add_ground_truth_batch(self, image_ids, boxes_px, classes, valid, *, difficult=None,
                             image_hw=None):
    """``add_ground_truth`` for padded batches: ``[B]`` ids, ``[B, G, 4]`` pixel
    boxes, ``[B, G]`` classes, valid mask and difficult flags, ``[B, 2]`` (h, w)."""
    valid = np.asarray(valid, bool)  # [B, G]
    boxes, classes = np.asarray(boxes_px), np.asarray(classes)
    difficult = np.zeros_like(valid) if difficult is None else np.asarray(difficult, bool)
    for i, image_id in enumerate(image_ids):
      keep = valid[i]
      self.add_ground_truth(image_id, boxes[i][keep], classes[i][keep],
                            difficult=difficult[i][keep],
                            image_hw=None if image_hw is None else np.asarray(image_hw)[i])

  def add_detections(self, image_ids, boxes_px, scores, classes) -> int:
    """Adds flat detections: ``[D]`` image ids, ``[D, 4]`` xyxy pixel boxes,
    ``[D]`` scores, ``[D]`` class indices. Returns the number dropped."""
    index = np.fromiter((self._index(i) for i in image_ids), np.int64, len(image_ids))
    return self._add(index, boxes_px, scores, classes)

  def add_batch(self, image_ids, det_boxes_px, det_scores, det_classes, det_valid=None) -> int:
    """Adds padded NMS output: ``[B]`` ids, ``[B, M, 4]`` pixel boxes, ``[B, M]``
    scores, classes and valid mask (rows with ``det_valid`` False are padding,
    not counted as dropped). Returns the number of valid detections dropped.
    """
    scores = np.asarray(det_scores)  # [B, M]
    b, m = scores.shape
    keep = np.ones(b * m, bool) if det_valid is None else np.asarray(det_valid, bool).reshape(-1)
    index = np.repeat([self._index(i) for i in image_ids], m)  # [B*M]
    return self._add(index[keep], np.asarray(det_boxes_px).reshape(-1, 4)[keep],
                     scores.reshape(-1)[keep], np.asarray(det_classes).reshape(-1)[keep])

  def _add(self, index, boxes_px, scores, classes) -> int:
    """Stores detections of dense image ``index``; drops non-finite ones."""
    index = np.asarray(index, np.int64).reshape(-1)
    boxes = np.asarray(boxes_px, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    classes = np.asarray(classes, np.int64).reshape(-1)
    if not index.size == boxes.shape[0] == scores.size == classes.size:
      raise ValueError("detection arrays differ in length")
    bad = (classes < 0) | (classes >= self.num_classes)
    if bad.any():
      raise UnknownIdError(
          f"detection class index {classes[bad][0]} outside [0, {self.num_classes})")
    keep = np.isfinite(scores) & _has_area(boxes)
    dropped = int(keep.size - keep.sum())
    self.num_dropped += dropped
    self._dets.append((index[keep], boxes[keep], scores[keep], classes[keep]))
    return dropped

  # --------------------------------------------------------------------------

  def _gathered(self):
    """Concatenated GT and detections, as given."""
    def cat(parts, i, empty):
      return np.concatenate([p[i] for p in parts]) if parts else empty

    gt_areas = [(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) if a is None else a
                for _, b, _, _, a, _ in self._gt]
    gt = dict(
        image=cat([(np.full(p[1].shape[0], p[0]),) for p in self._gt], 0, np.zeros(0, np.int64)),
        boxes=cat(self._gt, 1, np.zeros((0, 4))), classes=cat(self._gt, 2, np.zeros(0, np.int64)),
        difficult=cat(self._gt, 3, np.zeros(0, bool)), iscrowd=cat(self._gt, 5, np.zeros(0, bool)),
        areas=np.concatenate(gt_areas) if gt_areas else np.zeros(0))
    det = dict(
        image=cat(self._dets, 0, np.zeros(0, np.int64)), boxes=cat(self._dets, 1, np.zeros((0, 4))),
        scores=cat(self._dets, 2, np.zeros(0)), classes=cat(self._dets, 3, np.zeros(0, np.int64)))
    without_gt = ~np.asarray(self._has_gt, bool)[det["image"]]  # [D]
    if without_gt.any():
      missing = [self._image_ids[i] for i in np.unique(det["image"][without_gt])]
      raise UnknownIdError(
          f"detections name {len(missing)} image id(s) without ground truth, e.g. "
          f"{missing[:5]!r}")
    return gt, det

  def coco_results(self) -> list:
    """Detections added so far in COCO results format (original category ids,
    [x, y, w, h] pixels, as added), e.g. to write a DETS.json for the CLI."""
    return self._coco_results(self._gathered()[1], self.category_ids)

  def _coco_results(self, det, category_ids) -> list:
    return coco_metric.to_coco_results(
        image_ids=[self._image_ids[i] for i in det["image"].tolist()], boxes_xyxy=det["boxes"],
        scores=det["scores"], class_indices=det["classes"], category_ids=category_ids)

  def compute(self) -> dict:
    """Scores everything added so far; a JSON-ready dict.

    Keys: ``metric``, ``AP50``, ``AP50_agnostic``, ``per_class`` {name: AP},
    ``num_images``, ``num_gt``, ``num_detections``, ``num_dropped``, ``num_dropped_gt``;
    for coco also ``AP``, ``AP75``, ``APs``, ``APm``, ``APl``, ``per_class_AP50``. A class
    without any positive GT has AP None and is left out of the mean; AP50 is None when no
    class has a positive GT.

    ``AP50_agnostic`` is the same metric's AP50 with every class merged into one: it
    scores localisation alone (what anchors change), apart from classification. A
    detection of the wrong class that hits a box counts as a hit there, and two
    detections of one object under different classes count once and as a duplicate.
    """
    gt, det = self._gathered()
    score = self._compute_coco if self.metric == "coco" else self._compute_voc
    out = score(gt, det, self.class_names, self.category_ids)
    merged = (dict(gt, classes=np.zeros_like(gt["classes"])),
              dict(det, classes=np.zeros_like(det["classes"])))
    out["AP50_agnostic"] = score(*merged, ["all"], [0])["AP50"]
    out.update(metric=self.metric, num_images=int(sum(self._has_gt)),
               num_gt=int(gt["classes"].size), num_detections=int(det["scores"].size),
               num_dropped=self.num_dropped, num_dropped_gt=self.num_dropped_gt)
    return out

  def _compute_voc(self, gt, det, class_names, category_ids) -> dict:
    del category_ids
    result = voc_metric.voc_evaluate(
        gt_image=gt["image"], gt_class=gt["classes"], gt_boxes=gt["boxes"],
        gt_difficult=gt["difficult"] | gt["iscrowd"], det_image=det["image"],
        det_class=det["classes"], det_scores=det["scores"], det_boxes=det["boxes"],
        num_classes=len(class_names), iou_threshold=self.iou_threshold,
        use_07_metric=VOC_METRICS[self.metric]["use_07_metric"], plus_one=self.plus_one)
    return {"AP50": _json_float(result.mean_ap),
            "per_class": {name: _json_float(ap)
                          for name, ap in zip(class_names, result.per_class_ap)}}

  def _compute_coco(self, gt, det, class_names, category_ids) -> dict:
    ids = self._image_ids
    images = []
    for i, image_id in enumerate(ids):
      if self._has_gt[i]:
        h, w = self._image_hw[i]
        images.append({"id": image_id} if math.isnan(h) else
                      {"id": image_id, "height": h, "width": w})
    boxes = gt["boxes"]
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist()
    annotations = [
        {"image_id": ids[i], "category_id": category_ids[c], "bbox": b,
         "area": a, "iscrowd": int(crowd or diff)}
        for i, c, b, a, crowd, diff in zip(
            gt["image"].tolist(), gt["classes"].tolist(), xywh, gt["areas"].tolist(),
            gt["iscrowd"].tolist(), gt["difficult"].tolist())]
    categories = [{"id": cid, "name": name} for cid, name in zip(category_ids, class_names)]
    coco_gt = coco_metric.make_coco(
        {"images": images, "annotations": annotations, "categories": categories})
    return coco_metric.coco_evaluate(coco_gt, self._coco_results(det, category_ids))
