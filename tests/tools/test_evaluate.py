"""`python -m anchor_jax.evaluate --gt --dets --metric`: numbers and bad input."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tests
from anchor_jax.evaluation import coco_files
from anchor_jax.tools import evaluate

REPO = pathlib.Path(tests.REPO)

# Image 1: cat g0, g1; image 2: cat g2, g3 (xywh). Same curve as test_voc_eval's
# test_known_pr_curve: by score TP FP TP FP FP TP -> voc07 6/11, voc12 0.541666...
G = [[10, 10, 40, 40], [60, 60, 40, 40], [0, 0, 40, 30], [50, 0, 40, 30]]
FAR = [300, 300, 20, 20]
GT = {
    "images": [{"id": 1, "width": 400, "height": 400}, {"id": 2, "width": 400, "height": 400},
               {"id": 3, "width": 400, "height": 400}],  # image 3 has no objects
    "annotations": [{"image_id": 1, "category_id": 17, "bbox": G[0]},
                    {"image_id": 1, "category_id": 17, "bbox": G[1]},
                    {"image_id": 2, "category_id": 17, "bbox": G[2]},
                    {"image_id": 2, "category_id": 17, "bbox": G[3]},
                    {"image_id": 2, "category_id": 4, "bbox": G[0], "difficult": 1}],
    "categories": [{"id": 17, "name": "cat"}, {"id": 4, "name": "dog"}],
}
DETS = [{"image_id": 2, "category_id": 17, "bbox": G[3], "score": 0.4},
        {"image_id": 1, "category_id": 17, "bbox": G[0], "score": 0.9},
        {"image_id": 1, "category_id": 17, "bbox": FAR, "score": 0.8},
        {"image_id": 2, "category_id": 17, "bbox": G[2], "score": 0.7},
        {"image_id": 2, "category_id": 17, "bbox": FAR, "score": 0.6},
        {"image_id": 3, "category_id": 17, "bbox": FAR, "score": 0.5}]


def _run_main(tmp_path, capsys, gt, dets, metric):
  (tmp_path / "gt.json").write_text(json.dumps(gt))
  (tmp_path / "dets.json").write_text(json.dumps(dets))
  code = evaluate.run([f'--gt={tmp_path / "gt.json"}', f'--dets={tmp_path / "dets.json"}',
                        f"--metric={metric}", "--json"])
  captured = capsys.readouterr()
  if code == 0:
    return code, json.loads(captured.out), captured.err
  assert captured.out == ""
  return code, None, captured.err


@pytest.mark.parametrize("metric, expected", [("voc07", 6 / 11), ("voc12", 0.5416666666666666)])
def test_voc_numbers(tmp_path, capsys, metric, expected):
  code, out, _ = _run_main(tmp_path, capsys, GT, DETS, metric)
  assert code == 0
  assert out["AP50"] == pytest.approx(expected, abs=1e-12)
  assert out["per_class"] == {"cat": pytest.approx(expected, abs=1e-12), "dog": None}
  assert "AP" not in out
  assert out["num_dropped"] == 0 and out["num_detections"] == 6 and out["num_images"] == 3


def test_coco_numbers(tmp_path, capsys):
  # Perfect boxes at .9, .7, .4 among FPs: every IoU threshold sees the same curve, and
  # COCO's 101-point interpolated AP of it is computed here from its definition.
  code, out, _ = _run_main(tmp_path, capsys, GT, DETS, "coco")
  assert code == 0
  # recall .25 (p 1) .5 (p 2/3) .75 (p 1/2); interpolated precision at recall r in
  # {0, .01, ..., 1}: 1 for r <= .25 (26 points), 2/3 for r <= .5 (25), 1/2 for r <= .75
  # (25), 0 above.
  expected = (26 * 1 + 25 * 2 / 3 + 25 * 0.5) / 101
  for key in ("AP", "AP50", "AP75"):
    assert out[key] == pytest.approx(expected, abs=1e-6)
  assert out["per_class"]["cat"] == pytest.approx(expected, abs=1e-6)
  assert out["per_class"]["dog"] is None  # its only GT is difficult -> iscrowd


def test_images_without_gt_count_false_positives(tmp_path, capsys):
  # One GT (score .5, exact) and an FP at .9 on the empty image 3: precision 1/2 at recall 1.
  gt = dict(GT, annotations=GT["annotations"][:1])
  dets = [{"image_id": 1, "category_id": 17, "bbox": G[0], "score": 0.5},
          {"image_id": 3, "category_id": 17, "bbox": G[0], "score": 0.9}]
  for metric in ("voc07", "voc12"):
    code, out, _ = _run_main(tmp_path, capsys, gt, dets, metric)
    assert code == 0 and out["AP50"] == pytest.approx(0.5)


def test_empty_detections(tmp_path, capsys):
  for metric in ("voc07", "voc12", "coco"):
    code, out, _ = _run_main(tmp_path, capsys, GT, [], metric)
    assert code == 0 and out["AP50"] == 0.0 and out["per_class"]["cat"] == 0.0
    assert out["num_detections"] == 0


def test_boxes_outside_the_image_are_scored_as_given(tmp_path, capsys):
  # GT [0, 0, 50, 50]; det [-40, -40, 90, 90] (xywh): IoU 2500 / 8100, a miss. Clipped to
  # the 400 x 400 image it would equal the GT; pycocotools and the devkit do not clip.
  gt = dict(GT, annotations=[{"image_id": 1, "category_id": 17, "bbox": [0, 0, 50, 50]}])
  dets = [{"image_id": 1, "category_id": 17, "bbox": [-40, -40, 90, 90], "score": 0.5}]
  for metric in ("voc12", "coco"):
    code, out, _ = _run_main(tmp_path, capsys, gt, dets, metric)
    assert code == 0 and out["AP50"] == 0.0, metric


def _random_set(seed, num_images=6, size=(120, 90)):
  """COCO GT and detections, many of them reaching past the image borders."""
  rng = np.random.default_rng(seed)
  w, h = size
  images = [{"id": k + 1, "width": w, "height": h} for k in range(num_images)]
  anns, dets = [], []
  for k in range(num_images):
    for _ in range(int(rng.integers(1, 6))):
      x, y = rng.uniform(-10, w - 10), rng.uniform(-10, h - 10)
      bw, bh = rng.uniform(12, 60, 2)      # >= 12: every GT keeps an area inside
      x0, y0 = max(x, 0.0), max(y, 0.0)
      box = [x0, y0, min(x + bw, w) - x0, min(y + bh, h) - y0]     # GT inside the image
      cat = int(rng.choice([3, 9]))
      anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": cat, "bbox": box,
                   "area": box[2] * box[3], "iscrowd": 0})
      for _ in range(int(rng.integers(0, 3))):     # near the GT, often past the border
        jitter = rng.normal(0, 6, 4)
        dets.append({"image_id": k + 1, "category_id": cat, "score": float(rng.uniform()),
                     "bbox": [box[0] + jitter[0] - 5, box[1] + jitter[1] - 5,
                              box[2] + abs(jitter[2]) + 10, box[3] + abs(jitter[3]) + 10]})
    for _ in range(int(rng.integers(0, 3))):       # false positives
      dets.append({"image_id": k + 1, "category_id": 3, "score": float(rng.uniform()),
                   "bbox": [float(rng.uniform(-20, w)), float(rng.uniform(-20, h)), 30.0, 25.0]})
  gt = {"images": images, "annotations": anns,
        "categories": [{"id": 3, "name": "a"}, {"id": 9, "name": "b"}]}
  return gt, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_metric_equals_pycocotools_on_boxes_past_the_image(tmp_path, capsys, seed):
  import contextlib
  import io

  from pycocotools.coco import COCO
  from pycocotools.cocoeval import COCOeval

  gt, dets = _random_set(seed)
  assert any(d["bbox"][0] < 0 or d["bbox"][0] + d["bbox"][2] > 120 for d in dets)
  code, out, _ = _run_main(tmp_path, capsys, gt, dets, "coco")
  assert code == 0
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = COCO()
    coco_gt.dataset = json.loads(json.dumps(gt))
    coco_gt.createIndex()
    ev = COCOeval(coco_gt, coco_gt.loadRes(json.loads(json.dumps(dets))), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  assert out["AP"] == pytest.approx(ev.stats[0], abs=1e-4)
  assert out["AP50"] == pytest.approx(ev.stats[1], abs=1e-4)


@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_voc_metrics_equal_the_devkit_on_boxes_past_the_image(tmp_path, capsys, metric):
  from tests.evaluation.test_voc_metric import devkit_loop

  for seed in range(3):
    gt, dets = _random_set(seed)
    code, out, _ = _run_main(tmp_path, capsys, gt, dets, metric)
    assert code == 0
    xyxy = lambda b: np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]])
    cls = {3: 0, 9: 1}
    gts = [(a["image_id"], cls[a["category_id"]], xyxy(a["bbox"]), False)
           for a in gt["annotations"]]
    det_rows = [(d["image_id"], cls[d["category_id"]], d["score"], xyxy(d["bbox"]))
                for d in dets]
    want = devkit_loop(gts, det_rows, num_classes=2, use_07_metric=metric == "voc07")
    assert out["per_class"]["a"] == pytest.approx(want[0], abs=1e-12)
    assert out["per_class"]["b"] == pytest.approx(want[1], abs=1e-12)


def test_boxes_without_area_are_dropped_and_counted(tmp_path, capsys):
  gt = dict(GT, annotations=GT["annotations"] + [
      {"image_id": 3, "category_id": 17, "bbox": [50, 50, -10, 20]},    # reversed width
      {"image_id": 3, "category_id": 17, "bbox": [50, 50, 10, 0]}])     # zero height
  dets = DETS + [{"image_id": 1, "category_id": 17, "bbox": [5, 5, 0, 10], "score": 0.95}]
  for metric, expected in (("voc07", 6 / 11), ("voc12", 0.5416666666666666)):
    code, out, _ = _run_main(tmp_path, capsys, gt, dets, metric)
    assert code == 0 and out["AP50"] == pytest.approx(expected, abs=1e-12), metric
    assert (out["num_dropped_gt"], out["num_dropped"], out["num_gt"]) == (2, 1, 5)


def test_pixel_convention_flag(tmp_path, capsys):
  # GT [0, 0, 10, 10], det [0, 0, 10, 14] (xyxy): IoU 100/140 = 0.714 continuous,
  # 121/165 = 0.733 with +1; and det [0, 0, 10, 20]: 100/200 = 0.5 (a miss, IoU must
  # exceed 0.5) continuous but 121/231 = 0.524 (a hit) with the devkit's +1.
  gt = dict(GT, annotations=[{"image_id": 1, "category_id": 17, "bbox": [0, 0, 10, 10]}])
  dets = [{"image_id": 1, "category_id": 17, "bbox": [0, 0, 10, 20], "score": 0.5}]
  (tmp_path / "gt.json").write_text(json.dumps(gt))
  (tmp_path / "dets.json").write_text(json.dumps(dets))
  results = {}
  for convention in ("auto", "voc", "continuous"):
    assert evaluate.run([f"--gt={tmp_path / 'gt.json'}", f"--dets={tmp_path / 'dets.json'}",
                         "--metric=voc12", f"--pixel_convention={convention}", "--json"]) == 0
    results[convention] = json.loads(capsys.readouterr().out)["AP50"]
  assert results == {"auto": 1.0, "voc": 1.0, "continuous": 0.0}


def test_nan_and_inf_are_dropped_and_counted(tmp_path, capsys):
  dets = DETS + [{"image_id": 1, "category_id": 17, "bbox": G[1], "score": float("nan")},
                 {"image_id": 1, "category_id": 17, "bbox": [float("inf"), 0, 1, 1], "score": 1.0},
                 {"image_id": 1, "category_id": 17, "bbox": [None, 0, 1, 1], "score": 1.0}]
  code, out, _ = _run_main(tmp_path, capsys, GT, dets, "voc07")  # json writes NaN/Infinity
  assert code == 0
  assert out["num_dropped"] == 3 and out["num_detections"] == 6
  assert out["AP50"] == pytest.approx(6 / 11, abs=1e-12)  # as without them


@pytest.mark.parametrize("bad, message", [
    ({"image_id": 99, "category_id": 17, "bbox": G[0], "score": 0.5}, "unknown image_id 99"),
    ({"image_id": 1, "category_id": 3, "bbox": G[0], "score": 0.5}, "unknown category_id 3"),
    ({"image_id": 1, "category_id": 17, "bbox": G[0]}, "detection 6 is malformed"),
])
def test_bad_detections_exit_2(tmp_path, capsys, bad, message):
  code, _, err = _run_main(tmp_path, capsys, GT, DETS + [bad], "voc07")
  assert code == 2
  assert message in err and "Traceback" not in err


def test_brainwash_metric(tmp_path, capsys):
  gt = {"images": GT["images"], "categories": [{"id": 1, "name": "head"}],
        "annotations": [dict(a, category_id=1) for a in GT["annotations"][:4]]}
  dets = [dict(d, category_id=1) for d in DETS]
  code, out, _ = _run_main(tmp_path, capsys, gt, dets, "brainwash")
  assert code == 0 and out["AP50"] == pytest.approx(0.5416666666666666, abs=1e-12)
  assert list(out["per_class"]) == ["head"]


def test_evaluate_files_accepts_parsed_json():
  out = coco_files.evaluate_files(GT, DETS, "voc12")
  assert out["AP50"] == pytest.approx(0.5416666666666666, abs=1e-12)


def test_module_entry_point_exit_codes(tmp_path):
  (tmp_path / "gt.json").write_text(json.dumps(GT))
  (tmp_path / "ok.json").write_text(json.dumps(DETS))
  (tmp_path / "bad.json").write_text(json.dumps(
      [{"image_id": "nope", "category_id": 17, "bbox": G[0], "score": 0.5}]))
  env = dict(os.environ, PYTHONPATH=str(REPO))

  def run(dets):
    return subprocess.run(
        [sys.executable, "-m", "anchor_jax.evaluate", f'--gt={tmp_path / "gt.json"}',
         f"--dets={tmp_path / dets}", "--metric=voc07", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

  ok = run("ok.json")
  assert ok.returncode == 0, ok.stderr
  assert json.loads(ok.stdout)["AP50"] == pytest.approx(6 / 11)  # one JSON object
  bad = run("bad.json")
  assert bad.returncode == 2
  assert "unknown image_id 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_unhashable_or_non_list_input_exits_2(tmp_path, capsys):
  bad = {"image_id": [1], "category_id": 17, "bbox": G[0], "score": 0.5}
  code, _, err = _run_main(tmp_path, capsys, GT, DETS + [bad], "voc07")
  assert code == 2 and "detection 6 is malformed" in err
  code, _, err = _run_main(tmp_path, capsys, GT, {"annotations": DETS}, "voc07")
  assert code == 2 and "JSON list" in err
  code, _, err = _run_main(tmp_path, capsys, {"images": []}, DETS, "voc07")
  assert code == 2 and "not COCO format" in err


def test_text_report_by_default(tmp_path, capsys):
  (tmp_path / "gt.json").write_text(json.dumps(GT))
  (tmp_path / "dets.json").write_text(json.dumps(DETS))
  args = [f'--gt={tmp_path / "gt.json"}', f'--dets={tmp_path / "dets.json"}']
  assert evaluate.run(args + ["--metric=voc07"]) == 0
  # 6/11 = 54.55 %; with the classes merged the curve is the same (the dog GT is difficult
  # and no detection touches it); dog has no positive GT.
  assert capsys.readouterr().out.splitlines() == [
      "AP (voc07): 3 images, 5 GT boxes, 6 detections",   # the difficult one counted
      "  AP50 (%)                 54.55",
      "  class-agnostic AP50 (%)  54.55",
      "",
      "  class  AP50 (%)",
      "  -----  --------",
      "  dog           -",     # classes in category-id order
      "  cat       54.55",
  ]
  assert evaluate.run(args + ["--metric=coco"]) == 0
  lines = capsys.readouterr().out.splitlines()
  # (26 + 25 x 2/3 + 25 x 1/2) / 101 = 54.62 % at every IoU threshold (test_coco_numbers).
  assert lines[1:5] == ["  AP (%)                   54.62", "  AP50 (%)                 54.62",
                        "  class-agnostic AP50 (%)  54.62", "  AP75 (%)                 54.62"]
  assert lines[-4:] == ["  class  AP (%)  AP50 (%)", "  -----  ------  --------",
                        "  dog         -         -", "  cat     54.62     54.62"]
  assert evaluate.run(args + ["--metric=voc07", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert {"AP50", "AP50_agnostic", "per_class", "num_dropped", "num_dropped_gt"} <= set(out)
