"""decode(): a hand-computed box and scores; to_pixels(): values, clipping, round trip."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.evaluation import decode as decode_lib


def _one_hot_output():
  """B=1, H=2, W=3, A=2, C=2; only (row 1, col 2, anchor 1) is set."""
  out = np.zeros((1, 2, 3, 2, 7), np.float32)
  out[0, 1, 2, 1] = [0.0, math.log(3.0), math.log(2.0), 0.0, 0.0, math.log(3.0), 0.0]
  anchors = np.log(np.array([[1.0, 1.0], [0.6, 0.5]], np.float32))  # [A, 2] grid units
  return out, anchors


@pytest.mark.parametrize("jit", [False, True])
def test_decode_hand_computed_box(jit):
  out, anchors = _one_hot_output()
  fn = jax.jit(decode_lib.decode) if jit else decode_lib.decode
  boxes, scores = fn(out, anchors)
  assert boxes.shape == (1, 12, 4) and scores.shape == (1, 12, 2)
  # index = (row * W + col) * A + anchor = (1 * 3 + 2) * 2 + 1 = 11.
  # x = (2 + σ(0)) / 3 = 2.5 / 3;  y = (1 + σ(log 3)) / 2 = (1 + 0.75) / 2 = 0.875
  # w = 0.6 · e^{log 2} / 3 = 0.4;  h = 0.5 · e^0 / 2 = 0.25
  cx, cy, w, h = 2.5 / 3, 0.875, 0.4, 0.25
  np.testing.assert_allclose(
      boxes[0, 11], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-6)
  # objectness σ(0) = 0.5; softmax(log 3, 0) = (0.75, 0.25).
  np.testing.assert_allclose(scores[0, 11], [0.375, 0.125], rtol=1e-6)
  # An all-zero cell (row 0, col 0, anchor 0): centre (0.5/3, 0.5/2), size (1/3, 1/2).
  np.testing.assert_allclose(boxes[0, 0], [0.0, 0.0, 1 / 3, 0.5], atol=1e-7)
  np.testing.assert_allclose(scores[0, 0], [0.25, 0.25], rtol=1e-6)


def test_decode_clip():
  out, anchors = _one_hot_output()
  boxes, _ = decode_lib.decode(out, anchors, clip=True)
  assert float(boxes.max()) <= 1.0 and float(boxes.min()) >= 0.0
  np.testing.assert_allclose(boxes[0, 11, 2], 1.0)  # x1 = 2.5/3 + 0.2 > 1, clipped


@pytest.mark.parametrize("xp", [np, jnp])
def test_to_pixels_values_and_clip(xp):
  boxes = xp.asarray([[[0.5, 0.25, 1.0, 0.75], [-0.1, 0.5, 1.2, 1.1]]], xp.float32)  # [1, 2, 4]
  hw = xp.asarray([[200, 400]])  # [B, 2] (height, width)
  px = decode_lib.to_pixels(boxes, hw)
  assert isinstance(px, np.ndarray) == (xp is np)
  np.testing.assert_allclose(px, [[[200, 50, 400, 150], [0, 100, 400, 200]]])
  unclipped = decode_lib.to_pixels(boxes, hw, clip=False)
  np.testing.assert_allclose(unclipped[0, 1], [-40, 100, 480, 220], rtol=1e-6)


def test_to_pixels_round_trip_per_image_sizes():
  rng = np.random.default_rng(0)
  lo = rng.uniform(0, 0.5, (3, 50, 2))
  boxes = np.concatenate([lo, lo + rng.uniform(0, 0.5, (3, 50, 2))], -1)  # inside [0, 1]
  hw = np.array([[375, 500], [500, 333], [100, 100]])
  px = decode_lib.to_pixels(boxes, hw)
  np.testing.assert_allclose(px[1, :, 2], boxes[1, :, 2] * 333)  # x scales by width
  np.testing.assert_allclose(px[1, :, 3], boxes[1, :, 3] * 500)  # y by height
  np.testing.assert_allclose(decode_lib.to_normalised(px, hw), boxes, rtol=1e-12)
