"""NMS: device (jnp) and host (NumPy) versions equal a plain-Python greedy reference."""
import numpy as np
import pytest

from anchor_jax.evaluation import nms as nms_lib


def _iou(a, b):
  iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
  ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
  inter = iw * ih
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, *, iou_threshold, score_threshold, max_dets, pre_nms_topk=None):
  """Greedy class-wise NMS, one candidate at a time -> [(class, index, score)]."""
  kept_all = []
  for c in range(scores.shape[1]):
    cands = [i for i in range(len(boxes))
             if scores[i, c] > score_threshold and np.all(np.isfinite(boxes[i]))]
    cands.sort(key=lambda i: (-scores[i, c], i))  # ties: lower index first
    if pre_nms_topk is not None:
      cands = cands[:pre_nms_topk]
    kept = []
    for i in cands:
      if all(_iou(boxes[i], boxes[j]) <= iou_threshold for j in kept):
        kept.append(i)
    kept_all += [(-float(scores[i, c]), c, i) for i in kept]
  kept_all.sort()  # score desc, then class, then index
  return [(c, i, -s) for s, c, i in kept_all[:max_dets]]


def _random_cases(rng, *, batch, n, c):
  """Random boxes (exact duplicates, a few infinite) and scores (ties, NaNs)."""
  xy = rng.uniform(0, 1, (batch, n, 2))
  wh = rng.uniform(0.02, 0.6, (batch, n, 2))
  boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
  dup = rng.uniform(size=(batch, n)) < 0.1
  boxes[dup] = boxes[:, :1].repeat(n, 1)[dup]  # copies of box 0: IoU 1
  scores = rng.uniform(0, 1, (batch, n, c)).astype(np.float32)
  ties = rng.uniform(size=scores.shape) < 0.3
  scores[ties] = np.round(scores[ties] * 4) / 4  # many equal scores
  scores[rng.uniform(size=scores.shape) < 0.2] = 0.001  # below threshold
  scores[rng.uniform(size=scores.shape) < 0.02] = np.nan
  boxes[rng.uniform(size=(batch, n)) < 0.03, 2] = np.inf  # exp overflow: never kept
  return boxes, scores


def _as_list(out, b):
  valid = np.asarray(out.valid[b])
  assert valid[:valid.sum()].all()  # detections first, padding at the end
  return [(int(c), int(i), float(s)) for c, i, s in zip(
      np.asarray(out.classes[b])[valid], np.asarray(out.indices[b])[valid],
      np.asarray(out.scores[b])[valid])]


CONFIGS = [  # (batch, N, C, kwargs)
    (40, 30, 3, dict(iou_threshold=0.45, score_threshold=0.005, max_dets=300)),
    (40, 50, 5, dict(iou_threshold=0.3, score_threshold=0.1, max_dets=12)),
    (20, 13, 1, dict(iou_threshold=0.6, score_threshold=0.0, max_dets=5)),
    (20, 40, 4, dict(iou_threshold=0.45, score_threshold=0.005, max_dets=50, pre_nms_topk=6)),
]


@pytest.mark.parametrize("backend", ["host", "device"])
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_matches_reference_on_random_cases(backend, config):
  batch, n, c, kwargs = CONFIGS[config]
  rng = np.random.default_rng(config)
  boxes, scores = _random_cases(rng, batch=batch, n=n, c=c)
  out = nms_lib.nms(boxes, scores, backend=backend, **kwargs)
  assert np.asarray(out.boxes).shape == (batch, kwargs["max_dets"], 4)
  for b in range(batch):
    want = reference_nms(boxes[b], scores[b], **kwargs)
    got = _as_list(out, b)
    assert [(c_, i) for c_, i, _ in got] == [(c_, i) for c_, i, _ in want], (backend, b)
    np.testing.assert_array_equal([s for *_, s in got], [s for *_, s in want])
    valid = np.asarray(out.valid[b])
    np.testing.assert_array_equal(np.asarray(out.boxes[b])[valid],
                                  boxes[b][np.asarray(out.indices[b])[valid]])


def test_padding_and_empty_input():
  boxes = np.zeros((2, 4, 4), np.float32)
  scores = np.zeros((2, 4, 3), np.float32)  # nothing above threshold
  for backend in ("host", "device"):
    out = nms_lib.nms(boxes, scores, backend=backend, max_dets=7)
    assert not np.asarray(out.valid).any()
    np.testing.assert_array_equal(out.classes, -1)
    np.testing.assert_array_equal(out.indices, -1)
    assert np.asarray(out.scores).shape == (2, 7)


def test_hand_case():
  # Three boxes of one class: 1 overlaps 0 (IoU 0.6 > 0.45), 2 is apart.
  boxes = np.array([[[0, 0, 10, 10], [0, 0, 10, 6], [20, 20, 30, 30]]], np.float32)
  scores = np.array([[[0.9], [0.8], [0.7]]], np.float32)
  for backend in ("host", "device"):
    out = nms_lib.nms(boxes, scores, backend=backend, max_dets=3)
    np.testing.assert_array_equal(out.indices[0], [0, 2, -1])
    np.testing.assert_allclose(out.scores[0], [0.9, 0.7, 0.0])
    out = nms_lib.nms(boxes, scores, backend=backend, max_dets=3, iou_threshold=0.6)
    np.testing.assert_array_equal(out.indices[0], [0, 1, 2])  # IoU 0.6 is not > 0.6


def test_unknown_backend():
  with pytest.raises(ValueError, match="backend"):
    nms_lib.nms(np.zeros((1, 1, 4)), np.zeros((1, 1, 1)), backend="gpu")
