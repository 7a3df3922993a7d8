"""Box math against hand-computed values, symmetry and degenerate cases."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import box_ops


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7),       # overlap 1, union 4 + 4 - 1
    ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),
    ([0, 0, 1, 1], [2, 2, 3, 3], 0.0),         # disjoint
    ([0, 0, 1, 1], [1, 0, 2, 1], 0.0),         # touching edge
    ([0, 0, 4, 4], [1, 1, 2, 2], 1 / 16),      # contained
    ([0, 0, 2, 1], [1, 0, 3, 1], 1 / 3),       # half-overlapping strips
])
def test_iou_hand_values(a, b, expected):
  for xp in (np, jnp):
    got = box_ops.iou(xp.asarray(a, xp.float32), xp.asarray(b, xp.float32))
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_pairwise_iou_symmetric_and_bounded():
  rng = np.random.default_rng(0)
  xy = rng.uniform(0, 1, (2, 30, 2))
  wh = rng.uniform(0.01, 0.5, (2, 30, 2))
  boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
  m = np.asarray(box_ops.pairwise_iou(jnp.asarray(boxes), jnp.asarray(boxes)))
  assert m.shape == (2, 30, 30)
  np.testing.assert_allclose(m, np.swapaxes(m, 1, 2), atol=1e-7)
  np.testing.assert_allclose(np.diagonal(m, axis1=1, axis2=2), 1.0, rtol=1e-6)
  assert np.all((m >= 0) & (m <= 1 + 1e-6))
  # NumPy and jnp paths agree.
  np.testing.assert_allclose(box_ops.pairwise_iou(boxes, boxes), m, atol=1e-6)


def test_degenerate_and_padded_boxes_give_zero_not_nan():
  zero = jnp.zeros(4)
  line = jnp.asarray([0.0, 0.0, 0.0, 1.0])        # zero width
  flipped = jnp.asarray([1.0, 1.0, 0.0, 0.0])     # negative size
  real = jnp.asarray([0.0, 0.0, 1.0, 1.0])
  for a, b in [(zero, zero), (zero, real), (line, line), (flipped, real), (flipped, flipped)]:
    assert float(box_ops.iou(a, b)) == 0.0
  grads = jax.grad(lambda x: box_ops.iou(x, x) + box_ops.iou(x, real))(zero)
  assert np.all(np.isfinite(grads))
  assert float(box_ops.box_area(flipped)) == 0.0


@pytest.mark.parametrize("wa, wb, expected", [
    ([1, 1], [2, 2], 0.25),
    ([1, 3], [3, 1], 1 / 5),    # inter 1, union 3 + 3 - 1
    ([2, 4], [2, 4], 1.0),
    ([0, 4], [2, 4], 0.0),      # zero width
    ([0, 0], [0, 0], 0.0),
])
def test_shape_iou_hand_values(wa, wb, expected):
  got = box_ops.shape_iou(jnp.asarray(wa, jnp.float32), jnp.asarray(wb, jnp.float32))
  np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_shape_iou_equals_iou_of_centred_boxes():
  rng = np.random.default_rng(1)
  wh_a, wh_b = rng.uniform(0.1, 5, (50, 2)), rng.uniform(0.1, 5, (50, 2))
  centred = lambda wh: np.concatenate([-wh / 2, wh / 2], -1)
  np.testing.assert_allclose(box_ops.shape_iou(wh_a, wh_b),
                             box_ops.iou(centred(wh_a), centred(wh_b)), rtol=1e-6)


def test_format_round_trip():
  boxes = np.asarray([[0.1, 0.2, 0.5, 0.9], [0, 0, 1, 1]], np.float32)
  c = box_ops.xyxy_to_cxcywh(boxes)
  np.testing.assert_allclose(c[0], [0.3, 0.55, 0.4, 0.7], rtol=1e-6)
  np.testing.assert_allclose(box_ops.cxcywh_to_xyxy(c), boxes, atol=1e-7)
