"""RoIAlign against torchvision's kernel written as plain loops (aligned and not, boxes
partly or wholly outside the map, tiny boxes), the multi-level version against one
level at a time, and the FPN level rule against a loop."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import roi_align as ra
from tests import rcnn_reference as ref


def _boxes(rng, n, size):
  xy = rng.uniform(-0.2 * size, size, (n, 2))
  wh = rng.uniform(0.3, 0.6 * size, (n, 2))
  boxes = np.concatenate([xy, xy + wh], -1)
  boxes[0] = [size + 20, size + 20, size + 40, size + 40]        # wholly outside: zeros
  boxes[1] = [3.0, 4.0, 3.2, 4.1]                                # smaller than a cell
  return boxes.astype(np.float32)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio,output_size,stride", [(2, 3, 4), (1, 2, 8)])
def test_roi_align_equals_plain_bilinear_loop(aligned, sampling_ratio, output_size, stride):
  rng = np.random.default_rng(sampling_ratio)
  feat = rng.normal(0, 1, (6, 7, 3)).astype(np.float32)
  boxes = _boxes(rng, 8, 7 * stride)
  fn = jax.jit(functools.partial(ra.roi_align, output_size=output_size,
                                 spatial_scale=1.0 / stride, sampling_ratio=sampling_ratio,
                                 aligned=aligned))
  out = np.asarray(fn(feat, boxes))
  expected = ref.roi_align(feat.astype(np.float64), boxes.astype(np.float64), output_size,
                           1.0 / stride, sampling_ratio, aligned)
  assert out.shape == (8, output_size, output_size, 3)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  assert np.all(out[0] == 0)


def test_roi_align_constant_map_and_feature_gradient():
  feat = jnp.full((5, 5, 2), 3.0)
  boxes = jnp.asarray([[2.0, 2.0, 14.0, 10.0]])                  # inside a 20 x 20 image
  fn = functools.partial(ra.roi_align, output_size=2, spatial_scale=0.25)
  np.testing.assert_allclose(np.asarray(fn(feat, boxes)), 3.0, rtol=1e-6)
  grad = jax.grad(lambda f: jnp.sum(fn(f, boxes)))(feat)
  # each output averages 4 samples whose bilinear weights sum to 1: total mass 2 * 2 bins
  np.testing.assert_allclose(float(jnp.sum(grad[..., 0])), 4.0, rtol=1e-6)
  with pytest.raises(ValueError, match="sampling_ratio"):
    ra.roi_align(feat, boxes, output_size=2, spatial_scale=0.25, sampling_ratio=0)


def test_multilevel_equals_per_level_roi_align():
  rng = np.random.default_rng(7)
  strides = (4, 8, 16)
  feats = [rng.normal(0, 1, (32 // s, 32 // s, 4)).astype(np.float32) for s in strides]
  boxes = _boxes(rng, 9, 32)
  levels = rng.integers(0, 3, 9)
  fn = jax.jit(functools.partial(ra.multilevel_roi_align, strides=strides, output_size=2))
  out = np.asarray(fn(feats, boxes, levels))
  for r in range(9):
    lv = levels[r]
    one = ra.roi_align(jnp.asarray(feats[lv]), jnp.asarray(boxes[r:r + 1]), output_size=2,
                       spatial_scale=1.0 / strides[lv])
    np.testing.assert_allclose(out[r], np.asarray(one)[0], rtol=1e-5, atol=1e-6)


def test_fpn_levels_equals_loop():
  rng = np.random.default_rng(8)
  sizes = np.concatenate([rng.uniform(4, 900, 30), [112.0, 224.0, 448.0, 111.9]])
  boxes = np.stack([np.zeros_like(sizes), np.zeros_like(sizes), sizes, sizes], -1)
  out = ra.fpn_levels(jnp.asarray(boxes, jnp.float32), min_level=2, max_level=5)
  expected = [ref.fpn_level(b, 2, 5) for b in boxes.astype(np.float64)]
  np.testing.assert_array_equal(np.asarray(out), expected)
  np.testing.assert_array_equal(np.asarray(out[-4:]), [1, 2, 3, 0])   # P3, P4, P5, P2
