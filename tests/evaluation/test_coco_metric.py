"""COCO AP through pycocotools: export format, perfect/shifted boxes, id round trip."""
import numpy as np
import pytest

from anchor_jax.evaluation import accumulator as evaluator_lib
from anchor_jax.evaluation import coco_metric as coco_eval

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 5, "name": "airplane"},
              {"id": 90, "name": "toothbrush"}]
CATEGORY_IDS = [1, 5, 90]  # contiguous index -> COCO id


def _gt(boxes_xywh_per_image, cats_per_image):
  images = [{"id": 100 + i, "width": 640, "height": 480} for i in range(len(boxes_xywh_per_image))]
  annotations = [{"image_id": 100 + i, "category_id": c, "bbox": list(b)}
                 for i, (bs, cs) in enumerate(zip(boxes_xywh_per_image, cats_per_image))
                 for b, c in zip(bs, cs)]
  return coco_eval.make_coco(
      {"images": images, "annotations": annotations, "categories": CATEGORIES})


def test_to_coco_results_format():
  results = coco_eval.to_coco_results(
      image_ids=[7, 8], boxes_xyxy=np.array([[10, 20, 40, 80], [0, 0, 1, 2]], np.float32),
      scores=np.array([0.5, 0.25]), class_indices=np.array([1, 2]), category_ids=CATEGORY_IDS)
  assert results == [
      {"image_id": 7, "category_id": 5, "bbox": [10.0, 20.0, 30.0, 60.0], "score": 0.5},
      {"image_id": 8, "category_id": 90, "bbox": [0.0, 0.0, 1.0, 2.0], "score": 0.25}]
  assert all(type(v) in (int, float) for r in results for v in
             [r["image_id"], r["category_id"], r["score"], *r["bbox"]])  # JSON-ready


def test_perfect_detections_give_ap_one():
  boxes = [[[10, 10, 100, 120], [300, 200, 20, 20]], [[50, 60, 200, 150]]]
  cats = [[1, 5], [90]]
  coco_gt = _gt(boxes, cats)
  results = [{"image_id": 100 + i, "category_id": c, "bbox": b, "score": 0.9}
             for i, (bs, cs) in enumerate(zip(boxes, cats)) for b, c in zip(bs, cs)]
  out = coco_eval.coco_evaluate(coco_gt, results)
  for key in ("AP", "AP50", "AP75"):
    assert out[key] == pytest.approx(1.0, abs=1e-6)
  # Areas: 20·20 = 400 < 32² (small), 90·110 = 9900 and 200·150 > 96² (large); no medium.
  assert out["APs"] == pytest.approx(1.0, abs=1e-6)
  assert out["APl"] == pytest.approx(1.0, abs=1e-6)
  assert out["APm"] is None  # no medium GT: COCOeval's -1
  assert out["per_class"] == pytest.approx(
      {"person": 1.0, "airplane": 1.0, "toothbrush": 1.0}, abs=1e-6)


def test_shifted_box_hits_the_thresholds_below_its_iou():
  # GT 100×100; the det shifted right by 16: IoU = 84·100 / (2·100·100 - 84·100) = 0.7241.
  # Thresholds .50 .55 .60 .65 .70 match, .75 ... .95 miss: AP = 5/10, AP50 = 1, AP75 = 0.
  coco_gt = _gt([[[100, 100, 100, 100]]], [[5]])
  results = [{"image_id": 100, "category_id": 5, "bbox": [116, 100, 100, 100], "score": 0.8}]
  out = coco_eval.coco_evaluate(coco_gt, results)
  assert out["AP"] == pytest.approx(0.5, abs=1e-6)
  assert out["AP50"] == pytest.approx(1.0, abs=1e-6)
  assert out["AP75"] == pytest.approx(0.0, abs=1e-6)
  assert out["APl"] == pytest.approx(0.5, abs=1e-6)  # 100·100 > 96²
  assert out["per_class"] == pytest.approx({"airplane": 0.5, "person": None, "toothbrush": None})
  assert out["per_class_AP50"]["airplane"] == pytest.approx(1.0, abs=1e-6)


def test_wrong_category_and_empty_results_give_zero():
  coco_gt = _gt([[[100, 100, 100, 100]]], [[5]])
  wrong = [{"image_id": 100, "category_id": 1, "bbox": [100, 100, 100, 100], "score": 0.8}]
  for results in (wrong, []):
    out = coco_eval.coco_evaluate(coco_gt, results)
    assert out["AP"] == 0.0 and out["AP50"] == 0.0
    assert out["per_class"]["airplane"] == 0.0
  assert wrong[0].keys() == {"image_id", "category_id", "bbox", "score"}  # not mutated


def test_evaluator_round_trips_non_contiguous_category_ids():
  ev = evaluator_lib.DetectionEvaluator(
      metric="coco", class_names=[c["name"] for c in CATEGORIES], category_ids=CATEGORY_IDS)
  ev.add_ground_truth("a", [[0, 0, 50, 50], [100, 100, 300, 200]], [2, 1], image_hw=(480, 640))
  ev.add_ground_truth("b", np.zeros((0, 4)), [], image_hw=(480, 640))  # no objects
  ev.add_batch(["a", "b"],
               det_boxes_px=[[[0, 0, 50, 50], [100, 100, 300, 200]], [[1, 1, 9, 9], [0, 0, 0, 0]]],
               det_scores=[[0.9, 0.8], [0.3, 0.0]], det_classes=[[2, 1], [0, -1]],
               det_valid=[[True, True], [True, False]])
  out = ev.compute()
  # Index 2 -> id 90 (toothbrush), index 1 -> id 5 (airplane): both perfect.
  assert out["per_class"]["toothbrush"] == pytest.approx(1.0, abs=1e-6)
  assert out["per_class"]["airplane"] == pytest.approx(1.0, abs=1e-6)
  assert out["per_class"]["person"] is None  # no GT; its FP on 'b' does not matter
  assert out["AP"] == pytest.approx(1.0, abs=1e-6)
  assert out["num_detections"] == 3 and out["num_dropped"] == 0
