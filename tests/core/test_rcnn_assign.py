"""Faster R-CNN assignment: match against Detectron2's rules as a plain loop (thresholds,
low-quality ties, padded GTs, no GT), sample's counts, labels and determinism, and
sample_rois against a plain reference."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import box_ops, rcnn_assign
from tests import rcnn_reference as ref


def _boxes(rng, n, size=64.0):
  xy = rng.uniform(0, size, (n, 2))
  wh = rng.uniform(4, size / 2, (n, 2))
  return np.concatenate([xy, xy + wh], -1).astype(np.float32)


_match = jax.jit(functools.partial(rcnn_assign.match, pos_thresh=0.7, neg_thresh=0.3),
                 static_argnames="allow_low_quality")


@pytest.mark.parametrize("low_quality", [True, False])
def test_match_equals_plain_reference(low_quality):
  rng = np.random.default_rng(1)
  for seed in range(6):
    anchors, gt = _boxes(rng, 60), _boxes(rng, 5)
    if seed % 2:   # near-copies of GTs, so there are IoU >= 0.7 positives
      anchors[:5] = gt + rng.normal(0, 1.0, gt.shape).astype(np.float32)
    gt_valid = rng.uniform(size=5) > 0.3
    ious = np.asarray(box_ops.pairwise_iou(anchors, gt))
    labels, matched = _match(jnp.asarray(ious), jnp.asarray(gt_valid),
                             allow_low_quality=low_quality)
    exp_labels, exp_matched = ref.match(ious, gt_valid, 0.7, 0.3, low_quality)
    np.testing.assert_array_equal(np.asarray(labels), exp_labels)
    np.testing.assert_array_equal(np.asarray(matched), exp_matched)


def test_match_low_quality_keeps_ties_and_never_padding():
  # anchors 0 and 1 tie as GT 0's best (0.5); anchor 2 is only near the padded GT 1
  ious = jnp.asarray([[0.5, 0.0], [0.5, 0.1], [0.2, 0.9], [0.0, 0.0]])
  labels, matched = _match(ious, jnp.asarray([True, False]), allow_low_quality=True)
  np.testing.assert_array_equal(np.asarray(labels), [1, 1, 0, 0])
  np.testing.assert_array_equal(np.asarray(matched), [0, 0, 0, 0])


def test_match_without_valid_gt_is_all_negative():
  labels, matched = _match(jnp.ones((4, 3)), jnp.zeros(3, bool), allow_low_quality=True)
  np.testing.assert_array_equal(np.asarray(labels), 0)
  np.testing.assert_array_equal(np.asarray(matched), 0)


_sample = jax.jit(rcnn_assign.sample, static_argnames=("num", "pos_fraction"))


@pytest.mark.parametrize("num_pos,num_neg", [(3, 200), (90, 100), (0, 50), (10, 5)])
def test_sample_counts_labels_and_determinism(num_pos, num_neg):
  rng = np.random.default_rng(num_pos)
  labels = np.asarray([1] * num_pos + [0] * num_neg + [-1] * 30)
  rng.shuffle(labels)
  counts = []
  for seed in range(5):
    key = jax.random.PRNGKey(seed)
    out = np.asarray(_sample(jnp.asarray(labels), key, num=64, pos_fraction=0.25))
    np.testing.assert_array_equal(out, _sample(jnp.asarray(labels), key, num=64,
                                               pos_fraction=0.25))   # same key, same draw
    picked = out >= 0
    assert np.all(out[picked] == labels[picked])       # a sampled row keeps its label
    pos, neg = int(np.sum(out == 1)), int(np.sum(out == 0))
    assert pos == min(num_pos, 16)                     # int(64 * 0.25)
    assert neg == min(num_neg, 64 - pos)
    counts.append(out)
  if num_neg > 64:  # different keys draw different subsets
    assert any(not np.array_equal(counts[0], c) for c in counts[1:])


def test_sample_is_uniform():
  labels = jnp.asarray([1] * 8 + [0] * 8)
  draws = jax.jit(jax.vmap(lambda k: rcnn_assign.sample(labels, k, num=4, pos_fraction=0.5)))(
      jax.random.split(jax.random.PRNGKey(0), 2000))
  hits = np.mean(np.asarray(draws) >= 0, axis=0)       # each row's inclusion rate: 2 / 8
  np.testing.assert_allclose(hits, 0.25, atol=0.04)


@pytest.mark.parametrize("bg_lo", [0.0, 0.1])
def test_sample_rois_equals_reference(bg_lo):
  rng = np.random.default_rng(3)
  proposals, gt = _boxes(rng, 40), _boxes(rng, 4)
  proposals[:8] = np.repeat(gt, 2, 0) + rng.normal(0, 2, (8, 4)).astype(np.float32)
  prop_valid = rng.uniform(size=40) > 0.2
  gt_valid = np.asarray([True, True, False, True])
  gt_labels = np.asarray([2, 0, 1, 5])
  fn = jax.jit(functools.partial(rcnn_assign.sample_rois, num=64, pos_fraction=1.0,
                                 bg_thresh_lo=bg_lo))
  out = fn(*map(jnp.asarray, (proposals, prop_valid, gt, gt_labels, gt_valid)),
           jax.random.PRNGKey(0))
  rows = ref.roi_labels(proposals, prop_valid, gt, gt_labels, gt_valid, 0.5, 0.5, bg_lo)
  boxes = np.concatenate([proposals, gt])
  order = [i for i, r in enumerate(rows) if r[0] == 1] + [i for i, r in enumerate(rows)
                                                          if r[0] == 0]
  n = len(order)
  assert n <= 64 and np.sum(np.asarray(out["weight"])) == n
  np.testing.assert_allclose(np.asarray(out["rois"][:n]), boxes[order])
  np.testing.assert_array_equal(np.asarray(out["labels"][:n]), [rows[i][2] for i in order])
  fg = [i for i in order if rows[i][0] == 1]
  np.testing.assert_allclose(np.asarray(out["matched_gt"][:len(fg)]),
                             gt[[rows[i][1] for i in fg]])
  assert np.all(np.asarray(out["weight"][n:]) == 0)
  # every valid GT is among the foreground rows (it is appended and matches itself)
  assert all(any(np.allclose(boxes[i], g) for i in fg) for g in gt[gt_valid])


def test_sample_rois_counts_and_padding():
  rng = np.random.default_rng(4)
  proposals, gt = _boxes(rng, 30), _boxes(rng, 3)
  proposals[:12] = np.repeat(gt, 4, 0) + rng.normal(0, 1, (12, 4)).astype(np.float32)
  args = map(jnp.asarray, (proposals, np.ones(30, bool), gt, np.zeros(3, int), np.ones(3, bool)))
  fn = jax.jit(functools.partial(rcnn_assign.sample_rois, num=16, pos_fraction=0.25))
  out = fn(*args, jax.random.PRNGKey(1))
  labels, weight = np.asarray(out["labels"]), np.asarray(out["weight"])
  assert out["rois"].shape == (16, 4) and weight.sum() == 16
  assert np.sum(labels > 0) == 4                       # int(16 * 0.25), fg rows first
  assert np.all(labels[:4] == 1) and np.all(labels[4:] == 0)
  # fewer candidates than slots: padding rows weigh 0
  small = fn(jnp.asarray(proposals[:2]), jnp.ones(2, bool), jnp.asarray(gt), jnp.zeros(3, int),
             jnp.asarray([True, False, False]), jax.random.PRNGKey(1))
  assert small["rois"].shape == (16, 4)
  assert np.asarray(small["weight"]).sum() <= 5 and np.all(np.asarray(small["weight"])[5:] == 0)
