"""Faster R-CNN losses: the RPN loss against a plain-loop reference, its gradient w.r.t. the
learnable anchors against the closed form (Eq. 9 on the RPN, plus Eq. 11-12's clustering)
and finite differences in float64, the sampling counts, and the box-head loss against a loop."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import box_ops, rcnn_assign, rcnn_boxes, rcnn_losses
from tests import rcnn_reference as ref

LOG_WH = np.log(np.asarray([[[10, 5], [7, 7], [5, 10]],
                            [[20, 10], [14, 14], [10, 20]]]))
FEAT_HWS, STRIDES = ((4, 4), (2, 2)), (8, 16)     # a 32 x 32 image, N = 60 anchors


def _problem(seed, dtype=np.float32):
  rng = np.random.default_rng(seed)
  anchors, slot = rcnn_boxes.level_anchors(jnp.asarray(LOG_WH, dtype), FEAT_HWS, STRIDES)
  n = anchors.shape[0]
  xy = rng.uniform(0, 20, (4, 2))
  gt = np.concatenate([xy, xy + rng.uniform(5, 14, (4, 2))], -1).astype(dtype)
  gt_valid = np.asarray([True, True, seed % 2 == 0, False])
  logits = rng.normal(0, 2, n).astype(dtype)
  deltas = rng.normal(0, 0.3, (n, 4)).astype(dtype)
  return logits, deltas, anchors, slot, gt, gt_valid


_loss = jax.jit(rcnn_losses.rpn_loss, static_argnames=(
    "pos_thresh", "neg_thresh", "batch_per_image", "pos_fraction", "beta"))


@pytest.mark.parametrize("beta", [1.0 / 9, 0.0])
def test_rpn_loss_equals_plain_reference(beta):
  for seed in range(4):
    logits, deltas, anchors, slot, gt, gt_valid = _problem(seed)
    # batch_per_image >= 2 N: every labelled anchor is sampled, so the reference needs no RNG
    total, terms = _loss(logits, deltas, jnp.asarray(LOG_WH, jnp.float32), anchors, slot, gt,
                         gt_valid, jax.random.PRNGKey(seed), batch_per_image=256, beta=beta,
                         cluster_weight=0.3)
    anchors64 = np.asarray(anchors, np.float64)
    labels, matched = ref.match(ref.iou_matrix(anchors64, gt.astype(np.float64)), gt_valid,
                                0.7, 0.3)
    obj, box, cluster = ref.rpn_loss(logits, deltas, LOG_WH.reshape(6, 2), anchors64,
                                     np.asarray(slot), gt.astype(np.float64), labels, matched,
                                     beta, 0.3)
    np.testing.assert_allclose(float(terms["rpn_obj"]), obj, rtol=1e-5)
    np.testing.assert_allclose(float(terms["rpn_box"]), box, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(terms["cluster"]), cluster, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(float(total), obj + box + cluster, rtol=1e-5)
    assert int(terms["num_pos"]) == labels.count(1) > 0
    assert int(terms["num_neg"]) == labels.count(0)
    counts = np.bincount(np.asarray(slot)[np.asarray(labels) == 1], minlength=6)
    np.testing.assert_array_equal(np.asarray(terms["anchor_counts"]), counts)


def test_rpn_loss_sampling_counts():
  logits, deltas, anchors, slot, gt, gt_valid = _problem(0)
  _, terms = _loss(logits, deltas, jnp.asarray(LOG_WH, jnp.float32), anchors, slot, gt, gt_valid,
                   jax.random.PRNGKey(0), batch_per_image=8, pos_fraction=0.25)
  assert int(terms["num_pos"]) <= 2 and int(terms["num_pos"] + terms["num_neg"]) == 8
  assert int(jnp.sum(terms["anchor_counts"])) == int(terms["num_pos"])


@jax.jit
def _match_sample(anchors, gt, gt_valid, key):
  labels, matched = rcnn_assign.match(box_ops.pairwise_iou(anchors, gt), gt_valid,
                                      pos_thresh=0.7, neg_thresh=0.3)
  return rcnn_assign.sample(labels, key, num=32, pos_fraction=0.5), matched


def _closed_form(logits, deltas, anchors, slot, gt, gt_valid, key, beta, cluster_weight):
  """d loss / d anchor_log_wh [6, 2]: sum over sampled positives of the slot of
  smooth_l1'(t_wh - (log g - log a)) / |S| + cluster_weight / N (log a - log g)."""
  labels, matched = _match_sample(anchors, gt, gt_valid, key)
  labels = np.asarray(labels)
  matched, slot, gt = np.asarray(matched), np.asarray(slot), np.asarray(gt)
  pos = np.flatnonzero(labels == 1)
  norm = np.sum(labels >= 0)
  grad = np.zeros((6, 2))
  for i in pos:
    g = gt[matched[i]]
    log_g = np.log(g[2:] - g[:2])
    a = LOG_WH.reshape(6, 2)[slot[i]]
    r = deltas[i, 2:] - (log_g - a)
    dsl1 = np.where(np.abs(r) < beta, r / max(beta, 1e-12), np.sign(r))
    grad[slot[i]] += dsl1 / norm + cluster_weight * (a - log_g) / len(pos)
  return grad.reshape(LOG_WH.shape), len(pos)


