"""anchor_jax.analysis.report_text: the exact lines of the text and Markdown reports, on
numbers computed by hand."""
import numpy as np
import pytest

from anchor_jax.analysis import report_text as rt
from anchor_jax.core import anchors as anchors_lib

# Anchors (px) in model-slot order, and five boxes whose fit is worked out below.
ANCHORS = [[64, 32], [16, 16]]
BOXES = [[16, 16], [16, 32], [64, 32], [128, 16], [20, 20]]
# Best shape IoU of each box: (16,16) 1 | (16,32) 256/512 = 0.5 with (16,16) |
# (64,32) 1 | (128,16) 1024/3072 = 1/3 with (64,32) | (20,20) 256/400 = 0.64 with (16,16).
MEAN_BEST_IOU = (1 + 0.5 + 1 + 1 / 3 + 0.64) / 5      # 0.6947
# IoU >= 0.5: 4 of 5; ratio rule: (128,16) is 2x / 0.5x of (64,32), inside 4x: 5 of 5.
# Usage in slot order: (64,32) 2 boxes, (16,16) 3 boxes.


def test_numbers_are_formatted_as_documented():
  assert rt.num(MEAN_BEST_IOU) == "0.695" and rt.num(None) == "-" and rt.num(float("nan")) == "-"
  assert rt.pct(0.8) == "80.0" and rt.pct(6 / 11, 2) == "54.55" and rt.pct(None, 2) == "-"
  assert rt.wh([13.66, 16.04]) == "13.7 x 16.0"
  assert rt.shape_cells([[9.6, 9.0], [160, 160]]) == ["  9.6 x   9.0", "160.0 x 160.0"]
  assert [rt.count(v) for v in (7, 7.0, 2.25, None)] == ["7", "7", "2.2", "-"]
  assert rt.area_order([[64, 32], [16, 16], [8, 32], [32, 8]]).tolist() == [2, 1, 3, 0]   # ties by w


def test_anchor_sets_with_usage_and_fit():
  fit = anchors_lib.fit_stats(ANCHORS, BOXES)
  assert fit["usage"] == [2, 3] and fit["bpr"] == 0.8 and fit["bpr_ratio"] == 1.0
  assert fit["mean_best_iou"] == pytest.approx(MEAN_BEST_IOU)
  text = rt.to_text(rt.anchor_fit_blocks({"learned": ANCHORS}, {"learned": fit}))
  # Sorted by area, usage follows its anchor: (16, 16) holds 3 boxes.
  assert text.splitlines() == [
      "  #      learned  usage",
      "  -  -----------  -----",
      "  1  16.0 x 16.0      3",
      "  2  64.0 x 32.0      2",
      "",
      "  fit on 5 boxes             learned",
      "  -------------------------  -------",
      "  mean best IoU                0.695",
      "  BPR, IoU >= 0.5 (%)           80.0",
      "  BPR, YOLOv5 ratio < 4 (%)    100.0",
  ]


def test_sets_side_by_side_and_markdown():
  initial = [[160, 160], [160, 160]]
  sets = {"initial": initial, "learned": ANCHORS}
  fits = {k: anchors_lib.fit_stats(v, BOXES) for k, v in sets.items()}
  # (160, 160) vs the boxes: IoU 256/25600 = 0.01 ... (64,32) 2048/25600 = 0.08; no box
  # is within 4x of 160 on both sides except (64, 32) (2.5x, 5x: no) -> ratio BPR 0.
  assert fits["initial"]["bpr_ratio"] == 0.0
  table = rt.fit_table(fits)
  assert table.rows[0] == ["mean best IoU", rt.num(fits["initial"]["mean_best_iou"]), "0.695"]
  assert table.rows[1:] == [["BPR, IoU >= 0.5 (%)", "0.0", "80.0"],
                            ["BPR, YOLOv5 ratio < 4 (%)", "0.0", "100.0"]]
  anchors = rt.to_text([rt.anchors_table(sets, rt.usage_columns(fits))]).splitlines()
  assert anchors[0] == "  #        initial  usage      learned  usage"
  assert anchors[2] == "  1  160.0 x 160.0      5  16.0 x 16.0      3"
  markdown = rt.to_markdown([rt.Heading("fit"), table, "done"])
  assert markdown.splitlines()[:4] == ["## fit", "", "| fit on 5 boxes | initial | learned |",
                                       "| --- | --- | --- |"]
  assert "| BPR, YOLOv5 ratio < 4 (%) | 0.0 | 100.0 |" in markdown
  assert markdown.endswith("\n\ndone")


def test_voc_eval_report():
  result = {"metric": "voc07", "AP50": 6 / 11, "AP50_agnostic": 0.5, "step": 7, "split": "eval",
            "per_class": {"cat": 6 / 11, "dog": None}, "num_images": 3, "num_gt": 4,
            "num_detections": 6, "num_dropped": 1, "num_dropped_gt": 0}
  assert rt.to_text(rt.eval_blocks(result)).splitlines() == [
      "AP (voc07, step 7, eval split): 3 images, 4 GT boxes, 6 detections",
      "  AP50 (%)                 54.55",
      "  class-agnostic AP50 (%)  50.00",
      "",
      "  dropped: 1 detections (NaN/inf or no area)",
      "  class  AP50 (%)",
      "  -----  --------",
      "  cat       54.55",
      "  dog           -",
  ]
  assert rt.to_text(rt.eval_blocks(None)) == "no evaluation yet (eval.jsonl is absent or empty)"


