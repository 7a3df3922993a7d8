"""Faster R-CNN anchors and box coding: per-level anchors against a plain loop, the slot
index, encode against a loop, encode/decode round trip, the scale clamp, clipping."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import rcnn_boxes
from tests import rcnn_reference as ref

LOG_WH = np.log(np.asarray([[[16, 8], [11, 11], [8, 16]],
                            [[32, 16], [22, 22], [16, 32]]], np.float32))


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_level_anchors_match_plain_loop(offset):
  feat_hws, strides = [(3, 4), (2, 2)], [8, 16]
  anchors, slot = jax.jit(rcnn_boxes.level_anchors, static_argnums=(1, 2, 3))(
      jnp.asarray(LOG_WH), tuple(feat_hws), tuple(strides), offset)
  expected = np.concatenate([ref.grid_anchors(LOG_WH[lv], hw, s, offset)
                             for lv, (hw, s) in enumerate(zip(feat_hws, strides))])
  np.testing.assert_allclose(np.asarray(anchors), expected, rtol=1e-5, atol=1e-4)
  exp_slot = [lv * 3 + a for lv, hw in enumerate(feat_hws) for _ in range(hw[0] * hw[1])
              for a in range(3)]
  np.testing.assert_array_equal(np.asarray(slot), exp_slot)
  # the slot routes back to the shape: log of each anchor's (w, h) is its slot's parameter
  wh = np.asarray(anchors[:, 2:] - anchors[:, :2])
  np.testing.assert_allclose(np.log(wh), LOG_WH.reshape(6, 2)[np.asarray(slot)], atol=1e-5)


def test_level_anchors_rejects_mismatched_levels():
  with pytest.raises(ValueError, match="2 anchor levels"):
    rcnn_boxes.level_anchors(jnp.asarray(LOG_WH), [(2, 2)], [8])


def _random_boxes(rng, n, size=100.0):
  xy = rng.uniform(0, size, (n, 2))
  wh = rng.uniform(2, size / 2, (n, 2))
  return np.concatenate([xy, xy + wh], -1).astype(np.float32)


@pytest.mark.parametrize("weights", [rcnn_boxes.RPN_WEIGHTS, rcnn_boxes.BOX_HEAD_WEIGHTS])
def test_encode_matches_loop_and_round_trips(weights):
  rng = np.random.default_rng(0)
  gt, anchors = _random_boxes(rng, 20), _random_boxes(rng, 20)
  deltas = np.asarray(rcnn_boxes.encode(jnp.asarray(gt), jnp.asarray(anchors), weights))
  expected = [ref.encode(g, a, weights) for g, a in zip(gt.astype(np.float64), anchors)]
  np.testing.assert_allclose(deltas, expected, rtol=1e-4, atol=1e-4)
  back = rcnn_boxes.decode(jnp.asarray(deltas), jnp.asarray(anchors), weights)
  np.testing.assert_allclose(np.asarray(back), gt, rtol=1e-4, atol=1e-3)


def test_decode_clamps_scale():
  anchor = jnp.asarray([[0.0, 0.0, 16.0, 16.0]])
  box = rcnn_boxes.decode(jnp.asarray([[0.0, 0.0, 50.0, -1.0]]), anchor, (1, 1, 1, 1))
  w, h = float(box[0, 2] - box[0, 0]), float(box[0, 3] - box[0, 1])
  assert w == pytest.approx(1000.0, rel=1e-4)       # 16 * exp(log(1000 / 16))
  assert h == pytest.approx(16 * math.exp(-1.0), rel=1e-5)
  assert float(box[0, 0] + box[0, 2]) / 2 == pytest.approx(8.0)


def test_clip_boxes():
  boxes = jnp.asarray([[-5.0, -1.0, 70.0, 30.0], [10.0, 20.0, 30.0, 80.0]])
  out = rcnn_boxes.clip_boxes(boxes, (50, 60))
  np.testing.assert_allclose(np.asarray(out), [[0, 0, 60, 30], [10, 20, 30, 50]])
