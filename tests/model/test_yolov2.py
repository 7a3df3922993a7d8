"""Tests for anchor_jax.model: architecture size, anchors in params, BN without shift."""
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.model import yolov2 as model_lib
from anchor_jax.model.yolov2 import YOLOv2, count_params, forward_flops, space_to_depth

VOC_ANCHORS = ((1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892),
               (9.47112, 4.84053), (11.2364, 10.0071))

# yolov2-voc.cfg written out independently of the model: (kernel, Cin, Cout, stride)
# for every conv, at 416 input. Stride is the conv's output stride.
_DARKNET19_VOC_CONVS = [
    (3, 3, 32, 1), (3, 32, 64, 2),
    (3, 64, 128, 4), (1, 128, 64, 4), (3, 64, 128, 4),
    (3, 128, 256, 8), (1, 256, 128, 8), (3, 128, 256, 8),
    (3, 256, 512, 16), (1, 512, 256, 16), (3, 256, 512, 16), (1, 512, 256, 16),
    (3, 256, 512, 16),
    (3, 512, 1024, 32), (1, 1024, 512, 32), (3, 512, 1024, 32), (1, 1024, 512, 32),
    (3, 512, 1024, 32),
    (3, 1024, 1024, 32), (3, 1024, 1024, 32),  # head
    (1, 512, 64, 16),  # passthrough
    (3, 256 + 1024, 1024, 32),  # after concat
]


TINY_ANCHORS = ((1.0, 2.0), (3.5, 0.5), (6.0, 6.0))


def _tiny(**kwargs):
  options = dict(num_classes=3, anchors=TINY_ANCHORS, width=0.125, backbone="tiny")
  options.update(kwargs)
  return YOLOv2(**options)


def _images(batch, size, seed=0):
  """[batch, size, size, 3] standard-normal images (NumPy: no per-shape XLA compile)."""
  return np.random.default_rng(seed).standard_normal((batch, size, size, 3), np.float32)


def _is_pred_conv(module, method_name):
  return module.name == "pred" and method_name == "__call__"


@functools.lru_cache(maxsize=None)
def _jitted_apply(train, **options):
  model = _tiny(**options)

  def apply(variables, x):
    out, state = model.apply(variables, x, train=train, capture_intermediates=_is_pred_conv,
                             mutable=["batch_stats", "intermediates"])
    (raw,) = state["intermediates"]["head"]["pred"]["__call__"]  # [B, H, W, A * (5 + C)]
    return out, state["batch_stats"], raw.reshape(out.shape)

  return jax.jit(apply)


def _apply(variables, x, *, train, **options):
  """Jitted apply of ``_tiny(**options)`` (compiled once per options and shapes).

  Returns (out [B, H, W, A, 5 + C], new batch_stats, raw [B, H, W, A, 5 + C]) where raw
  is the prediction conv's output before the t_w/t_h BatchNorm.
  """
  return _jitted_apply(train, **options)(variables, x)


@pytest.fixture(scope="module")
def tiny_vars():
  """Variables of ``_tiny(bn_no_shift=True)``, initialised once for the whole module.

  XLA on CPU compiles threefry random draws slowly (seconds per kernel), so the test
  initialises once, with an 'rbg' key, and every test reuses these variables.
  """
  model = _tiny(bn_no_shift=True)
  init = jax.jit(lambda key, x: model.init(key, x, train=False))
  return init(jax.random.key(0, impl="rbg"), jnp.zeros((1, 64, 64, 3)))


def _without_wh_bn(variables):
  """Variables for ``bn_no_shift=False``: the same tree without ``head/wh_bn``."""
  plain = {}
  for col, tree in variables.items():
    head = {k: v for k, v in tree["head"].items() if k != "wh_bn"}
    plain[col] = {k: v for k, v in tree.items() if k != "head"}
    if head:
      plain[col]["head"] = head
  return plain


