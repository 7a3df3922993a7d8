"""Faster R-CNN model: shapes and strides per level, param paths, the anchors' param, the
heads and FPN against NumPy, frozen BN as a fixed affine map, the frozen-param mask."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax import defaults
from anchor_jax.model import faster_rcnn, fpn, resnet
from tests.model import resnet_reference as ref

NUM_CLASSES = 3


def _config(**rcnn):
  config = defaults.base_config()
  config.model.width = 0.125
  config.rcnn.depth = 18
  config.rcnn.update(rcnn)
  return config


def _model(config=None, **fields):
  config = config or _config()
  model = faster_rcnn.from_config(config, num_classes=NUM_CLASSES,
                                  anchors=faster_rcnn.default_anchors(config))
  return model.clone(**fields) if fields else model


def _images(batch=2, size=128, seed=0):
  return np.random.default_rng(seed).random((batch, size, size, 3), np.float32)


def _shapes(model, x):
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)


@pytest.fixture(scope="module")
def tiny():
  """The tiny FPN detector and its variables (one rbg-key init: threefry compiles slowly)."""
  model = _model()
  variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"), _images(1, 64))
  return model, jax.tree.map(np.asarray, variables)


def _conv_nhwc(x, kernel, bias, pad):
  """NHWC conv via the NCHW reference: kernel HWIO, stride 1."""
  out = ref.conv2d(x.transpose(0, 3, 1, 2).astype(np.float64), kernel.transpose(3, 2, 0, 1),
                   1, pad)
  return out.transpose(0, 2, 3, 1) + bias


def test_default_anchors_closed_form():
  fpn_anchors = faster_rcnn.default_anchors(_config())
  assert fpn_anchors.shape == (5, 3, 2) and fpn_anchors.dtype == np.float32
  sizes, ratios = np.array([32, 64, 128, 256, 512.]), np.array([0.5, 1.0, 2.0])
  np.testing.assert_allclose(fpn_anchors.prod(-1), (sizes ** 2)[:, None].repeat(3, 1),
                             rtol=1e-6)
  np.testing.assert_allclose(fpn_anchors[..., 1] / fpn_anchors[..., 0],
                             ratios[None].repeat(5, 0), rtol=1e-6)
  np.testing.assert_allclose(fpn_anchors[0, 0], [32 * np.sqrt(2), 32 / np.sqrt(2)], rtol=1e-6)
  c4 = faster_rcnn.default_anchors(_config(fpn=False))
  assert c4.shape == (1, 15, 2)
  np.testing.assert_array_equal(c4[0], fpn_anchors.reshape(15, 2))   # size-major
  with pytest.raises(ValueError, match="positive"):
    faster_rcnn.anchor_shapes((32, -1), (1.0,), fpn=True)


def test_from_config_reads_the_rcnn_keys():
  config = _config(fpn=False, norm="bn", freeze_at=0, rpn_channels=24, fc_dim=256,
                   roi_size=5, fpn_channels=128)
  config.model.dtype = "bfloat16"
  model = _model(config)
  assert (model.fpn, model.depth, model.width, model.norm, model.freeze_at) == \
      (False, 18, 0.125, "bn", 0)
  assert (model.rpn_channels, model.fc_dim, model.roi_size, model.fpn_channels) == \
      (24, 256, 5, 128)
  assert model.dtype == jnp.bfloat16 and model.num_classes == NUM_CLASSES
  assert np.asarray(model.anchors).shape == (1, 15, 2)
  assert model.strides == model.roi_strides == (16,)
  assert _model().strides == (4, 8, 16, 32, 64) and _model().roi_strides == (4, 8, 16, 32)


def test_param_tree_paths_and_shapes():
  model = _model()
  variables = _shapes(model, _images(1, 64))
  params, stats = variables["params"], variables["batch_stats"]
  assert set(params) == {"backbone", "fpn", "rpn", "box_head"} and set(stats) == {"backbone"}
  assert set(params["backbone"]) == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}
  assert set(params["backbone"]["layer2"]["0"]) == {"conv1", "bn1", "conv2", "bn2",
                                                    "downsample_conv", "downsample_bn"}
  assert set(params["backbone"]["layer1"]["1"]) == {"conv1", "bn1", "conv2", "bn2"}
  assert params["backbone"]["layer4"]["1"]["conv2"]["kernel"].shape == (3, 3, 64, 64)
  assert set(params["fpn"]) == {f"{k}{level}" for k in ("lateral", "output")
                                for level in range(2, 6)}
  assert params["fpn"]["lateral2"]["kernel"].shape == (1, 1, 8, 32)   # C2 8 -> 256 x 1/8
  rpn = jax.tree.map(lambda s: s.shape, params["rpn"])
  assert rpn == {"anchor_log_wh": (5, 3, 2),
                 "conv": {"kernel": (3, 3, 32, 32), "bias": (32,)},
                 "objectness": {"kernel": (1, 1, 32, 3), "bias": (3,)},
                 "anchor_deltas": {"kernel": (1, 1, 32, 12), "bias": (12,)}}
  box = jax.tree.map(lambda s: s.shape, params["box_head"])
  assert box == {"fc1": {"kernel": (7 * 7 * 32, 128), "bias": (128,)},
                 "fc2": {"kernel": (128, 128), "bias": (128,)},
                 "cls_score": {"kernel": (128, NUM_CLASSES + 1), "bias": (NUM_CLASSES + 1,)},
                 "bbox_pred": {"kernel": (128, 4 * NUM_CLASSES), "bias": (4 * NUM_CLASSES,)}}
  stat_leaves = {path[-1].key for path, _ in jax.tree_util.tree_flatten_with_path(stats)[0]}
  assert stat_leaves == {"mean", "var"}
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))

  c4 = _shapes(_model(_config(fpn=False, depth=50)), _images(1, 64))["params"]
  assert "fpn" not in c4 and "layer4" not in c4["backbone"]
  assert c4["rpn"]["anchor_log_wh"].shape == (1, 15, 2)
  assert c4["rpn"]["conv"]["kernel"].shape == (3, 3, 128, 128)   # C4 of R50: 1024 x 1/8
  assert c4["box_head"]["fc1"]["kernel"].shape == (7 * 7 * 128, 128)


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_levels_have_strides_4_to_32(depth):
  x = jax.ShapeDtypeStruct((2, 96, 96, 3), jnp.float32)
  model = resnet.ResNet(depth=depth, width=0.125)
  outs = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, train=False)[0],
                        x)
  channels = resnet.stage_out_channels(depth, 0.125)
  assert channels == ((8, 16, 32, 64) if depth == 18 else (32, 64, 128, 256))
  assert [o.shape for o in outs] == [(2, 96 // s, 96 // s, c)
                                     for s, c in zip(resnet.STAGE_STRIDES, channels)]


def test_detector_outputs_per_level():
  size, batch = 128, 2
  for model, levels in ((_model(), (4, 8, 16, 32, 64)), (_model(_config(fpn=False)), (16,))):
    (feats, (logits, deltas), (cls, box)), _ = jax.eval_shape(
        lambda x, m=model: m.init_with_output(jax.random.key(0), x),
        jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32))
    a = np.asarray(model.anchors).shape[1]
    c = model.feature_channels
    assert model.strides == levels
    assert [f.shape for f in feats] == [(batch, size // s, size // s, c) for s in levels]
    assert [g.shape for g in logits] == [(batch, (size // s) ** 2 * a) for s in levels]
    assert [d.shape for d in deltas] == [(batch, (size // s) ** 2 * a, 4) for s in levels]
    assert cls.shape == (batch, 1, NUM_CLASSES + 1) and box.shape == (batch, 1, NUM_CLASSES, 4)
  with pytest.raises(ValueError, match="multiple of 32"):
    jax.eval_shape(lambda x: _model().init(jax.random.key(0), x),
                   jax.ShapeDtypeStruct((1, 80, 80, 3), jnp.float32))


def test_bfloat16_keeps_params_and_head_outputs_float32():
  config = _config()
  config.model.dtype = "bfloat16"
  model = _model(config)
  (feats, (logits, deltas), (cls, box)), variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x), _images(1, 64))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
  assert feats[0].dtype == jnp.bfloat16
  assert {x.dtype for x in [*logits, *deltas, cls, box]} == {jnp.dtype(jnp.float32)}


def test_anchor_param_is_log_of_the_default_anchors(tiny):
  model, variables = tiny
  anchors = variables["params"]["rpn"]["anchor_log_wh"]
  assert anchors.shape == (5, 3, 2) and anchors.dtype == np.float32
  np.testing.assert_array_equal(anchors, np.log(faster_rcnn.default_anchors(_config())))
  stats = variables["batch_stats"]["backbone"]["layer3"]["0"]["bn2"]
  np.testing.assert_array_equal(stats["mean"], 0.0)
  np.testing.assert_array_equal(stats["var"], 1.0)


def test_rpn_head_matches_numpy_in_cell_major_anchor_minor_order(tiny):
  model, variables = tiny
  rng = np.random.default_rng(1)
  c, a = model.feature_channels, 3
  feats = [rng.standard_normal((2, h, w, c)).astype(np.float32)
           for h, w in ((6, 5), (3, 3), (2, 2), (1, 2), (1, 1))]
  rpn = jax.tree.map(lambda v: rng.standard_normal(v.shape).astype(np.float32) * 0.3,
                     variables["params"]["rpn"])
  params = {**variables["params"], "rpn": rpn}
  logits, deltas = model.apply({**variables, "params": params}, feats, method="rpn")
  for x, got_logits, got_deltas in zip(feats, logits, deltas):
    hidden = np.maximum(_conv_nhwc(x, rpn["conv"]["kernel"], rpn["conv"]["bias"], 1), 0)
    obj = hidden @ rpn["objectness"]["kernel"][0, 0] + rpn["objectness"]["bias"]
    box = hidden @ rpn["anchor_deltas"]["kernel"][0, 0] + rpn["anchor_deltas"]["bias"]
    b, h, w, _ = x.shape
    want_logits = np.zeros((b, h * w * a))
    want_deltas = np.zeros((b, h * w * a, 4))
    for i in range(h):
      for j in range(w):
        for k in range(a):
          want_logits[:, (i * w + j) * a + k] = obj[:, i, j, k]
          want_deltas[:, (i * w + j) * a + k] = box[:, i, j, 4 * k:4 * k + 4]
    np.testing.assert_allclose(np.asarray(got_logits), want_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(got_deltas), want_deltas, rtol=1e-4, atol=1e-4)


def test_box_head_matches_numpy(tiny):
  model, variables = tiny
  rng = np.random.default_rng(2)
  rois = rng.standard_normal((2, 4, 7, 7, model.feature_channels)).astype(np.float32)
  head = variables["params"]["box_head"]
  cls, deltas = model.apply(variables, rois, method="box_head")
  dense = lambda x, name: x @ head[name]["kernel"] + head[name]["bias"]
  hidden = np.maximum(dense(np.maximum(dense(rois.reshape(2, 4, -1), "fc1"), 0), "fc2"), 0)
  np.testing.assert_allclose(np.asarray(cls), dense(hidden, "cls_score"), rtol=1e-4, atol=1e-5)
  box = dense(hidden, "bbox_pred")   # [2, 4, 4 C]: class c (1..C) at columns 4 (c - 1) ..
  for c in range(1, NUM_CLASSES + 1):
    np.testing.assert_allclose(np.asarray(deltas[:, :, c - 1]), box[..., 4 * (c - 1):4 * c],
                               rtol=1e-4, atol=1e-6)


def test_fpn_matches_numpy_top_down_with_odd_sizes(tiny):
  _, variables = tiny
  params = variables["params"]["fpn"]
  rng = np.random.default_rng(3)
  sizes, channels = (7, 4, 2, 1), (8, 16, 32, 64)
  cs = [rng.standard_normal((1, s, s, ch)).astype(np.float32) for s, ch in zip(sizes, channels)]
  got = fpn.FPN(32).apply({"params": params}, cs)
  lateral = [c @ params[f"lateral{lv}"]["kernel"][0, 0] + params[f"lateral{lv}"]["bias"]
             for lv, c in zip(range(2, 6), cs)]
  merged = [None] * 4
  merged[3] = lateral[3]
  for i in (2, 1, 0):
    rows = np.arange(sizes[i]) // 2   # nearest 2x, cropped
    merged[i] = lateral[i] + merged[i + 1][:, rows][:, :, rows]
  want = [_conv_nhwc(m, params[f"output{lv}"]["kernel"], params[f"output{lv}"]["bias"], 1)
          for lv, m in zip(range(2, 6), merged)]
  want.append(want[3][:, ::2, ::2])
  assert len(got) == 5
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-4)


def test_frozen_bn_is_the_stored_affine_map():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((3, 2, 2, 5)).astype(np.float32)
  layer = resnet.norm_layer(True, train=True, momentum=0.9, axis_name=None,
                            dtype=jnp.float32, name="bn")
  v = {"params": {"scale": rng.uniform(0.5, 2, 5), "bias": rng.normal(size=5)},
       "batch_stats": {"mean": rng.normal(size=5), "var": rng.uniform(0.1, 3, 5)}}
  v = jax.tree.map(lambda a: np.asarray(a, np.float32), v)
  y, state = layer.apply(v, x, mutable=["batch_stats"])
  want = (v["params"]["scale"] * (x - v["batch_stats"]["mean"])
          / np.sqrt(v["batch_stats"]["var"] + 1e-5) + v["params"]["bias"])
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, state["batch_stats"], v["batch_stats"])


def test_frozen_bn_detector_ignores_the_batch(tiny):
  """Every BN of the frozen-BN detector uses the stored statistics in training too."""
  model, variables = tiny
  rng = np.random.default_rng(5)
  stats = jax.tree.map(lambda s: rng.uniform(0.5, 1.5, s.shape).astype(np.float32),
                       variables["batch_stats"])
  v = {**variables, "batch_stats": stats}
  x = _images(2, 64)
  features = jax.jit(lambda v, x, train: model.apply(v, x, train, method="features",
                                                    mutable=["batch_stats"]),
                     static_argnums=2)
  train, state = features(v, x, True)
  evaluated, _ = features(v, x, False)
  for a, b in zip(train, evaluated):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  jax.tree.map(np.testing.assert_array_equal, state["batch_stats"], stats)


def test_train_mode_bn_updates_only_unfrozen_stages():
  model = resnet.ResNet(depth=18, width=0.125, norm="bn", freeze_at=2)
  x = _images(2, 32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  rng = np.random.default_rng(6)
  v = jax.tree.map(lambda s: (rng.standard_normal(s.shape) * 0.2).astype(np.float32), shapes)
  v["batch_stats"] = jax.tree.map(lambda a: np.abs(a) + 1.0, v["batch_stats"])
  apply = jax.jit(lambda v, x, train: model.apply(v, x, train=train, mutable=["batch_stats"]),
                  static_argnums=2)
  outs, state = apply(v, x, True)
  new = state["batch_stats"]
  for frozen in ("bn1", "layer1"):   # stem and res2: frozen BN (freeze_at=2)
    jax.tree.map(np.testing.assert_array_equal, new[frozen], v["batch_stats"][frozen])
  for name in ("layer2", "layer3", "layer4"):
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != b)), new[name],
                           v["batch_stats"][name])
    assert all(jax.tree.leaves(changed)), name
  evaluated, _ = apply(v, x, False)
  np.testing.assert_array_equal(np.asarray(outs[0]), np.asarray(evaluated[0]))   # C2: frozen
  assert not np.allclose(np.asarray(outs[1]), np.asarray(evaluated[1]))


def test_frozen_param_mask(tiny):
  _, variables = tiny
  params = variables["params"]
  flat = lambda tree: {"/".join(str(p.key) for p in path): leaf
                       for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
  mask = flat(faster_rcnn.frozen_mask(_model(), params))
  assert set(mask) == set(flat(params))
  frozen = {k for k, v in mask.items() if v}
  for key in ("backbone/conv1/kernel", "backbone/bn1/scale", "backbone/layer1/1/conv2/kernel",
              "backbone/layer1/0/bn1/bias", "backbone/layer2/0/bn1/scale",
              "backbone/layer4/0/downsample_bn/bias", "backbone/layer3/1/bn2/bias"):
    assert key in frozen, key
  for key in ("backbone/layer2/0/conv1/kernel", "backbone/layer4/0/downsample_conv/kernel",
              "rpn/anchor_log_wh", "rpn/conv/kernel", "fpn/lateral2/bias", "box_head/fc1/kernel"):
    assert key not in frozen, key
  # Exactly: stem + layer1 whole, plus every BN scale/bias of layer2..4.
  want = {k for k in mask if k.startswith(("backbone/conv1", "backbone/bn1", "backbone/layer1/"))
          or (k.startswith("backbone/") and k.rsplit("/", 2)[-2].endswith(("bn1", "bn2", "bn"))
              and k.endswith(("scale", "bias")))}
  assert frozen == want

  bn_mask = flat(resnet.frozen_param_mask(params, 1, norm="bn"))
  assert {k for k, v in bn_mask.items() if v} == {k for k in mask if k.startswith(
      ("backbone/conv1", "backbone/bn1"))}
  own = flat(resnet.frozen_param_mask(params["backbone"], 0, norm="bn", backbone=None))
  assert not any(own.values())


def test_frozen_stages_get_no_gradient():
  model = resnet.ResNet(depth=18, width=0.125, freeze_at=2)
  x = _images(1, 32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  rng = np.random.default_rng(7)
  v = jax.tree.map(lambda s: (rng.standard_normal(s.shape) * 0.3).astype(np.float32), shapes)
  v["batch_stats"] = jax.tree.map(lambda a: np.abs(a) + 1.0, v["batch_stats"])

  def loss(params):
    return sum(jnp.sum(o) for o in model.apply({**v, "params": params}, x, train=False))

  grads = jax.jit(jax.grad(loss))(v["params"])
  for name in ("conv1", "bn1", "layer1"):
    assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(grads[name])), name
  assert np.any(np.asarray(grads["layer2"]["0"]["conv1"]["kernel"]))


def test_train_mode_bn_under_pmap_averages_over_devices():
  """norm='bn' with bn_axis_name: 4 devices x 1 image equal one device on the 4 images."""
  devices = jax.local_devices()[:4]
  if len(devices) < 4:
    pytest.skip("needs 4 (fake) devices: tests/conftest.py sets them")
  options = dict(depth=18, width=0.125, norm="bn", freeze_at=0)
  local, synced = resnet.ResNet(**options), resnet.ResNet(bn_axis_name="batch", **options)
  x = _images(4, 32)
  shapes = jax.eval_shape(lambda x: local.init(jax.random.key(0), x, train=False), x)
  rng = np.random.default_rng(8)
  v = jax.tree.map(lambda s: (rng.standard_normal(s.shape) * 0.3).astype(np.float32), shapes)
  v["batch_stats"] = jax.tree.map(lambda a: np.abs(a) + 1.0, v["batch_stats"])
  apply = lambda m: lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"])
  want, want_state = jax.jit(apply(local))(v, x)
  replicated = jax.tree.map(lambda a: np.stack([a] * 4), v)
  got, got_state = jax.pmap(apply(synced), axis_name="batch", devices=devices)(
      replicated, x[:, None])
  np.testing.assert_allclose(np.asarray(got[-1]).reshape(want[-1].shape), want[-1],
                             rtol=1e-4, atol=1e-4)
  for g, w in zip(jax.tree.leaves(got_state), jax.tree.leaves(want_state)):
    np.testing.assert_allclose(np.asarray(g)[0], w, rtol=1e-4, atol=1e-5)
