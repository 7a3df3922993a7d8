"""The YOLOv2 loss: equality with a plain-loop reference, the anchors' gradient
(Eq. 9 closed form and finite differences), the clustering fixed point,
compile-once, and bad-input handling."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import assign as assign_lib
from anchor_jax.core import losses
from tests import reference

ANCHORS = np.asarray([[0.6, 0.7], [1.9, 2.1], [3.3, 5.5], [7.9, 3.5], [9.8, 9.2]], np.float32)
LOG_ANCHORS = jnp.log(ANCHORS)


def _problem(seed, *, batch=2, grid=5, max_boxes=6, num_classes=3, **kw):
  rng = np.random.default_rng(seed)
  boxes, labels, mask = reference.random_batch(
      rng, batch=batch, max_boxes=max_boxes, grid=grid, num_classes=num_classes, **kw)
  out = rng.normal(0, 1, (batch, grid, grid, len(ANCHORS), 5 + num_classes)).astype(np.float32)
  return out, boxes, labels, mask


@functools.partial(jax.jit, static_argnames=("assign_metric",))
def _loss(out, log_anchors, boxes, labels, mask, temperature, cluster_weight, prior_scale,
          assign_metric="iou"):
  return losses.yolo_loss(out, log_anchors, boxes, labels, mask, temperature=temperature,
                          cluster_weight=cluster_weight, prior_scale=prior_scale,
                          assign_metric=assign_metric)


@pytest.mark.parametrize("temperature", [0.0, 0.5])
@pytest.mark.parametrize("metric", ["iou", "l2"])
def test_loss_equals_loop_reference(temperature, metric):
  for seed in range(6):
    out, boxes, labels, mask = _problem(seed, collide=seed % 2 == 0, empty_prob=0.25)
    total, terms = _loss(out, LOG_ANCHORS, boxes, labels, mask, temperature, 0.7, 0.01,
                         assign_metric=metric)
    ref_total, ref_terms = reference.yolo_loss(
        out, np.log(ANCHORS), boxes, labels, mask, temperature=temperature,
        cluster_weight=0.7, prior_scale=0.01, metric=metric)
    for k in losses.LOSS_TERMS:
      np.testing.assert_allclose(float(terms[k]), ref_terms[k], rtol=2e-4, atol=1e-4, err_msg=k)
    np.testing.assert_allclose(float(total), ref_total, rtol=2e-4)


def _eq9_gradient(out, boxes, mask, delta, batch):
  """Closed form of d loss / d log-anchor from the wh term (Eq. 9), assignment fixed."""
  grid = out.shape[1]
  cell, _, gt_log_wh = map(np.asarray, assign_lib.gt_geometry(jnp.asarray(boxes),
                                                              grid_hw=(grid, grid)))
  wh = np.stack([boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]], -1)
  coord = 2.0 - wh[..., 0] * wh[..., 1]                                     # [B, M]
  t_wh = out.reshape(out.shape[0], grid * grid, len(ANCHORS), -1)[..., 2:4]
  t_at = np.take_along_axis(t_wh, cell[:, :, None, None], axis=1)          # [B, M, A, 2]
  resid = t_at + np.log(ANCHORS) - gt_log_wh[:, :, None, :]
  return np.einsum("bma,bm,bmac->ac", delta, coord, resid) / batch   # d(0.5 err^2) = err


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_anchor_gradient_is_eq9(temperature):
  out, boxes, labels, mask = _problem(7, batch=3, collide=True, empty_prob=0.0)
  grad = jax.jit(jax.grad(lambda la: _loss(out, la, boxes, labels, mask, temperature, 0.0, 0.01)[0]))
  g = np.asarray(grad(LOG_ANCHORS))
  delta = np.asarray(assign_lib.assign(jnp.asarray(boxes), jnp.asarray(mask), LOG_ANCHORS,
                                       grid_hw=(5, 5), temperature=temperature).delta)
  np.testing.assert_allclose(g, _eq9_gradient(out, boxes, mask, delta, 3), rtol=1e-4, atol=1e-5)
  used = delta.sum((0, 1)) > 0
  if temperature == 0.0:
    assert used.any() and not used.all(), "the case should leave some anchor unassigned"
    np.testing.assert_array_equal(g[~used], 0.0)
    assert np.all(np.abs(g[used]).sum(-1) > 0)
  else:
    assert np.all(np.abs(g).sum(-1) > 0), "soft assignment gives every anchor gradient"


def test_anchor_gradient_matches_finite_differences():
  """Hard assignment (unchanged by a small step): d total = d (wh + cluster)."""
  out, boxes, labels, mask = _problem(11, batch=2, empty_prob=0.0)
  with jax.enable_x64():
    args = [jnp.asarray(x, jnp.float64) if x.dtype == np.float32 else x
            for x in (out, boxes)]
    la = jnp.asarray(np.log(ANCHORS), jnp.float64)
    def explicit(log_anchors):
      _, t = losses.yolo_loss(args[0], log_anchors, args[1], labels, mask,
                              temperature=0.0, cluster_weight=0.6)
      return t["wh"] + t["cluster"]
    def total(log_anchors):
      return losses.yolo_loss(args[0], log_anchors, args[1], labels, mask,
                              temperature=0.0, cluster_weight=0.6)[0]
    explicit = jax.jit(explicit)
    g = np.asarray(jax.jit(jax.grad(total))(la))
    eps = 1e-6
    fd = np.zeros_like(g)
    for i in range(g.shape[0]):
      for c in range(2):
        e = np.zeros(g.shape)
        e[i, c] = eps
        fd[i, c] = (explicit(la + e) - explicit(la - e)) / (2 * eps)
  np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
  assert np.abs(g).max() > 1e-3


def test_clustering_term_reaches_kmeans_fixed_point():
  """Gradient descent on Eq. 11-12 alone from identical anchors ends where each
  anchor is the log-space mean of the GT shapes assigned to it."""
  rng = np.random.default_rng(5)
  centres = np.log([[0.6, 0.6], [2.0, 4.5], [6.0, 2.0], [8.0, 8.0]]) - np.log(13)
  log_wh = centres[rng.integers(0, 4, (4, 40))] + rng.normal(0, 0.15, (4, 40, 2))
  wh = np.exp(log_wh)
  centre = rng.uniform(0.3, 0.7, (4, 40, 2))
  boxes = np.concatenate([centre - wh / 2, centre + wh / 2], -1).astype(np.float32)
  mask = np.ones((4, 40), bool)
  labels = np.zeros((4, 40), np.int32)
  out = np.zeros((4, 13, 13, 4, 6), np.float32)
  def cluster(log_anchors):
    _, t = losses.yolo_loss(out, log_anchors, boxes, labels, mask, temperature=0.0,
                            cluster_weight=1.0)
    return t["cluster"]
  step = jax.jit(lambda la: la - 1.0 * jax.grad(cluster)(la))
  la = jnp.log(jnp.full((4, 2), 5.0))
  for _ in range(400):
    la = step(la)
  a = assign_lib.assign(jnp.asarray(boxes), jnp.asarray(mask), la, grid_hw=(13, 13))
  delta, gt_log_wh = np.asarray(a.delta), np.asarray(a.gt_log_wh)
  counts = delta.sum((0, 1))
  assert (counts > 0).sum() >= 3, "identical anchors should split into several clusters"
  for i in np.nonzero(counts)[0]:
    mean = (delta[..., i:i + 1] * gt_log_wh).sum((0, 1)) / counts[i]
    np.testing.assert_allclose(np.asarray(la)[i], mean, atol=1e-4)


def test_loss_compiles_once():
  traces = []
  def f(out, la, boxes, labels, mask, temperature, cluster_weight, prior_scale):
    traces.append(1)
    return losses.yolo_loss(out, la, boxes, labels, mask, temperature=temperature,
                            cluster_weight=cluster_weight, prior_scale=prior_scale)[0]
  jf = jax.jit(f)
  for seed, (temp, lam, prior) in enumerate([(2.0, 1.0, 0.01), (0.3, 0.5, 0.0), (0.0, 0.0, 0.0)]):
    out, boxes, labels, mask = _problem(seed)
    jf(out, LOG_ANCHORS, boxes, labels, mask, temp, lam, prior).block_until_ready()
  assert len(traces) == 1


def test_bad_and_padded_boxes_never_contribute():
  out, boxes, labels, mask = _problem(3, max_boxes=8, empty_prob=0.0)
  mask[:, 5:] = False
  base_total, base_terms = _loss(out, LOG_ANCHORS, boxes, labels, mask, 0.5, 1.0, 0.01)
  # Garbage in padded slots changes nothing.
  junk = boxes.copy()
  junk[:, 5:] = [[np.nan, np.inf, -3.0, 1e9]]
  total, terms = _loss(out, LOG_ANCHORS, junk, labels, mask, 0.5, 1.0, 0.01)
  np.testing.assert_allclose(float(total), float(base_total), rtol=1e-6)
  # Bad values in *unmasked* slots: masked, counted, loss as if they were padding.
  bad = boxes.copy()
  bad_mask = mask.copy()
  bad[0, 5] = [np.nan, 0.1, 0.2, 0.3]
  bad[0, 6] = [0.1, 0.1, np.inf, 0.3]
  bad[1, 5] = [0.5, 0.5, 0.4, 0.7]          # negative width
  bad[1, 6] = [0.5, 0.5, 0.5, 0.7]          # zero width
  bad_labels = labels.copy()
  bad_labels[1, 7] = 99                     # label out of range
  bad_mask[:, 5:] = True
  total, terms = _loss(out, LOG_ANCHORS, bad, bad_labels, bad_mask, 0.5, 1.0, 0.01)
  assert int(terms["num_invalid_gt"]) == 5
  assert int(terms["num_gt"]) == int(mask.sum()) + 1   # slot [0, 7] is a good box
  good_only = bad_mask.copy()
  good_only[[0, 0, 1, 1, 1], [5, 6, 5, 6, 7]] = False
  ref_total, _ = _loss(out, LOG_ANCHORS, bad, bad_labels, good_only, 0.5, 1.0, 0.01)
  np.testing.assert_allclose(float(total), float(ref_total), rtol=1e-6)
  grads = jax.jit(jax.grad(lambda o, la: _loss(o, la, bad, bad_labels, bad_mask, 0.5, 1.0, 0.01)[0],
                   argnums=(0, 1)))(out, LOG_ANCHORS)
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_check_gt_names_bad_slots():
  from anchor_jax.core import gt
  boxes = np.asarray([[[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.4, 0.7], [np.nan, 0, 1, 1]]])
  with pytest.raises(ValueError, match=r"x1 <= x0.*\(0, 1\)"):
    gt.check_gt(boxes, np.zeros((1, 3), int), np.asarray([[1, 1, 0]]), num_classes=2)
  with pytest.raises(ValueError, match="non-finite"):
    gt.check_gt(boxes, np.zeros((1, 3), int), np.asarray([[1, 0, 1]]), num_classes=2)
  gt.check_gt(boxes, np.zeros((1, 3), int), np.asarray([[1, 0, 0]]), num_classes=2)


def test_rescore_and_hand_computed_single_gt():
  """One GT, one anchor, 1x1 grid: every term by hand."""
  out = np.zeros((1, 1, 1, 1, 7), np.float32)
  out[..., 2] = 0.3   # t_w
  out[..., 4] = 1.0   # t_o
  out[..., 5:] = [2.0, 0.0]
  boxes = np.asarray([[[0.25, 0.25, 0.75, 0.75]]], np.float32)
  labels, mask = np.zeros((1, 1), np.int32), np.ones((1, 1), bool)
  la = jnp.log(jnp.asarray([[0.5, 0.5]]))
  _, t = jax.jit(losses.yolo_loss)(out, la, boxes, labels, mask)
  coord = 2 - 0.25
  np.testing.assert_allclose(float(t["xy"]), 0.0, atol=1e-7)    # sigmoid(0) = centre .5
  np.testing.assert_allclose(float(t["wh"]), 0.5 * coord * 0.3 ** 2, rtol=1e-5)
  pred_w = 0.5 * np.exp(0.3)                                    # pred box (pred_w x 0.5)
  iou = (min(pred_w, 0.5) * 0.5) / (pred_w * 0.5 + 0.25 - min(pred_w, 0.5) * 0.5)
  sig = 1 / (1 + np.exp(-1.0))
  np.testing.assert_allclose(float(t["obj"]), 0.5 * 5 * (sig - iou) ** 2, rtol=1e-5)
  np.testing.assert_allclose(float(t["cls"]), np.log1p(np.exp(-2.0)), rtol=1e-5)
  np.testing.assert_allclose(float(t["noobj"]), 0.0)           # the only prediction is responsible
  np.testing.assert_allclose(float(t["avg_iou"]), iou, rtol=1e-5)


@pytest.mark.parametrize("prior_on", [True, False])
def test_gradient_equals_darknet_region_layer_deltas(prior_on):
  """d loss / d raw outputs == -delta / B of darknet's forward_region_layer (a plain-loop
  transcription in tests/reference.py), for every output channel: hard assignment,
  rescore, ignore threshold 0.6, several GTs per image (collisions: the later wins)."""
  scales = dict(coord_scale=1.3, object_scale=5.0, noobject_scale=0.7, class_scale=1.6)
  for seed in range(4):
    out, boxes, labels, mask = _problem(seed, batch=3, collide=seed % 2 == 0,
                                        empty_prob=0.2)
    def total(o, boxes=boxes, labels=labels, mask=mask):
      return losses.yolo_loss(o, LOG_ANCHORS, boxes, labels, mask, temperature=0.0,
                              cluster_weight=0.0, prior_scale=0.01 if prior_on else 0.0,
                              ignore_thresh=0.6, rescore=True, **scales)[0]
    grad = jax.grad(total)(jnp.asarray(out))
    delta = reference.darknet_region_deltas(
        out, ANCHORS.astype(np.float64), boxes, labels, mask, seen_before_12800=prior_on,
        thresh=0.6, **scales)
    assert np.abs(delta).max() > 0.1
    np.testing.assert_allclose(np.asarray(grad), -delta / out.shape[0], rtol=0, atol=1e-5,
                               err_msg=f"seed {seed}")
