"""VOC AP against hand-computed precision/recall curves and a literal devkit loop."""
import numpy as np
import pytest

from anchor_jax.evaluation import voc_metric as voc_eval

FAR = [300.0, 300.0, 320.0, 320.0]  # a box overlapping no GT


def _evaluate(gts, dets, *, num_classes=1, use_07_metric, **kwargs):
  """gts: [(image, class, box, difficult)], dets: [(image, class, score, box)]."""
  gts = list(zip(*gts)) if gts else [[], [], np.zeros((0, 4)), []]
  dets = list(zip(*dets)) if dets else [[], [], [], np.zeros((0, 4))]
  return voc_eval.voc_evaluate(
      gt_image=gts[0], gt_class=gts[1], gt_boxes=gts[2], gt_difficult=gts[3],
      det_image=dets[0], det_class=dets[1], det_scores=dets[2], det_boxes=dets[3],
      num_classes=num_classes, use_07_metric=use_07_metric, **kwargs)


def _ap(gts, dets, **kwargs):
  return {metric: _evaluate(gts, dets, use_07_metric=metric == "voc07", **kwargs).mean_ap
          for metric in ("voc07", "voc12")}


G = [[10, 10, 50, 50], [60, 60, 100, 100], [0, 0, 40, 30], [50, 0, 90, 30]]


def test_known_pr_curve():
  # 4 positives: g0, g1 in image 0; g2, g3 in image 1. By score: TP FP TP FP FP TP.
  gts = [(0, 0, G[0], False), (0, 0, G[1], False), (1, 0, G[2], False), (1, 0, G[3], False)]
  dets = [(1, 0, 0.4, G[3]), (0, 0, 0.9, G[0]), (0, 0, 0.8, FAR), (1, 0, 0.7, G[2]),
          (1, 0, 0.6, FAR), (0, 0, 0.5, FAR)]  # input order shuffled on purpose
  # recall    .25  .25  .50  .50  .50  .75
  # precision 1    1/2  2/3  1/2  2/5  1/2
  # all-point: envelope 1 on (0, .25], 2/3 on (.25, .5], 1/2 on (.5, .75]:
  #   .25·1 + .25·2/3 + .25·1/2 = 0.541666...
  # 11-point: t = 0, .1, .2 -> 1; t = .3, .4, .5 -> 2/3; t = .6, .7 -> 1/2;
  #   t = .8, .9, 1 -> 0:  (3 + 2 + 1) / 11 = 0.545454...
  ap = _ap(gts, dets)
  assert ap["voc12"] == pytest.approx(0.25 + 0.25 * 2 / 3 + 0.25 * 0.5, abs=1e-12)
  assert ap["voc07"] == pytest.approx(6 / 11, abs=1e-12)


def test_voc_ap_on_a_curve():
  recall = [0.25, 0.25, 0.5, 0.5, 0.5, 0.75]
  precision = [1, 1 / 2, 2 / 3, 1 / 2, 2 / 5, 1 / 2]
  assert voc_eval.voc_ap(recall, precision, use_07_metric=False) == pytest.approx(0.5416666666666)
  assert voc_eval.voc_ap(recall, precision, use_07_metric=True) == pytest.approx(6 / 11)
  assert voc_eval.voc_ap([], [], use_07_metric=True) == 0.0
  assert voc_eval.voc_ap([], [], use_07_metric=False) == 0.0


def test_11_point_thresholds_match_the_devkits():
  # 0:0.1:1 (MATLAB) and np.arange(0, 1.1, 0.1) give 0.30000000000000004: a recall of
  # exactly 3/10 does not reach "0.3". 10 positives, by score TP TP TP FP TP:
  # recall .1 .2 .3 .3 .4, precision 1 1 1 3/4 4/5.
  # t = 0, .1, .2 -> 1; t = .3(+eps), .4 -> 4/5; t >= .5 -> 0:  (3 + 1.6) / 11.
  assert voc_eval.VOC07_RECALL_THRESHOLDS[3] > 0.3
  gts = [(i, 0, G[0], False) for i in range(10)]
  dets = [(0, 0, 0.9, G[0]), (1, 0, 0.8, G[0]), (2, 0, 0.7, G[0]), (3, 0, 0.6, FAR),
          (4, 0, 0.5, G[0])]
  assert _ap(gts, dets)["voc07"] == pytest.approx(4.6 / 11, abs=1e-12)


