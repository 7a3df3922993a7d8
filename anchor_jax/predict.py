"""Inference on an eval split and its score: model -> decode -> NMS -> AP.

Runs on one device of process 0 (a plain ``jit``), so it works the same inside a
multi-host training run; the images are small next to a training step.
"""
from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from anchor_jax import decode as decode_lib
from anchor_jax import evaluator as evaluator_lib
from anchor_jax import input_pipeline
from anchor_jax import nms as nms_lib


def _forward(model, params, batch_stats, images):
  out = model.apply({"params": params, "batch_stats": batch_stats},
                    images.astype(jnp.float32) / 255.0, train=False)
  return decode_lib.decode(out, params["head"]["anchor_log_wh"])   # [B, N, 4], [B, N, C]


class Evaluator:
  """Scores a model on ``dataset`` (the config's eval split) with ``eval.metric``."""

  def __init__(self, config, dataset, *, model_factory):
    self.config, self.dataset = config, dataset
    # The model's ``anchors`` field only initialises params; the forward pass
    # reads the (learned) anchors from the params it is given.
    model = model_factory(anchors=np.ones((config.anchors.num, 2)))
    self._forward = jax.jit(functools.partial(_forward, model))

  def predictions(self, params, batch_stats):
    """Yields (batch, NmsOutput) over the eval split; boxes normalised to [0, 1]."""
    cfg = self.config.eval
    size = self.config.input.eval_image_size or self.config.input.image_size
    for batch in input_pipeline.eval_batches(self.dataset, batch_size=cfg.batch_size,
                                             image_size=size):
      boxes, scores = jax.device_get(self._forward(params, batch_stats, batch["image"]))
      dets = nms_lib.nms(np.asarray(boxes), np.asarray(scores), iou_threshold=cfg.nms_iou,
                         score_threshold=cfg.score_thresh, max_dets=cfg.max_dets)
      yield batch, dets

  def run(self, params, batch_stats, *, export_path: str | None = None) -> dict:
    """-> dict with AP50 (and AP for coco), per_class, num_images, num_dropped.

    Ground truth comes untruncated from ``dataset.ground_truth`` in original
    pixels; detections go back to original pixels through the plain eval resize.
    ``export_path``: also write the detections there in COCO results format
    (``[x, y, w, h]`` pixels, the dataset's category ids).
    """
    ev = evaluator_lib.DetectionEvaluator(metric=self.config.eval.metric,
                                          class_names=self.dataset.class_names,
                                          category_ids=self.dataset.category_ids)
    for batch, dets in self.predictions(params, batch_stats):
      v = batch["valid"]
      for row in np.nonzero(v)[0]:
        index = int(batch["index"][row])
        boxes_px, labels, difficult = self.dataset.ground_truth(index)
        ev.add_ground_truth(int(batch["image_id"][row]), boxes_px, labels, difficult=difficult,
                            image_hw=tuple(batch["orig_hw"][row]),
                            areas=self.dataset.ground_truth_areas(index))
      det_px = decode_lib.to_pixels(np.asarray(dets.boxes)[v], batch["orig_hw"][v])
      ev.add_batch(batch["image_id"][v], det_px, np.asarray(dets.scores)[v],
                   np.asarray(dets.classes)[v], np.asarray(dets.valid)[v])
    result = ev.compute()
    if export_path:
      with open(export_path, "w") as f:
        json.dump(ev.coco_results(), f)
    return result

  def write(self, result: dict, *, step: int, path: str, split: str = "eval") -> None:
    evaluator_lib.append_jsonl(path, step, split, result)


def evaluate_workdir(workdir: str, *, export_path: str | None = None) -> dict:
  """Evaluates the latest checkpoint of a training workdir on its eval split and
  appends the result to ``eval.jsonl`` (as the training loop does)."""
  import ml_collections
  from anchor_jax import checkpoint as ckpt_lib
  from anchor_jax import train

  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{config_path} not found: --workdir must be a training workdir "
                            "(written by python -m anchor_jax.main).")
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  checkpointer = ckpt_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  step = checkpointer.latest_step()
  if step is None:
    raise FileNotFoundError(f"No checkpoint in {checkpointer.directory}; train first.")
  state = checkpointer.restore_raw(step)
  checkpointer.close()
  eval_ds = input_pipeline.build_dataset(config, "eval")
  num_classes = config.dataset.num_classes or len(eval_ds.class_names)
  evaluator = Evaluator(config, eval_ds, model_factory=functools.partial(
      train.make_model, config, num_classes=num_classes, axis_name=None))
  result = evaluator.run(state["params"], state["batch_stats"],
                         export_path=export_path)
  evaluator.write(result, step=step, path=os.path.join(workdir, "eval.jsonl"))
  result["step"] = step
  return result