def test_darknet19_voc_shape_param_count_and_flops():
  model = YOLOv2(num_classes=20, anchors=VOC_ANCHORS)
  x = jax.ShapeDtypeStruct((1, 416, 416, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  assert out.shape == (1, 13, 13, 5, 25)

  num_out = 5 * (5 + 20)
  # conv kernel + BN scale + BN bias; final conv kernel + bias; anchors.
  expected = sum(k * k * cin * cout + 2 * cout for k, cin, cout, _ in _DARKNET19_VOC_CONVS)
  expected += 1024 * num_out + num_out + 5 * 2
  assert count_params(variables["params"]) == expected
  assert abs(expected / 1e6 - 50.6) < 0.1

  expected_flops = sum(2 * k * k * cin * cout * (416 // s) ** 2
                       for k, cin, cout, s in _DARKNET19_VOC_CONVS)
  expected_flops += 2 * 1024 * num_out * 13 * 13
  assert forward_flops(model, 416) == expected_flops
  assert forward_flops(model, 416) == pytest.approx(29.4e9, rel=0.02)


def test_darknet19_has_one_bn_per_conv_and_no_conv_bias():
  model = YOLOv2(num_classes=20, anchors=VOC_ANCHORS)
  x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  flat = flax.traverse_util.flatten_dict(variables["params"])
  kernels = [p for p in flat if p[-1] == "kernel"]
  assert len(kernels) == len(_DARKNET19_VOC_CONVS) + 1
  biases = [p for p in flat if p[-1] == "bias" and p[-2] != "bn"]
  assert biases == [("head", "pred", "bias")]


@pytest.mark.parametrize("size", [128, 160, 320])
@pytest.mark.parametrize("backbone", ["darknet19", "tiny"])
def test_output_is_input_over_32(size, backbone):
  model = YOLOv2(num_classes=20, anchors=VOC_ANCHORS, backbone=backbone, width=0.5)
  out = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x, train=False)[0],
      jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32))
  assert out.shape == (2, size // 32, size // 32, 5, 25)


def test_tiny_forward_is_finite(tiny_vars):
  out, _, _ = _apply(tiny_vars, _images(2, 64), train=False, bn_no_shift=True)
  assert out.shape == (2, 2, 2, 3, 8)
  assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))


def test_input_not_multiple_of_stride_raises():
  with pytest.raises(ValueError, match="multiple of 32"):
    jax.eval_shape(lambda x: _tiny().init(jax.random.key(0), x, train=False),
                   jax.ShapeDtypeStruct((1, 100, 100, 3), jnp.float32))


def test_anchor_log_wh_is_log_of_initial_anchors(tiny_vars):
  log_wh = tiny_vars["params"]["head"]["anchor_log_wh"]
  assert log_wh.shape == (3, 2)
  np.testing.assert_allclose(log_wh, np.log(np.array(TINY_ANCHORS)), rtol=1e-6)