def test_difficult_is_neither_tp_nor_fp_nor_positive():
  # Image 0: g0 normal, g1 difficult. A det on g1 (scored highest) is ignored, so the
  # det on g0 is at precision 1: AP 1. Counting g1 as a positive would halve recall;
  # counting the det on it as FP would give precision 1/2.
  gts = [(0, 0, G[0], False), (0, 0, G[1], True)]
  dets = [(0, 0, 0.9, G[1]), (0, 0, 0.8, G[0]), (0, 0, 0.7, G[1])]
  result = _evaluate(gts, dets, use_07_metric=False)
  assert result.mean_ap == 1.0
  assert result.num_positives.tolist() == [1]
  # Without the difficult flag: TP, TP, FP(duplicate): still AP 1, but 2 positives.
  gts[1] = (0, 0, G[1], False)
  assert _evaluate(gts, dets, use_07_metric=False).num_positives.tolist() == [2]
  # The best-overlap GT decides (+1 IoUs): det [5, 0, 105, 100] overlaps a normal GT
  # [0, 0, 100, 60] at 96·61 / (101·101 + 101·61 - 96·61) = 0.557 and a difficult GT
  # [10, 0, 110, 100] at 96·101 / (2·101·101 - 96·101) = 0.906: it is ignored, and the
  # normal GT stays unmatched although IoU > 0.5 -> recall 0, AP 0.
  det = [(0, 0, 0.9, [5, 0, 105, 100])]
  gts = [(0, 0, [0, 0, 100, 60], False), (0, 0, [10, 0, 110, 100], True)]
  assert _evaluate(gts, det, use_07_metric=False).mean_ap == 0.0
  gts[1] = (0, 0, [10, 0, 110, 100], False)  # not difficult: TP on it, AP 1/2 (recall 1/2)
  assert _evaluate(gts, det, use_07_metric=False).mean_ap == 0.5


def test_class_with_only_difficult_gt_is_undefined_and_excluded():
  gts = [(0, 0, G[0], False), (0, 1, G[1], True)]
  dets = [(0, 0, 0.9, G[0]), (0, 1, 0.9, G[1])]
  result = _evaluate(gts, dets, num_classes=3, use_07_metric=True)
  assert result.per_class_ap[0] == 1.0
  assert np.isnan(result.per_class_ap[1]) and np.isnan(result.per_class_ap[2])
  assert result.mean_ap == 1.0


def test_duplicates_are_false_positives():
  # g0 (image 0), g1 (image 1). By score: TP on g0, duplicate on g0 (FP), TP on g1.
  # recall .5 .5 1, precision 1 1/2 2/3.
  # all-point: .5·1 + .5·2/3 = 5/6.   11-point: t <= .5 (6 of them) -> 1, t > .5 -> 2/3:
  # (6 + 5·2/3) / 11.
  gts = [(0, 0, G[0], False), (1, 0, G[1], False)]
  dets = [(0, 0, 0.9, G[0]), (0, 0, 0.8, G[0]), (1, 0, 0.7, G[1])]
  ap = _ap(gts, dets)
  assert ap["voc12"] == pytest.approx(5 / 6, abs=1e-12)
  assert ap["voc07"] == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-12)


def test_plus_one_pixel_convention():
  # GT [0, 0, 9, 9] is 10×10 pixels under the devkit's +1; det [0, 0, 9, 4.5] inside it.
  # +1: inter = 10·5.5 = 55, union = 100 -> 0.55 > 0.5: TP (AP 1).
  # continuous: 9·4.5 / 81 = 0.5, not > 0.5: FP (AP 0).
  gts = [(0, 0, [0, 0, 9, 9], False)]
  dets = [(0, 0, 0.9, [0, 0, 9, 4.5])]
  assert _ap(gts, dets) == {"voc07": 1.0, "voc12": 1.0}
  assert _ap(gts, dets, plus_one=False) == {"voc07": 0.0, "voc12": 0.0}
  # A one-pixel box [5, 5, 5, 5]: area 1 under +1 (IoU 1 with itself), 0 otherwise.
  one = [(0, 0, [5, 5, 5, 5], False)]
  assert _ap(one, [(0, 0, 0.5, [5, 5, 5, 5])])["voc12"] == 1.0
  assert _ap(one, [(0, 0, 0.5, [5, 5, 5, 5])], plus_one=False)["voc12"] == 0.0


def test_iou_threshold_is_strict():
  # +1 IoU of [0, 0, 9, 4] in [0, 0, 9, 9] is 50/100 = 0.5 exactly: not a match.
  gts = [(0, 0, [0, 0, 9, 9], False)]
  assert _ap(gts, [(0, 0, 0.9, [0, 0, 9, 4])])["voc12"] == 0.0


