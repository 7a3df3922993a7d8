"""Tests for anchor_jax.anchors: inits, IoU k-means, fit stats, export, CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from anchor_jax.analysis import anchor_report
from anchor_jax.core import anchors as anc
from anchor_jax.tools import anchors as anchors_tool
from tests import REPO

# Four well-separated shapes (grid units) for planted-cluster tests.
PLANTED = np.array([[0.8, 1.2], [2.5, 2.0], [1.5, 5.0], [7.0, 6.0]])


def planted_boxes(*, per_cluster=300, sigma=0.03, seed=0):
  """[4 * per_cluster, 2] tight log-normal clusters around PLANTED."""
  rng = np.random.default_rng(seed)
  log_wh = np.log(np.repeat(PLANTED, per_cluster, axis=0))
  return np.exp(log_wh + sigma * rng.standard_normal(log_wh.shape))


# ---------------------------------------------------------------- inits


def test_identical_and_published_sets():
  np.testing.assert_array_equal(anc.init_anchors("identical", 3), [[5, 5]] * 3)
  voc = anc.init_anchors("voc", 5)
  np.testing.assert_array_equal(voc[0], [1.3221, 1.73145])
  np.testing.assert_array_equal(voc[4], [11.2364, 10.0071])
  coco = anc.init_anchors("COCO", 5)
  np.testing.assert_array_equal(coco[0], [0.57273, 0.677385])
  np.testing.assert_array_equal(coco[3], [7.88282, 3.52778])
  assert voc.shape == coco.shape == (5, 2)


def test_uniform_matches_paper_for_five():
  got = anc.init_anchors("uniform", 5)
  want = anc.sort_by_area([[3, 3], [3, 9], [9, 9], [9, 3], [6, 6]])
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("num", [1, 2, 4, 6, 9, 10])
def test_uniform_general_rule(num):
  got = anc.uniform_anchors(num)
  assert got.shape == (num, 2)
  assert np.all((got >= 3) & (got <= 9))
  assert len(np.unique(got, axis=0)) == num  # distinct shapes.
  if num == 1:
    np.testing.assert_array_equal(got, [[6, 6]])  # the range's centre.
  if num == 4:
    np.testing.assert_array_equal(got, [[3, 3], [3, 9], [9, 3], [9, 9]])  # corners.
  if num == 9:
    grid = [[w, h] for w in (3, 6, 9) for h in (3, 6, 9)]  # the full 3 x 3 grid.
    np.testing.assert_array_equal(got, anc.sort_by_area(grid))


def test_explicit_list_parsing():
  np.testing.assert_allclose(anc.init_anchors("1.3,1.7 3.2,4.0", 2), [[1.3, 1.7], [3.2, 4.0]])
  # darknet's own spelling and array-likes work too.
  np.testing.assert_allclose(anc.init_anchors("1.3,1.7, 3.2,4.0", 2), [[1.3, 1.7], [3.2, 4.0]])
  np.testing.assert_allclose(anc.init_anchors([[2, 3]], 1), [[2, 3]])


@pytest.mark.parametrize("init, num, match", [
    ("1.3,1.7 3.2,4.0", 3, "got 2 anchors but num=3"),
    ("1.3,0 3.2,4.0", 2, "finite and > 0"),
    ("1.3,nan", 1, "finite and > 0"),
    ("1.3,-2", 1, "finite and > 0"),
    ("1.3,1.7 3.2", 2, "even"),
    ("1.3,x1", 1, "expected numbers"),
    ("voc", 3, "set of 5 anchors; got num=3"),
    ("coco", 9, "set of 5 anchors; got num=9"),
    ("kmeans", 5, "needs boxes_wh"),
    ("kmeens", 5, "valid: identical, uniform, voc, coco, kmeans, autoanchor, calc_anchors"),
    ("identical", 0, "num >= 1"),
])
def test_bad_inits_raise_clearly(init, num, match):
  with pytest.raises(ValueError, match=match):
    anc.init_anchors(init, num)


def test_kmeans_init_and_log_round_trip():
  got = anc.init_anchors("kmeans", 4, boxes_wh=planted_boxes(), seed=1)
  np.testing.assert_array_equal(got, anc.kmeans_iou(planted_boxes(), 4, seed=1))
  voc = anc.init_anchors("voc", 5)
  np.testing.assert_allclose(anc.to_log(voc), np.log(voc))
  np.testing.assert_allclose(anc.from_log(anc.to_log(voc)), voc, rtol=1e-12)
  with pytest.raises(ValueError, match="positive"):
    anc.to_log([[1.0, 0.0]])


# ---------------------------------------------------------------- k-means


def test_kmeans_recovers_planted_centres():
  got = anc.kmeans_iou(planted_boxes(), 4, seed=0)
  np.testing.assert_allclose(got, anc.sort_by_area(PLANTED), rtol=0.01)


def test_kmeans_beats_uniform_and_is_deterministic():
  boxes = planted_boxes()
  km = anc.kmeans_iou(boxes, 5, seed=3)
  km_iou = anc.fit_stats(km, boxes)["mean_best_iou"]
  uni_iou = anc.fit_stats(anc.init_anchors("uniform", 5), boxes)["mean_best_iou"]
  assert km_iou > 0.9 > uni_iou
  np.testing.assert_array_equal(km, anc.kmeans_iou(boxes, 5, seed=3))


@pytest.mark.parametrize("seed", [1, 2, 7, 123])
def test_kmeans_other_seeds_converge_on_separated_data(seed):
  got = anc.kmeans_iou(planted_boxes(seed=seed), 4, seed=seed)
  np.testing.assert_allclose(got, anc.sort_by_area(PLANTED), rtol=0.01)


def test_kmeans_more_centres_than_distinct_shapes():
  shapes = np.array([[1.0, 1.0], [2.0, 3.0], [4.0, 2.0]])
  got = anc.kmeans_iou(np.tile(shapes, (10, 1)), 5, seed=0)
  assert got.shape == (5, 2) and np.all(np.isfinite(got))
  assert {tuple(r) for r in got} == {tuple(r) for r in shapes}  # the rest are duplicates.
  assert anc.fit_stats(got, shapes)["mean_best_iou"] == 1.0


def test_kmeans_fewer_boxes_than_k_and_single_box():
  got = anc.kmeans_iou([[2.0, 3.0]], 3, seed=0)
  np.testing.assert_array_equal(got, [[2, 3]] * 3)


def test_empty_cluster_is_reseeded_at_worst_fit_box():
  boxes = np.array([[1.0, 1.0]] * 5 + [[3.0, 3.0]] * 5)
  # The (100, 100) centre wins no box: it must move to the poorly fit (3, 3) boxes.
  got = anc._lloyd(boxes, np.ones(10), np.array([[1.0, 1.0], [100.0, 100.0]]),
                   max_iter=10, chunk_size=4)
  np.testing.assert_allclose(anc.sort_by_area(got), [[1, 1], [3, 3]])


def test_kmeans_drops_bad_shapes_and_rejects_all_bad():
  boxes = planted_boxes()
  dirty = np.concatenate([boxes, [[np.nan, 1.0], [0.0, 2.0], [-1.0, 1.0], [np.inf, 3.0]]])
  np.testing.assert_array_equal(anc.kmeans_iou(dirty, 4, seed=0), anc.kmeans_iou(boxes, 4, seed=0))
  assert anc.clean_shapes(dirty)[1] == 4
  with pytest.raises(ValueError, match="no valid box shapes"):
    anc.kmeans_iou([[0.0, 1.0], [np.nan, 2.0]], 2, seed=0)


def test_kmeans_chunking_does_not_change_result():
  boxes = planted_boxes(per_cluster=50)
  np.testing.assert_array_equal(anc.kmeans_iou(boxes, 4, seed=0, chunk_size=7),
                                anc.kmeans_iou(boxes, 4, seed=0))


# ---------------------------------------------------------------- fit stats


def test_fit_stats_hand_computed():
  # IoUs 1 and (1*1)/(2*2) = 0.25.
  # Ratio rule: (2, 2) is within 4x of (1, 1) on both sides, so it counts there.
  assert anc.fit_stats([[1, 1]], [[1, 1], [2, 2]]) == {
      "mean_best_iou": 0.625, "bpr": 0.5, "bpr_ratio": 1.0, "usage": [2], "num_boxes": 2}
  # (5, 1): 5x the anchor's width, outside the ratio-4 rule; (3.9, 1) inside it, though
  # its IoU 1 / 3.9 misses 0.5.
  got = anc.fit_stats([[1, 1]], [[1, 1], [5, 1], [3.9, 1]], ratio_thresh=4.0)
  assert got["bpr_ratio"] == pytest.approx(2 / 3) and got["bpr"] == pytest.approx(1 / 3)
  assert anc.fit_stats([[1, 1]], [[5, 1]], ratio_thresh=6.0)["bpr_ratio"] == 1.0
  # (1, 2) has IoU 0.5 with both anchors: tie goes to the first; bpr counts IoU >= 0.5.
  got = anc.fit_stats([[1, 1], [2, 2]], [[1, 1], [2, 2], [1, 2]])
  assert got["usage"] == [2, 1] and got["bpr"] == 1.0
  assert got["mean_best_iou"] == pytest.approx(2.5 / 3)
  assert anc.fit_stats([[1, 1], [2, 2]], [[1, 2]], iou_thresh=0.51)["bpr"] == 0.0
  # Scale-free: pixels and grid units give the same numbers.
  in_px = anc.fit_stats([[32, 32]], [[32, 32], [64, 64]])
  assert in_px == anc.fit_stats([[1, 1]], [[1, 1], [2, 2]])


# ---------------------------------------------------------------- export


def test_darknet_line():
  line = anc.to_darknet_line(anc.init_anchors("voc", 5))
  assert line == ("anchors=1.3221,1.7314, 3.1928,4.0094, 5.0559,8.0989, "
                  "9.4711,4.8405, 11.2364,10.0071")
  np.testing.assert_allclose(anc.from_darknet_line(line), anc.init_anchors("voc", 5), atol=5e-5)
  np.testing.assert_allclose(anc.from_darknet_line("anchors =  1.3221,1.73145,  3.19,4.0"),
                             [[1.3221, 1.73145], [3.19, 4.0]])


def test_yaml_round_trip():
  a = np.array([[0.123456789, 1.5], [3.0, 2.25]])
  text = anc.to_yaml(a, stride=32)
  np.testing.assert_allclose(anc.from_yaml(text), a, atol=1e-6)
  doc = yaml.safe_load(text)
  assert doc["stride"] == 32 and doc["units"] == "grid" and doc["num_anchors"] == 2
  np.testing.assert_allclose(doc["anchors_px"], a * 32, atol=1e-6)


def test_config_init_string_round_trips_through_init_anchors():
  voc = anc.init_anchors("voc", 5)
  np.testing.assert_allclose(anc.init_anchors(anc.to_init_string(voc), 5), voc, atol=5e-5)


# ---------------------------------------------------------------- CLI


def write_csv(path, text):
  path.write_text(text)
  return str(path)


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "anchor_jax.anchors", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=60)


def test_cli_fits_csv(tmp_path):
  boxes_px = planted_boxes(per_cluster=100) * 32
  rows = "\n".join(f"img{i},{w:.3f},{h:.3f}" for i, (w, h) in enumerate(boxes_px))
  csv_path = write_csv(tmp_path / "b.csv", "image,w,h\n" + rows + "\n")
  proc = run_cli(f"--boxes={csv_path}", "--k=4", "--seed=0", "--json")
  assert proc.returncode == 0, proc.stderr
  out = json.loads(proc.stdout)  # exactly one JSON object.
  keys = {"anchors", "anchors_grid", "mean_best_iou", "bpr", "usage", "num_boxes", "darknet",
          "yaml"}
  assert keys <= set(out) and proc.stdout.count("\n") == 1
  px = np.array(out["anchors"])
  assert px.shape == (4, 2) and np.all(np.diff(px[:, 0] * px[:, 1]) > 0)  # sorted by area.
  np.testing.assert_allclose(px, PLANTED[np.argsort(PLANTED.prod(1))] * 32, rtol=0.02)
  np.testing.assert_allclose(np.array(out["anchors_grid"]) * 32, px)
  assert out["num_boxes"] == 400 and sum(out["usage"]) == 400 and out["bpr"] == 1.0
  assert out["darknet"].startswith("anchors=")
  np.testing.assert_allclose(anc.from_yaml(out["yaml"]), out["anchors_grid"], atol=1e-6)


def test_cli_bad_csv_exits_2_without_traceback(tmp_path):
  csv_path = write_csv(tmp_path / "bad.csv", "w,h\n10,20\n10,abc\n")
  proc = run_cli(f"--boxes={csv_path}")
  assert proc.returncode == 2 and proc.stdout == ""
  assert "bad.csv" in proc.stderr and "line 3" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("text, match", [
    ("width,h\n1,2\n", "missing column(s) w"),
    ("", "empty file"),
    ("w,h\n", "no data rows"),
    ("w,h\n1,\n", "line 2: non-numeric"),
    ("w,h\n0,2\n-1,3\n", "all 2 rows have non-finite or non-positive"),
])
def test_main_bad_csv_messages(tmp_path, capsys, text, match):
  csv_path = write_csv(tmp_path / "boxes.csv", text)
  assert anchors_tool.run([f"--boxes={csv_path}"]) == 2
  err = capsys.readouterr().err
  assert csv_path in err and match in err


def test_main_missing_file(tmp_path, capsys):
  assert anchors_tool.run([f"--boxes={tmp_path}/nope.csv"]) == 2
  assert "nope.csv: cannot read" in capsys.readouterr().err


def test_main_workdir_reports_and_exports(tmp_path, capsys):
  lines = [{"step": 0, "anchors": [[5, 5]] * 2, "anchors_px": [[160, 160]] * 2, "counts": [1, 1]},
           {"step": 100, "anchors": [[3, 3], [1, 1]], "anchors_px": [[96, 96], [32, 32]],
            "counts": [7, 3]}]
  (tmp_path / "anchors.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
  csv_path = write_csv(tmp_path / "b.csv", "w,h\n32,32\n64,64\n96,96\n")
  assert anchors_tool.run([f"--workdir={tmp_path}", f"--boxes={csv_path}", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["step"] == 100
  assert out["anchors"] == [[32, 32], [96, 96]] and out["anchors_grid"] == [[1, 1], [3, 3]]
  assert out["counts"] == [3, 7] and out["order"] == [1, 0]  # reordered with the anchors.
  # (64, 64): IoU 0.25 with (32, 32) and 4/9 with (96, 96).
  assert out["usage"] == [1, 2] and out["bpr"] == pytest.approx(2 / 3)
  assert out["mean_best_iou"] == pytest.approx((1 + 4 / 9 + 1) / 3)
  darknet = (tmp_path / "anchors_darknet.txt").read_text()
  assert darknet == "anchors=1.0000,1.0000, 3.0000,3.0000\n"
  exported = anc.from_yaml((tmp_path / "anchors.yaml").read_text())
  np.testing.assert_allclose(exported, [[1, 1], [3, 3]])


def test_main_workdir_without_boxes_and_bad_jsonl(tmp_path, capsys):
  (tmp_path / "anchors.jsonl").write_text(json.dumps({"step": 5, "anchors": [[2, 1]]}) + "\n\n")
  assert anchors_tool.run([f"--workdir={tmp_path}", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["anchors"] == [[64, 32]] and out["mean_best_iou"] is None and out["usage"] is None
  for bad in ('{"step": 1}\n', "[1, 2]\n", '{"anchors": []}\n', '{"anchors": [[1, -1]]}\n', ""):
    (tmp_path / "anchors.jsonl").write_text(bad)
    assert anchors_tool.run([f"--workdir={tmp_path}"]) == 2, bad
    assert "anchors.jsonl" in capsys.readouterr().err


def test_bundled_example_csv_is_usable():
  boxes = anchor_report.read_boxes_csv(os.path.join(REPO, "experiments", "examples", "boxes.csv"))
  assert boxes.shape == (2000, 2) and np.all(boxes > 0) and np.all(boxes <= 416)


def test_main_prints_a_text_report_by_default(tmp_path, capsys):
  lines = [{"step": 0, "anchors": [[5, 5]] * 2, "anchors_px": [[160, 160]] * 2, "counts": [1, 1]},
           {"step": 100, "anchors": [[3, 3], [1, 1]], "anchors_px": [[96, 96], [32, 32]],
            "counts": [7, 3]}]
  (tmp_path / "anchors.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
  csv_path = write_csv(tmp_path / "b.csv", "w,h\n32,32\n64,64\n96,96\n")
  assert anchors_tool.run([f"--workdir={tmp_path}", f"--boxes={csv_path}"]) == 0
  # Mean best IoU (1 + 4/9 + 1) / 3 = 0.815; BPR 2/3; (64, 64) is 2x (32, 32): within 4x.
  assert capsys.readouterr().out.splitlines() == [
      "learned anchors at step 100 (px, sorted by area; assigned: GT boxes given to each over "
      "the last logged interval)",
      "  #      learned  usage  assigned",
      "  -  -----------  -----  --------",
      "  1  32.0 x 32.0      1         3",
      "  2  96.0 x 96.0      2         7",
      "",
      "  fit on 3 boxes             learned",
      "  -------------------------  -------",
      "  mean best IoU                0.815",
      "  BPR, IoU >= 0.5 (%)           66.7",
      "  BPR, YOLOv5 ratio < 4 (%)    100.0",
      "",
      "darknet cfg: anchors=1.0000,1.0000, 3.0000,3.0000",
      'config:      --config.anchors.init="1.0000,1.0000 3.0000,3.0000"',
      f"wrote {tmp_path}/anchors_darknet.txt, {tmp_path}/anchors.yaml",
  ]
  assert anchors_tool.run([f"--workdir={tmp_path}", f"--boxes={csv_path}", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["bpr_ratio"] == 1.0 and out["ratio_thresh"] == 4.0
  assert out["exported"] == [f"{tmp_path}/anchors_darknet.txt", f"{tmp_path}/anchors.yaml"]


def test_csv_fit_text_report_names_k_and_seed(tmp_path, capsys):
  csv_path = write_csv(tmp_path / "b.csv", "w,h\n10,10\n10,10\n40,20\n0,5\n")
  assert anchors_tool.run([f"--boxes={csv_path}", "--k=2"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "2 anchors by IoU k-means (seed 0; px, sorted by area), 1 invalid box shapes skipped"
  assert lines[3:5] == ["  1  10.0 x 10.0      2", "  2  40.0 x 20.0      1"]
  assert "  mean best IoU                1.000" in lines