def test_coco_eval_report_has_ap_its_splits_and_both_class_columns():
  result = {"metric": "coco", "AP": 0.3, "AP50": 0.5, "AP75": 0.25, "APs": None, "APm": 0.1,
            "APl": 0.2, "AP50_agnostic": 0.55, "per_class": {"a": 0.3},
            "per_class_AP50": {"a": 0.5}}
  assert rt.to_text(rt.eval_blocks(result)).splitlines() == [
      "AP (coco)",
      "  AP (%)                   30.00",
      "  AP50 (%)                 50.00",
      "  class-agnostic AP50 (%)  55.00",
      "  AP75 (%)                 25.00",
      "  AP small (%)                 -",
      "  AP medium (%)            10.00",
      "  AP large (%)             20.00",
      "",
      "  class  AP (%)  AP50 (%)",
      "  -----  ------  --------",
      "  a       30.00     50.00",
  ]


def test_train_summary_lines():
  summary = {"step": 1200, "total_steps": 1200, "steps_run": 800, "wall_s": 201.26,
             "train_s": 180.04, "images_per_sec": 71.1, "steady_images_per_sec": 88.25,
             "initial_anchors_px": np.full((2, 2), 160.0),
             "learned_anchors_px": np.array([[13.66, 16.04], [51.9, 33.6]]),
             "eval": {"AP50": 0.1113, "AP50_agnostic": 0.2049}, "plot": "runs/d/anchors.png",
             "checkpoint": "runs/d/checkpoints/1200", "workdir": "runs/d"}
  assert rt.to_text(rt.train_blocks(summary)).splitlines() == [
      "run summary",
      "  steps      1200 of 1200 (800 this run)",
      "  wall time  201.3 s (training loop 180.0 s, compile and evals included)",
      "  images/s   71.1 over the loop, 88.2 median of the logged windows after the first",
      "",
      "  anchor   initial (px)      learned (px)",
      "  ------  -------------  --  ------------",
      "  0       160.0 x 160.0  ->   13.7 x 16.0",
      "  1       160.0 x 160.0  ->   51.9 x 33.6",
      "",
      "  AP50 at step 1200 (%)    11.13",
      "  class-agnostic AP50 (%)  20.49",
      "",
      "  checkpoint    runs/d/checkpoints/1200",
      "  figure        runs/d/anchors.png",
      "  logs          runs/d (metrics.jsonl, anchors.jsonl, eval.jsonl)",
      "  more figures  python -m anchor_jax.inspect --workdir=runs/d",
  ]


def test_inspect_report_heading_and_sets():
  summary = {"workdir": "runs/d", "step": 4, "total_steps": 4, "anchors_init": "identical",
             "dataset": {"name": "synthetic", "label": "synthetic:mixed", "image_size": 64,
                         "num_images": 200, "num_boxes": 5},
             "initial_anchors_px": [[160, 160]] * 2, "kmeans_anchors_px": [[16, 16], [64, 32]],
             "learned_anchors_px": ANCHORS,
             "fit": {k: anchors_lib.fit_stats(v, BOXES) for k, v in (
                 ("initial", [[160, 160]] * 2), ("kmeans", [[16, 16], [64, 32]]),
                 ("learned", ANCHORS))},
             "eval": None, "plots": {"density": "runs/d/inspect/anchors_density.png"}}
  lines = rt.to_text(rt.inspect_blocks(summary)).splitlines()
  assert lines[:3] == ["runs/d: synthetic:mixed at 64 px, step 4 of 4", "=" * 45,
                       "5 GT boxes of the first 200 training images"]
  assert ("  #  initial (identical)  usage      k-means  usage      learned  usage"
          in lines)
  assert "  1        160.0 x 160.0      5  16.0 x 16.0      3  16.0 x 16.0      3" in lines
  assert "  BPR, IoU >= 0.5 (%)                        0.0     80.0     80.0" in lines
  assert "  density  runs/d/inspect/anchors_density.png" in lines


def test_train_summary_of_faster_rcnn_adds_rpn_recall():
  summary = {"step": 4, "total_steps": 4, "initial_anchors_px": np.full((1, 2), 8.0),
             "learned_anchors_px": np.full((1, 2), 9.0),
             "eval": {"AP50": 0.5, "AP50_agnostic": 0.6, "RPN_recall@50": 0.25,
                      "RPN_recall@100": 0.5, "RPN_recall@300": 0.75},
             "checkpoint": "c"}
  lines = rt.to_text(rt.train_blocks(summary)).splitlines()
  assert lines[-7:-1] == [
      "  AP50 at step 4 (%)                        50.00",
      "  class-agnostic AP50 (%)                   60.00",
      "  RPN recall at 50 proposals, IoU 0.5 (%)   25.00",
      "  RPN recall at 100 proposals, IoU 0.5 (%)  50.00",
      "  RPN recall at 300 proposals, IoU 0.5 (%)  75.00",
      "",
  ]