def test_perfect_none_and_empty():
  rng = np.random.default_rng(0)
  lo = rng.uniform(0, 300, (50, 2))
  boxes = np.concatenate([lo, lo + rng.uniform(5, 100, (50, 2))], 1)
  gts = [(int(rng.integers(10)), int(rng.integers(3)), b, False) for b in boxes]
  perfect = [(i, c, float(rng.uniform()), b) for i, c, b, _ in gts]
  for metric, ap in _ap(gts, perfect, num_classes=3).items():
    assert ap == 1.0, metric
  assert _ap(gts, [], num_classes=3) == {"voc07": 0.0, "voc12": 0.0}
  wrong_class = [(i, (c + 1) % 3, s, b) for i, c, s, b in perfect]
  assert _ap(gts, wrong_class, num_classes=3) == {"voc07": 0.0, "voc12": 0.0}
  # No GT at all: every class undefined.
  result = _evaluate([], perfect, num_classes=3, use_07_metric=True)
  assert np.isnan(result.mean_ap) and np.isnan(result.per_class_ap).all()


def devkit_loop(gts, dets, *, num_classes, use_07_metric):
  """The devkit's per-detection loop, literally (reference for the vectorised code)."""
  aps = []
  for c in range(num_classes):
    by_image = {}
    for k, (image, cls, _, _) in enumerate(gts):
      if cls == c:
        by_image.setdefault(image, []).append(k)
    npos = sum(1 for _, cls, _, diff in gts if cls == c and not diff)
    mine = sorted((d for d in dets if d[1] == c), key=lambda d: -d[2])  # stable
    matched, tp, fp = set(), [], []
    for image, _, _, b in mine:
      best, best_k = -np.inf, None
      for k in by_image.get(image, []):
        g = gts[k][2]
        iw = min(b[2], g[2]) - max(b[0], g[0]) + 1
        ih = min(b[3], g[3]) - max(b[1], g[1]) + 1
        inter = max(iw, 0) * max(ih, 0)
        union = (b[2] - b[0] + 1) * (b[3] - b[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1)
        if inter / (union - inter) > best:
          best, best_k = inter / (union - inter), k
      if best > 0.5 and gts[best_k][3]:
        tp.append(0)
        fp.append(0)
      elif best > 0.5 and best_k not in matched:
        matched.add(best_k)
        tp.append(1)
        fp.append(0)
      else:
        tp.append(0)
        fp.append(1)
    if npos == 0:
      aps.append(np.nan)
      continue
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    aps.append(voc_eval.voc_ap(tp / npos, precision, use_07_metric=use_07_metric))
  return np.array(aps)


@pytest.mark.parametrize("use_07_metric", [True, False])
def test_matches_devkit_loop_on_random_sets(use_07_metric):
  rng = np.random.default_rng(1)
  for _ in range(30):
    num_images, num_classes, num_gt = 5, 3, int(rng.integers(0, 20))
    lo = rng.uniform(0, 60, (num_gt, 2)).round()
    gt_boxes = np.concatenate([lo, lo + rng.uniform(4, 30, (num_gt, 2)).round()], 1)
    gts = [(int(rng.integers(num_images)), int(rng.integers(num_classes)), b,
            bool(rng.uniform() < 0.2)) for b in gt_boxes]
    dets = []
    for _ in range(int(rng.integers(0, 60))):
      score = float(rng.integers(0, 6)) / 5  # many ties: input order decides
      if gts and rng.uniform() < 0.7:
        image, cls, b, _ = gts[int(rng.integers(len(gts)))]
        dets.append((image, cls, score, b + rng.normal(0, 3, 4)))
      else:
        lo = rng.uniform(0, 60, 2)
        dets.append((int(rng.integers(num_images)), int(rng.integers(num_classes)), score,
                     np.concatenate([lo, lo + 15])))
    got = _evaluate(gts, dets, num_classes=num_classes, use_07_metric=use_07_metric)
    want = devkit_loop(gts, dets, num_classes=num_classes, use_07_metric=use_07_metric)
    np.testing.assert_allclose(got.per_class_ap, want, rtol=1e-12, atol=0)


def test_rejects_bad_input():
  with pytest.raises(ValueError, match="det_class"):
    _evaluate([(0, 0, G[0], False)], [(0, 5, 0.5, G[0])], use_07_metric=True)
  with pytest.raises(ValueError, match="non-finite"):
    _evaluate([(0, 0, G[0], False)], [(0, 0, np.nan, G[0])], use_07_metric=True)
