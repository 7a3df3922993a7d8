"""Running a model over an eval split and scoring it: model -> decode -> NMS -> AP.

Runs on one device of process 0 (a plain ``jit``), so it works the same inside a
multi-host training run; the images are small next to a training step.
"""
from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from anchor_jax.data import pipeline
from anchor_jax.evaluation import accumulator, proposal_recall, rcnn_inference
from anchor_jax.evaluation import decode as decode_lib
from anchor_jax.evaluation import nms as nms_lib


def _forward(model, params, batch_stats, images):
  out = model.apply({"params": params, "batch_stats": batch_stats},
                    images.astype(jnp.float32) / 255.0, train=False)
  return decode_lib.decode(out, params["head"]["anchor_log_wh"])   # [B, N, 4], [B, N, C]


class Evaluator:
  """Scores a model on ``dataset`` (the config's eval split) with ``eval.metric``.

  ``model``: the flax module (built with ``axis_name=None``). Its ``anchors`` field only
  initialises params; the forward pass reads the (learned) anchors from the params.
  """

  def __init__(self, config, dataset, *, model):
    self.config, self.dataset = config, dataset
    convention = config.eval.get("pixel_convention", "auto")   # absent in older runs
    if convention == "auto":
      convention = getattr(dataset, "pixel_convention", "continuous")
    self.plus_one = convention == "voc"   # the devkit's +1 widths on VOC-convention data
    if config.eval.metric == "brainwash" and len(dataset.class_names) != 1:
      raise accumulator.MetricError(
          f"--config.eval.metric=brainwash scores one class; the eval data has "
          f"{len(dataset.class_names)} ({', '.join(dataset.class_names[:5])}...). Use voc12 "
          "(all-point AP at IoU 0.5 per class) or set dataset.num_classes / class_names.")
    self.is_rcnn = config.model.get("detector", "yolov2") == "faster_rcnn"
    if self.is_rcnn:
      e = config.eval
      self._detect = jax.jit(functools.partial(
          rcnn_inference.detect, model, rcnn=config.rcnn, score_thresh=e.score_thresh,
          nms_iou=e.nms_iou, max_dets=e.max_dets))
    else:
      self._forward = jax.jit(functools.partial(_forward, model))

  def _passes(self, params, batch_stats):
    """Yields (batch, NmsOutput, proposals, proposal_valid) over the eval split; boxes
    normalised to [0, 1]; the proposals (Faster R-CNN only, else None) sorted by score."""
    cfg = self.config.eval
    size = self.config.input.eval_image_size or self.config.input.image_size
    for batch in pipeline.eval_batches(self.dataset, batch_size=cfg.batch_size,
                                       image_size=size):
      if self.is_rcnn:
        dets, props, props_valid = jax.device_get(
            self._detect(params, batch_stats, batch["image"]))
        yield batch, nms_lib.NmsOutput(*map(np.asarray, dets)), props, props_valid
        continue
      boxes, scores = jax.device_get(self._forward(params, batch_stats, batch["image"]))
      dets = nms_lib.nms(np.asarray(boxes), np.asarray(scores), iou_threshold=cfg.nms_iou,
                         score_threshold=cfg.score_thresh, max_dets=cfg.max_dets)
      yield batch, dets, None, None

  def predictions(self, params, batch_stats):
    """Yields (batch, NmsOutput) over the eval split; boxes normalised to [0, 1]."""
    for batch, dets, _, _ in self._passes(params, batch_stats):
      yield batch, dets

  def run(self, params, batch_stats, *, export_path: str | None = None) -> dict:
    """-> dict with AP50 (and AP for coco), per_class, num_images, num_dropped.

    Ground truth comes untruncated from ``dataset.ground_truth`` in original
    pixels; detections go back to original pixels through the plain eval resize.
    ``export_path``: also write the detections there in COCO results format
    (``[x, y, w, h]`` pixels, the dataset's category ids).
    """
    ev = accumulator.DetectionEvaluator(metric=self.config.eval.metric,
                                        class_names=self.dataset.class_names,
                                        category_ids=self.dataset.category_ids,
                                        plus_one=self.plus_one)
    recall = proposal_recall.ProposalRecall() if self.is_rcnn else None
    for batch, dets, props, props_valid in self._passes(params, batch_stats):
      v = batch["valid"]
      for row in np.nonzero(v)[0]:
        index = int(batch["index"][row])
        boxes_px, labels, difficult = self.dataset.ground_truth(index)
        ev.add_ground_truth(int(batch["image_id"][row]), boxes_px, labels, difficult=difficult,
                            image_hw=tuple(batch["orig_hw"][row]),
                            areas=self.dataset.ground_truth_areas(index))
        if recall is not None:   # in original pixels, as the GT
          props_px = decode_lib.to_pixels(props[row], batch["orig_hw"][row])
          recall.add(np.asarray(boxes_px)[~np.asarray(difficult, bool)], props_px,
                     props_valid[row])
      det_px = decode_lib.to_pixels(np.asarray(dets.boxes)[v], batch["orig_hw"][v])
      ev.add_batch(batch["image_id"][v], det_px, np.asarray(dets.scores)[v],
                   np.asarray(dets.classes)[v], np.asarray(dets.valid)[v])
    result = ev.compute()
    if recall is not None:
      result.update({k: v for k, v in recall.compute().items() if k != "num_gt"})
    if export_path:
      with open(export_path, "w") as f:
        json.dump(ev.coco_results(), f)
    return result