def test_width_rule():
  assert model_lib.scale_channels(1024, 0.25, min_channels=8) == 256
  assert model_lib.scale_channels(32, 0.125, min_channels=8) == 8
  variables = jax.eval_shape(lambda x: _tiny(width=0.5).init(jax.random.key(0), x, train=False),
                             jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  params = variables["params"]
  assert params["backbone_conv0"]["conv"]["kernel"].shape == (3, 3, 3, 8)
  assert params["backbone_conv5"]["conv"]["kernel"].shape == (3, 3, 128, 256)
  assert params["passthrough_conv"]["conv"]["kernel"].shape == (1, 1, 128, 16)
  assert params["detect_conv3"]["conv"]["kernel"].shape == (3, 3, 4 * 16 + 256, 256)
  assert params["head"]["pred"]["kernel"].shape == (1, 1, 256, 3 * 8)


def test_space_to_depth_hand_made():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  expected = np.array([[[0, 1, 4, 5], [2, 3, 6, 7]],
                       [[8, 9, 12, 13], [10, 11, 14, 15]]], np.float32)[None]
  np.testing.assert_array_equal(space_to_depth(x, 2), expected)
  # Two channels: channel c of offset (dy, dx) lands at (dy * 2 + dx) * C + c.
  x2 = jnp.stack([x[..., 0], 100 + x[..., 0]], axis=-1)  # [1, 4, 4, 2]
  out = space_to_depth(x2, 2)
  assert out.shape == (1, 2, 2, 8)
  np.testing.assert_array_equal(out[0, 1, 0], [8, 108, 9, 109, 12, 112, 13, 113])


def test_passthrough_feeds_the_output(tiny_vars):
  # Perturbing only the passthrough conv's kernel changes the output.
  x = _images(2, 64)
  params = {**tiny_vars["params"], "passthrough_conv": {
      "conv": {"kernel": -tiny_vars["params"]["passthrough_conv"]["conv"]["kernel"]},
      "bn": tiny_vars["params"]["passthrough_conv"]["bn"]}}
  out, _, _ = _apply(tiny_vars, x, train=False, bn_no_shift=True)
  changed, _, _ = _apply({**tiny_vars, "params": params}, x, train=False, bn_no_shift=True)
  assert float(jnp.abs(out - changed).max()) > 1e-3


def _with_pred_bias(variables, value):
  """Copy of variables with the prediction conv's bias set to `value` (a big offset)."""
  params = jax.tree.map(lambda a: a, variables["params"])
  params["head"] = dict(params["head"])
  params["head"]["pred"] = dict(params["head"]["pred"])
  params["head"]["pred"]["bias"] = np.full(params["head"]["pred"]["bias"].shape, value,
                                           np.float32)
  return {**variables, "params": params}


def test_bn_no_shift_params(tiny_vars):
  assert set(tiny_vars["params"]["head"]["wh_bn"]) == {"scale"}
  assert tiny_vars["params"]["head"]["wh_bn"]["scale"].shape == (3, 2)
  plain = jax.eval_shape(lambda x: _tiny(bn_no_shift=False).init(jax.random.key(0), x,
                                                                 train=False),
                         jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  assert "wh_bn" not in plain["params"]["head"]
  assert jax.tree.structure(plain) == jax.tree.structure(_without_wh_bn(tiny_vars))


def test_bn_no_shift_train_mode_zero_mean_only_on_twh(tiny_vars):
  x = _images(4, 64)
  variables = _with_pred_bias(tiny_vars, 10.0)
  out, stats, raw = _apply(variables, x, train=True, bn_no_shift=True)
  mean = out.mean(axis=(0, 1, 2))  # [A, 5 + C]
  np.testing.assert_allclose(mean[:, 2:4], 0.0, atol=1e-4)
  np.testing.assert_allclose(out[..., 2:4].var(axis=(0, 1, 2)), 1.0, atol=1e-2)
  other = np.concatenate([mean[:, :2], mean[:, 4:]], axis=-1)
  assert np.all(np.abs(other) > 5.0)  # the +10 bias survives elsewhere

  # Before the BN t_w, t_h carry the offset; the BN is exactly batch standardisation of
  # them, and its running mean moved towards their batch mean with momentum 0.99 (from 0).
  raw_wh = np.asarray(raw[..., 2:4], np.float64)
  raw_mean = raw_wh.mean(axis=(0, 1, 2))  # [A, 2]
  assert np.all(np.abs(raw_mean) > 5.0)
  expected = (raw_wh - raw_mean) / np.sqrt(raw_wh.var(axis=(0, 1, 2)) + 1e-5)
  np.testing.assert_allclose(out[..., 2:4], expected, atol=1e-3)
  np.testing.assert_allclose(stats["head"]["wh_bn"]["mean"], 0.01 * raw_mean, rtol=1e-4)
  np.testing.assert_allclose(out[..., :2], raw[..., :2])
  np.testing.assert_allclose(out[..., 4:], raw[..., 4:])


def test_bn_no_shift_eval_mode_uses_running_stats(tiny_vars):
  x = _images(2, 64)
  running_mean = jnp.array([[0.5, -1.0], [2.0, 0.0], [-0.3, 0.7]])
  running_var = jnp.array([[4.0, 1.0], [0.25, 2.0], [1.0, 9.0]])
  scale = jnp.array([[1.0, 2.0], [0.5, 1.0], [3.0, 1.0]])
  params = {**tiny_vars["params"],
            "head": {**tiny_vars["params"]["head"], "wh_bn": {"scale": scale}}}
  stats = {**tiny_vars["batch_stats"],
           "head": {"wh_bn": {"mean": running_mean, "var": running_var}}}
  variables = {"params": params, "batch_stats": stats}
  out, _, raw = _apply(variables, x, train=False, bn_no_shift=True)
  expected = (raw[..., 2:4] - running_mean) / jnp.sqrt(running_var + 1e-5) * scale
  np.testing.assert_allclose(out[..., 2:4], expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out[..., :2], raw[..., :2])
  np.testing.assert_allclose(out[..., 4:], raw[..., 4:])


def test_bfloat16_compute_without_wh_bn(tiny_vars):
  # bfloat16 compute, bn_no_shift=False: float32 params and output, the output is the
  # prediction conv's (no BN on t_w, t_h), and close to the float32 model's.
  x = _images(2, 64)
  out, _, raw = _apply(_without_wh_bn(tiny_vars), x, train=False, bn_no_shift=False,
                       dtype=jnp.bfloat16)
  assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
  np.testing.assert_array_equal(out, raw.astype(jnp.float32))
  ref, _, _ = _apply(tiny_vars, x, train=False, bn_no_shift=True)  # init stats: ~identity
  np.testing.assert_allclose(out, ref, atol=0.05 * float(jnp.abs(ref).max()))


def test_objectness_bias_prior():
  """model.obj_bias_prior p: the objectness bias of every anchor starts at logit(p), so
  sigmoid(t_o) = p where the kernel's contribution is 0; the other biases stay 0."""
  model = _tiny(obj_bias_prior=0.01)
  variables = jax.jit(lambda key, x: model.init(key, x, train=False))(
      jax.random.key(0, impl="rbg"), jnp.zeros((1, 64, 64, 3)))
  bias = np.asarray(variables["params"]["head"]["pred"]["bias"]).reshape(3, 8)   # [A, 5 + C]
  np.testing.assert_allclose(bias[:, 4], np.log(0.01 / 0.99), rtol=1e-6)
  assert (np.delete(bias, 4, axis=1) == 0).all()
  zero = np.asarray(_tiny().init(jax.random.key(0, impl="rbg"), jnp.zeros((1, 64, 64, 3)),
                                 train=False)["params"]["head"]["pred"]["bias"])
  assert (zero == 0).all()


def test_reshape_max_pool_equals_the_window_pool():
  """model.max_pool=reshape: the same values as nn.max_pool, the same gradient where a
  window has one maximum, and the gradient split among tied maxima (a valid subgradient)."""
  x = _images(2, 8)[..., :2] * 3                      # [2, 8, 8, 2], no ties
  for impl in model_lib.MAX_POOLS:
    np.testing.assert_array_equal(model_lib.max_pool_2x2(x, impl),
                                  model_lib.max_pool_2x2(x, "window"))
  grad = lambda impl: jax.grad(lambda v: (model_lib.max_pool_2x2(v, impl) ** 2).sum())(x)
  np.testing.assert_allclose(grad("reshape"), grad("window"), rtol=1e-6)
  tied = jnp.ones((1, 2, 2, 1))
  g = jax.grad(lambda v: model_lib.max_pool_2x2(v, "reshape").sum())(tied)
  np.testing.assert_allclose(g, np.full((1, 2, 2, 1), 0.25))
  with pytest.raises(ValueError, match="max-pool"):
    model_lib.max_pool_2x2(x, "average")
