"""DetectionEvaluator (what the training loop calls) and eval.jsonl lines."""
import json

import numpy as np
import pytest

from anchor_jax.evaluation import accumulator as evaluator_lib
from anchor_jax.evaluation import coco_files as evaluate

NAMES = ["cat", "dog"]


def _evaluator(metric="voc07"):
  ev = evaluator_lib.DetectionEvaluator(metric=metric, class_names=NAMES)
  ev.add_ground_truth(0, [[10, 10, 50, 50]], [0], image_hw=(100, 100))
  ev.add_ground_truth(1, [[0, 0, 30, 30], [40, 40, 90, 90]], [1, 1], difficult=[False, True],
                      image_hw=(100, 100))
  return ev


def test_add_batch_padding_nan_and_numbers():
  ev = _evaluator()
  boxes = np.array([[[10, 10, 50, 50], [0, 0, 0, 0], [0, 0, 0, 0]],
                    [[0, 0, 30, 30], [40, 40, 90, 90], [0, 0, 5, 5]]], np.float32)  # [B, M, 4]
  scores = np.array([[0.9, 0.0, np.nan], [0.8, 0.95, np.nan]], np.float32)
  classes = np.array([[0, -1, 0], [1, 1, 1]])
  valid = np.array([[True, False, False], [True, True, True]])
  # Padding (valid False) is ignored, NaN in a valid row is dropped and counted.
  assert ev.add_batch([0, 1], boxes, scores, classes, valid) == 1
  out = ev.compute()
  # cat: one perfect det -> 1. dog: the .95 det hits the difficult GT (ignored), the .8
  # det the normal one -> 1.
  assert out["per_class"] == {"cat": 1.0, "dog": 1.0}
  assert out["AP50"] == 1.0
  assert out["num_dropped"] == 1 and out["num_detections"] == 3 and out["num_gt"] == 3


def test_detections_are_scored_as_given_not_clipped():
  ev = _evaluator("voc12")
  ev.add_detections([0], [[-30, -30, 50, 50]], [0.5], [0])
  # +1 IoU with [10, 10, 50, 50]: 41² / 81² = 0.256, a miss (clipped to the image it would
  # be 41² / 51² = 0.646, a hit): the devkit and pycocotools do not clip.
  assert ev.compute()["per_class"]["cat"] == 0.0
  assert ev.coco_results()[0]["bbox"] == [-30.0, -30.0, 80.0, 80.0]


def test_unknown_image_and_class_are_errors():
  ev = _evaluator()
  ev.add_detections(["unseen"], [[0, 0, 1, 1]], [0.5], [0])
  with pytest.raises(evaluator_lib.UnknownIdError, match="'unseen'"):
    ev.compute()
  with pytest.raises(evaluator_lib.UnknownIdError, match="class index 7"):
    _evaluator().add_detections([0], [[0, 0, 1, 1]], [0.5], [7])
  with pytest.raises(ValueError, match="twice"):
    _evaluator().add_ground_truth(0, np.zeros((0, 4)), [])


def test_metric_names():
  with pytest.raises(ValueError, match="unknown metric"):
    evaluator_lib.DetectionEvaluator(metric="voc", class_names=NAMES)
  with pytest.raises(ValueError, match="single-class"):
    evaluator_lib.DetectionEvaluator(metric="brainwash", class_names=NAMES)
  assert set(evaluator_lib.METRICS) == {"voc07", "voc12", "coco", "brainwash"}


def test_empty_evaluator_and_reset():
  ev = _evaluator()
  out = ev.compute()
  assert out["AP50"] == 0.0 and out["num_detections"] == 0
  ev.reset()
  out = ev.compute()  # nothing registered: no class has a positive
  assert out["AP50"] is None and out["per_class"] == {"cat": None, "dog": None}