@functools.partial(jax.jit, static_argnames="beta")
def _x64_loss(log_wh, anchors, slot, logits, deltas, gt, gt_valid, key, beta):
  return rcnn_losses.rpn_loss(logits, deltas, log_wh, anchors, slot, gt, gt_valid, key,
                              batch_per_image=32, beta=beta, cluster_weight=0.7)[0]


@functools.partial(jax.jit, static_argnames="beta")
def _x64_grad(log_wh, *args, beta):
  def through_anchors(w):   # anchors rebuilt from the parameter, as in training
    anchors, slot = rcnn_boxes.level_anchors(w, FEAT_HWS, STRIDES)
    return _x64_loss(w, anchors, slot, *args, beta=beta)
  return jax.grad(through_anchors)(log_wh)


@pytest.mark.parametrize("beta", [1.0 / 9, 0.0])
def test_rpn_anchor_gradient_closed_form_and_finite_differences(beta):
  with jax.enable_x64():
    for seed in range(3):
      logits, deltas, _, _, gt, gt_valid = _problem(seed, np.float64)
      key = jax.random.PRNGKey(seed)
      log_wh = jnp.asarray(LOG_WH)
      anchors, slot = rcnn_boxes.level_anchors(log_wh, FEAT_HWS, STRIDES)
      args = (logits, deltas, gt, gt_valid, key)
      grad = np.asarray(_x64_grad(log_wh, *args, beta=beta))
      expected, num_pos = _closed_form(logits, deltas, anchors, slot, gt, gt_valid, key, beta,
                                       0.7)
      assert num_pos > 0
      np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)
      # finite differences with the (stop-gradient) anchors fixed: the assignment stays put
      eps = 1e-6
      steps = eps * np.eye(LOG_WH.size).reshape((-1,) + LOG_WH.shape)
      fd = [(_x64_loss(log_wh + d, anchors, slot, *args, beta=beta)
             - _x64_loss(log_wh - d, anchors, slot, *args, beta=beta)) / (2 * eps) for d in steps]
      np.testing.assert_allclose(np.reshape(fd, LOG_WH.shape), grad, rtol=1e-6, atol=1e-8)


def test_rpn_loss_without_gt_has_no_box_gradient():
  logits, deltas, anchors, slot, gt, _ = _problem(1)
  grad = jax.jit(jax.grad(lambda w: _loss(logits, deltas, w, anchors, slot, gt, np.zeros(4, bool),
                                  jax.random.PRNGKey(0), cluster_weight=1.0)[0]))(
      jnp.asarray(LOG_WH, jnp.float32))
  assert np.all(np.asarray(grad) == 0)


@pytest.mark.parametrize("beta", [0.0, 1.0 / 9])
def test_box_head_loss_equals_plain_reference(beta):
  rng = np.random.default_rng(5)
  r, c = 12, 3
  xy = rng.uniform(0, 50, (r, 2))
  rois = np.concatenate([xy, xy + rng.uniform(5, 30, (r, 2))], -1).astype(np.float32)
  matched_gt = rois + rng.normal(0, 2, (r, 4)).astype(np.float32)
  labels = rng.integers(0, c + 1, r)
  weight = (np.arange(r) < 10).astype(np.float32)          # the last two rows: padding
  matched_gt[10:] = 0.0
  rois[11] = 0.0
  cls_logits = rng.normal(0, 1, (r, c + 1)).astype(np.float32)
  deltas = rng.normal(0, 0.5, (r, c, 4)).astype(np.float32)
  fn = jax.jit(functools.partial(rcnn_losses.box_head_loss, beta=beta))
  total, terms = fn(cls_logits, deltas, rois, labels, matched_gt, weight)
  cls, box = ref.box_head_loss(cls_logits, deltas, rois.astype(np.float64),
                               labels, matched_gt.astype(np.float64), weight,
                               rcnn_boxes.BOX_HEAD_WEIGHTS, beta)
  np.testing.assert_allclose(float(terms["rcnn_cls"]), cls, rtol=1e-5)
  np.testing.assert_allclose(float(terms["rcnn_box"]), box, rtol=1e-4)
  np.testing.assert_allclose(float(total), cls + box, rtol=1e-5)
  grads = jax.grad(lambda z, d: fn(z, d, rois, labels, matched_gt, weight)[0], (0, 1))(
      cls_logits, deltas)
  assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
  assert np.all(np.asarray(grads[0][10:]) == 0)            # padding rows get no gradient
