"""RPN proposals: static-shape NMS against the greedy reference (caps, padding, non-finite
inputs), and proposal selection against Detectron2's procedure as a plain loop (its
offset batched NMS), plus invariances: anchor order within a level, levels never
suppressing each other."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import proposals
from tests import rcnn_reference as ref


def _clustered_boxes(rng, n, size=64.0):
  centres = rng.uniform(0, size, (4, 2))[rng.integers(0, 4, n)] + rng.normal(0, 3, (n, 2))
  wh = rng.uniform(8, 24, (n, 2))
  return np.concatenate([centres - wh / 2, centres + wh / 2], -1).astype(np.float32)


@pytest.mark.parametrize("max_out", [3, 40])
@pytest.mark.parametrize("thresh", [0.3, 0.7])
def test_nms_fixed_equals_greedy_reference(max_out, thresh):
  rng = np.random.default_rng(int(thresh * 10))
  fn = jax.jit(functools.partial(proposals.nms_fixed, iou_threshold=thresh, max_out=max_out))
  for _ in range(4):
    boxes = _clustered_boxes(rng, 30)
    scores = rng.normal(0, 1, 30).astype(np.float32)
    scores[:3] = [-np.inf, np.nan, scores[3]]                    # dropped, dropped, a tie
    boxes[4, 2] = np.inf                                          # dropped
    idx, valid = map(np.asarray, fn(boxes, scores))
    expected = ref.greedy_nms(boxes, scores, thresh)[:max_out]
    assert idx.shape == valid.shape == (max_out,)
    np.testing.assert_array_equal(idx[valid], expected)
    assert valid.sum() == len(expected) and not valid[len(expected):].any()


def test_nms_fixed_more_slots_than_boxes():
  boxes = jnp.asarray([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], jnp.float32)
  idx, valid = proposals.nms_fixed(boxes, jnp.asarray([0.9, 0.8, 0.1]), iou_threshold=0.5,
                                   max_out=5)
  np.testing.assert_array_equal(np.asarray(idx)[np.asarray(valid)], [0, 2])
  assert idx.shape == (5,) and np.asarray(valid).sum() == 2


def _levels(rng, sizes=(48, 12, 3)):
  logits = [rng.normal(0, 1, n).astype(np.float32) for n in sizes]
  deltas = [rng.normal(0, 0.4, (n, 4)).astype(np.float32) for n in sizes]
  anchors = [_clustered_boxes(rng, n, 40) for n in sizes]
  return logits, deltas, anchors


def _select(logits, deltas, anchors, image_hw, pre=10, post=12, min_size=1.0):
  return jax.jit(functools.partial(
      proposals.select_proposals, pre_nms_top_n=pre, post_nms_top_n=post, nms_thresh=0.5,
      min_size=min_size))(logits, deltas, anchors, image_hw)


@pytest.mark.parametrize("pre,post", [(10, 12), (40, 6), (2, 20)])
def test_select_proposals_equals_detectron2_loop(pre, post):
  rng = np.random.default_rng(pre)
  for _ in range(3):
    logits, deltas, anchors = _levels(rng)
    boxes, scores, valid = map(np.asarray, _select(logits, deltas, anchors, (36, 40), pre, post))
    exp_boxes, exp_scores = ref.select_proposals(logits, deltas, anchors, (36, 40), pre, post,
                                                 0.5, 1.0)
    assert boxes.shape == (post, 4) and scores.shape == valid.shape == (post,)
    n = len(exp_scores)
    assert valid.sum() == n and not valid[n:].any()
    np.testing.assert_allclose(boxes[:n], exp_boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(scores[:n], exp_scores, rtol=1e-6)
    assert np.all(np.isneginf(scores[n:])) and np.all(boxes[n:] == 0)
    assert np.all(boxes[:n, 0::2] <= 40) and np.all(boxes[:n, 1::2] <= 36) and np.all(boxes >= 0)


def test_select_proposals_invariances():
  rng = np.random.default_rng(11)
  logits, deltas, anchors = _levels(rng)
  out = _select(logits, deltas, anchors, (36, 40))
  perm = rng.permutation(48)   # anchor order within a level does not matter
  shuffled = _select([logits[0][perm]] + logits[1:], [deltas[0][perm]] + deltas[1:],
                     [anchors[0][perm]] + anchors[1:], (36, 40))
  for a, b in zip(out, shuffled):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # one level repeated as a second level: its boxes survive twice (levels never suppress)
  one = _select(logits[:1], deltas[:1], anchors[:1], (36, 40), post=24)
  two = _select(logits[:1] * 2, deltas[:1] * 2, anchors[:1] * 2, (36, 40), post=24)
  n = int(np.asarray(one[2]).sum())
  assert 0 < n <= 10 and int(np.asarray(two[2]).sum()) == 2 * n
  np.testing.assert_array_equal(np.asarray(two[1])[:2 * n], np.repeat(np.asarray(one[1])[:n], 2))