def test_coco_results_export_round_trips_through_evaluate_files():
  ev = evaluator_lib.DetectionEvaluator(metric="voc12", class_names=NAMES, category_ids=[3, 7])
  ev.add_ground_truth(0, [[10, 10, 50, 50]], [0], image_hw=(100, 100))
  ev.add_ground_truth(1, [[0, 0, 30, 30]], [1], image_hw=(100, 100))
  ids = np.array([0, 1])  # NumPy ids, as a data pipeline hands them over
  ev.add_batch(ids, [[[10, 10, 50, 50], [60, 60, 99, 99]], [[0, 0, 30, 30], [1, 1, 31, 31]]],
               [[0.9, 0.95], [0.5, 0.6]], [[0, 0], [1, 1]])
  results = json.loads(json.dumps(ev.coco_results()))  # plain JSON types
  assert {r["category_id"] for r in results} == {3, 7}
  assert results[0] == {"image_id": 0, "category_id": 3, "bbox": [10.0, 10.0, 40.0, 40.0],
                        "score": pytest.approx(0.9)}
  gt = {"images": [{"id": 0, "width": 100, "height": 100}, {"id": 1, "width": 100, "height": 100}],
        "annotations": [{"image_id": 0, "category_id": 3, "bbox": [10, 10, 40, 40]},
                        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 30, 30]}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}
  # cat: FP (.95) then TP -> AP 1/2; dog: [1, 1, 31, 31] at .6 has +1 IoU 30²/(2·31² - 30²)
  # = 0.88 with the GT, then the exact box is a duplicate: TP, FP -> AP 1.
  expected = ev.compute()
  assert expected["per_class"] == {"cat": 0.5, "dog": 1.0}
  # The CLI's path through COCO JSON gives the same numbers.
  assert evaluate.evaluate_files(gt, results, "voc12")["per_class"] == expected["per_class"]


def test_add_ground_truth_batch_matches_per_image_registration():
  boxes = np.array([[[10, 10, 50, 50], [0, 0, 0, 0]],
                    [[0, 0, 30, 30], [40, 40, 90, 90]]], np.float32)  # [B, G, 4]
  classes = np.array([[0, 0], [1, 1]])
  valid = np.array([[True, False], [True, True]])
  difficult = np.array([[False, False], [False, True]])
  ev = evaluator_lib.DetectionEvaluator(metric="voc07", class_names=NAMES)
  ev.add_ground_truth_batch(np.array([0, 1]), boxes, classes, valid, difficult=difficult,
                            image_hw=np.array([[100, 100], [100, 100]]))
  reference = _evaluator()
  for e in (ev, reference):
    e.add_detections([0, 1, 1], [[10, 10, 50, 50], [0, 0, 30, 30], [40, 40, 90, 90]],
                     [0.5, 0.6, 0.9], [0, 1, 1])
  assert ev.compute() == reference.compute()
  assert ev.compute()["num_gt"] == 3


@pytest.mark.parametrize("metric", ["voc07", "voc12", "coco"])
def test_class_agnostic_ap50_scores_boxes_apart_from_classes(metric):
  """Two GTs (cat, dog), each hit by a perfect box: the dog's with the cat's label. AP50:
  cat 1.0 (one of two cat detections is a false positive at the lower score -> 1.0 for
  the devkit, the FP comes after the recall reaches 1), dog 0 -> mean 0.5. Class-agnostic:
  both boxes hit -> 1.0."""
  ev = evaluator_lib.DetectionEvaluator(metric=metric, class_names=NAMES)
  ev.add_ground_truth(0, [[10, 10, 50, 50]], [0], image_hw=(100, 100))
  ev.add_ground_truth(1, [[20, 20, 70, 60]], [1], image_hw=(100, 100))
  ev.add_detections([0, 1], [[10, 10, 50, 50], [20, 20, 70, 60]], [0.9, 0.8], [0, 0])
  out = ev.compute()
  assert out["AP50"] == pytest.approx(0.5, abs=1e-6)
  assert out["AP50_agnostic"] == pytest.approx(1.0, abs=1e-6)
