"""darknet weights and cfgs into our YOLOv2: equal outputs to darknet's forward in NumPy,
its reorg, its header rule, its BatchNorm, and one-line errors for files that do not fit."""
import os

import jax
import numpy as np
import pytest

from anchor_jax.model import darknet_cfg, darknet_weights, yolov2
from tests import darknet_reference as dn

ANCHORS = ((1.0, 2.0), (3.5, 0.5))
CLASSES = 3
TINY_NET = dn.tiny_net(CLASSES, len(ANCHORS))
VOC_NET = dn.DARKNET19_BACKBONE + dn.yolov2_head(20, 5)
VOC_FLOATS = 50_676_061            # darknet19 + 20-class head (yolov2-voc.weights)
BACKBONE_FLOATS = 19_831_776       # darknet19_448.conv.23


def _model(**kwargs):
  options = dict(num_classes=CLASSES, anchors=ANCHORS, width=0.125, backbone="tiny",
                 reorg="darknet", bn_no_shift=True)
  options.update(kwargs)
  return yolov2.YOLOv2(**options)


def _init(model, size=(64, 96)):
  variables = jax.jit(lambda k, x: model.init(k, x, train=False))(
      jax.random.key(0, impl="rbg"), np.zeros((1, *size, 3), np.float32))
  return jax.device_get(variables["params"]), jax.device_get(variables["batch_stats"])


def _apply(model, params, batch_stats, images_nchw):
  out = model.apply({"params": params, "batch_stats": batch_stats},
                    images_nchw.transpose(0, 2, 3, 1).astype(np.float32), train=False)
  return np.asarray(out)   # [B, H, W, A, 5 + C]


def _as_ours(reference, num_anchors):
  """darknet's [B, A*(5+C), H, W] -> [B, H, W, A, 5+C] (anchor n, entry k at n*(5+C)+k)."""
  b, ch, h, w = reference.shape
  return reference.reshape(b, num_anchors, ch // num_anchors, h, w).transpose(0, 3, 4, 1, 2)


# ------------------------------------------------------------------ reorg


@pytest.mark.parametrize("shape", [(2, 4, 6, 8), (1, 26, 26, 64)])
def test_darknet_reorg_equals_reorg_cpu_loop(shape):
  b, h, w, c = shape
  x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  flat = x.transpose(0, 3, 1, 2).reshape(-1)           # darknet's [B, C, H, W] memory
  looped = dn.reorg_cpu(flat, w, h, c, b, 2, 0)       # forward_reorg_layer's call
  expected = looped.reshape(b, 4 * c, h // 2, w // 2).transpose(0, 2, 3, 1)
  np.testing.assert_array_equal(np.asarray(yolov2.darknet_reorg(x, 2)), expected)
  # It is not a space-to-depth in any channel order: some output pixel mixes input
  # pixels from outside its own 2x2 block.
  assert not np.array_equal(np.sort(expected, axis=-1),
                            np.sort(np.asarray(yolov2.space_to_depth(x, 2)), axis=-1))


def test_darknet_reorg_hand_example():
  """C=4, H=W=2: the [C, H, W] memory read as [1, 4, 4]; out channel k at (0, 0) is the
  input element at (h2, w2) = (k // 2, k % 2) of that view."""
  x = np.arange(16, dtype=np.float32).reshape(4, 2, 2)     # [C, H, W], values = memory index
  out = np.asarray(yolov2.darknet_reorg(x.transpose(1, 2, 0)[None], 2))   # [1, 1, 1, 16]
  view = np.arange(16).reshape(4, 4)                       # [2H, 2W] view of that memory
  # Output memory [C=4][H=2][W=2] element (k, j, i) = view[2j + k // 2, 2i + k % 2].
  expected = [view[2 * j + k // 2, 2 * i + k % 2] for k in range(4) for j in range(2)
              for i in range(2)]
  np.testing.assert_array_equal(out[0, 0, 0], expected)


# ------------------------------------------------------------------ header and BatchNorm


@pytest.mark.parametrize("version,nbytes", [((0, 1, 0), 16), ((0, 2, 0), 20), ((1, 0, 0), 20),
                                            ((0, 1000, 0), 16), ((1000, 0, 0), 16)])
def test_header_seen_width_follows_load_weights(tmp_path, version, nbytes):
  major, minor, revision = version
  path = str(tmp_path / "h.weights")
  with open(path, "wb") as f:
    f.write(dn.header_bytes(major=major, minor=minor, revision=revision, seen=123456))
  header = darknet_weights.read_header(path)
  assert (header.major, header.minor, header.nbytes, header.seen) == (major, minor, nbytes,
                                                                      123456)


def test_flax_batchnorm_equals_darknet_formula():
  rng = np.random.default_rng(1)
  variance = np.concatenate([rng.uniform(1e-3, 10, 6), [0.0, 1e-12, 1e-7, 9e-6]])
  scales, mean = rng.uniform(0.5, 2, 10), rng.normal(0, 1, 10)
  x = rng.normal(0, 3, (7, 10))
  darknet = scales * (x - mean) / (np.sqrt(variance) + .000001)
  scale, m, var = darknet_weights.flax_batchnorm(scales, mean, variance, epsilon=1e-5)
  assert np.all(var >= 0)
  flax_out = scale * (x - m) / np.sqrt(var.astype(np.float64) + 1e-5)
  np.testing.assert_allclose(flax_out, darknet, rtol=2e-6)
  # Where nothing is clamped the scale is darknet's own.
  np.testing.assert_allclose(scale[:6], scales[:6], rtol=1e-6)


# ------------------------------------------------------------------ a whole network


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
  folder = tmp_path_factory.mktemp("tiny_darknet")
  weights = dn.random_weights(TINY_NET, seed=3)
  path = str(folder / "tiny.weights")
  dn.write_weights(path, TINY_NET, weights)
  with open(folder / "tiny.cfg", "w") as f:
    f.write(dn.cfg_text(TINY_NET, ANCHORS))
  return path, str(folder / "tiny.cfg"), weights


def test_loaded_tiny_network_equals_numpy_darknet_forward(tiny_files):
  path, cfg_path, weights = tiny_files
  model = _model()
  params, batch_stats = _init(model)
  params, batch_stats, header = darknet_weights.load(path, params, batch_stats, parts="all",
                                                     network="tiny")
  assert header.nbytes == 20
  images = np.random.default_rng(5).uniform(0, 1, (2, 3, 64, 96))   # H != W on purpose
  expected = _as_ours(dn.forward(TINY_NET, weights, images), len(ANCHORS))
  got = _apply(model, params, batch_stats, images)
  assert got.shape == (2, 2, 3, 2, 5 + CLASSES)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
  # The cfg describes exactly this model; its anchors parse.
  sections = darknet_cfg.read(cfg_path)
  darknet_cfg.check(sections, darknet_cfg.model_layers(model), name=cfg_path)
  np.testing.assert_allclose(darknet_cfg.anchors(sections), ANCHORS)


def test_tf_reorg_does_not_reproduce_darknet(tiny_files):
  """The plain space-to-depth gives other outputs from the same weights (the option matters)."""
  path, _, weights = tiny_files
  model = _model(reorg="tf")
  params, batch_stats = _init(model)
  params, batch_stats, _ = darknet_weights.load(path, params, batch_stats, parts="all",
                                                network="tiny")
  images = np.random.default_rng(5).uniform(0, 1, (1, 3, 64, 96))
  expected = _as_ours(dn.forward(TINY_NET, weights, images), len(ANCHORS))
  assert np.abs(_apply(model, params, batch_stats, images) - expected).max() > \
      1e-2 * np.abs(expected).max()


def test_backbone_only_keeps_the_head_fresh(tmp_path, tiny_files):
  _, _, weights = tiny_files
  path = str(tmp_path / "tiny.conv.11")
  dn.write_weights(path, TINY_NET, weights, upto=11, major=0, minor=1)   # 16-byte header
  model = _model()
  fresh, fresh_stats = _init(model)
  params, stats, header = darknet_weights.load(path, fresh, fresh_stats, parts="backbone",
                                               network="tiny")
  assert header.nbytes == 16
  np.testing.assert_array_equal(params["backbone_conv5"]["conv"]["kernel"],
                                weights[10]["weights"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(params["backbone_conv0"]["bn"]["bias"], weights[0]["biases"])
  np.testing.assert_array_equal(stats["backbone_conv2"]["bn"]["mean"], weights[4]["mean"])
  for name in ("detect_conv1", "passthrough_conv", "head"):
    for a, b in zip(jax.tree.leaves(params[name]), jax.tree.leaves(fresh[name])):
      np.testing.assert_array_equal(a, b)
  # darknet reads the first layers of a whole detector the same way.
  whole, _, _ = darknet_weights.load(tiny_files[0], fresh, fresh_stats, parts="backbone",
                                     network="tiny")
  for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)


def test_cfg_of_another_network_is_refused_naming_the_layer(tiny_files):
  _, cfg_path, _ = tiny_files
  with open(cfg_path) as f:
    text = f.read()
  expected = darknet_cfg.model_layers(_model())
  other_classes = text.replace(f"classes={CLASSES}", "classes=4")
  with pytest.raises(darknet_cfg.DarknetCfgError, match=r"classes=4, the model has classes=3"):
    darknet_cfg.check(darknet_cfg.parse(other_classes), expected, name="x.cfg")
  wider = text.replace("filters=16", "filters=32", 1)
  with pytest.raises(darknet_cfg.DarknetCfgError,
                     match=r"x.cfg layer 6 \(\[convolutional\], line \d+\): filters=32, the "
                           r"model has filters=16"):
    darknet_cfg.check(darknet_cfg.parse(wider), expected, name="x.cfg")
  route = text.replace("layers=-5", "layers=-9")
  with pytest.raises(darknet_cfg.DarknetCfgError, match=r"layer 13 .*layers=4, the model has "
                                                         r"layers=8"):
    darknet_cfg.check(darknet_cfg.parse(route), expected, name="x.cfg")


def test_model_layers_of_darknet19_are_yolov2_voc_cfg():
  """Our DarkNet-19 with 20 classes is yolov2-voc.cfg layer for layer (route -9 -> 16,
  route -1,-4 -> 27,24), and its anchors line parses to darknet's VOC anchors."""
  voc = ((1.3221, 1.73145), (3.19275, 4.00944), (5.05587, 8.09892), (9.47112, 4.84053),
         (11.2364, 10.0071))
  model = yolov2.YOLOv2(num_classes=20, anchors=voc, reorg="darknet")
  sections = darknet_cfg.parse(dn.cfg_text(VOC_NET, voc))
  darknet_cfg.check(sections, darknet_cfg.model_layers(model), name="yolov2-voc.cfg")
  np.testing.assert_allclose(darknet_cfg.anchors(sections), voc)
  routes = [s.options["layers"] for s in darknet_cfg.layers(sections) if s.kind == "route"]
  assert routes == ["-9", "-1,-4"]


# ------------------------------------------------------------------ DarkNet-19 files


@pytest.fixture(scope="module")
def voc_model():
  model = yolov2.YOLOv2(num_classes=20, anchors=((1.0, 1.0),) * 5, reorg="darknet")
  return (model, *_init(model, size=(64, 64)))


def _sparse(path, floats, header=None):
  """A file of ``floats`` zero floats after a header, written sparse (no 200 MB writes)."""
  with open(path, "wb") as f:
    f.write(header or dn.header_bytes())
    f.truncate(len(header or dn.header_bytes()) + 4 * floats)
  return str(path)


@pytest.mark.slow
def test_full_darknet19_voc_file_loads_and_runs_at_64px(tmp_path, voc_model):
  model, params, batch_stats = voc_model
  weights = dn.random_weights(VOC_NET, seed=7)
  path = str(tmp_path / "yolov2-voc.weights")
  dn.write_weights(path, VOC_NET, weights, minor=1)
  assert os.path.getsize(path) == 16 + 4 * VOC_FLOATS
  loaded, stats, _ = darknet_weights.load(path, params, batch_stats, parts="all",
                                          network="darknet19")
  np.testing.assert_array_equal(loaded["head"]["pred"]["bias"], weights[30]["biases"])
  np.testing.assert_array_equal(loaded["detect_conv3"]["conv"]["kernel"],
                                weights[29]["weights"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(stats["passthrough_conv"]["bn"]["mean"], weights[26]["mean"])
  images = np.random.default_rng(2).uniform(0, 1, (1, 3, 64, 64))
  got = _apply(model, loaded, stats, images)
  expected = _as_ours(dn.forward(VOC_NET, weights, images), 5)
  assert got.shape == (1, 2, 2, 5, 25)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("floats,parts,message", [
    (VOC_FLOATS - 1, "all", "expected 50,676,061 floats for darknet19 + 20-class head "
                            "(5 anchors), file has 50,676,060 (after its 20-byte header): the "
                            "file is truncated, or of another network"),
    (VOC_FLOATS + 1, "all", "expected 50,676,061 floats for darknet19 + 20-class head "
                            "(5 anchors), file has 50,676,062 (after its 20-byte header): the "
                            "file is of another network"),
    (BACKBONE_FLOATS, "all", "file has 19,831,776 (after its 20-byte header): that is the "
                             "darknet19 backbone alone"),
    (50_983_561, "all", "file has 50,983,561 (after its 20-byte header): that is a darknet19 "
                        "detector with 425 outputs per cell = 5 anchors x (5 + 80 classes), the "
                        "model has 5 x (5 + 20) = 125"),
    (BACKBONE_FLOATS - 3, "backbone", "expected 19,831,776 floats for the darknet19 backbone, "
                                      "file has 19,831,773"),
])
def test_files_that_do_not_fit_are_refused_in_one_line(tmp_path, voc_model, floats, parts,
                                                        message):
  _, params, batch_stats = voc_model
  path = _sparse(tmp_path / "x.weights", floats)
  with pytest.raises(darknet_weights.DarknetFileError) as info:
    darknet_weights.load(path, params, batch_stats, parts=parts, network="darknet19")
  assert message in str(info.value) and "\n" not in str(info.value)


def test_backbone_file_and_whole_detector_both_load_as_backbone(tmp_path, voc_model):
  _, params, batch_stats = voc_model
  for floats in (BACKBONE_FLOATS, 50_983_561):   # darknet19_448.conv.23, yolov2.weights
    path = _sparse(tmp_path / f"{floats}.weights", floats, dn.header_bytes(minor=1))
    loaded, stats, _ = darknet_weights.load(path, params, batch_stats, parts="backbone",
                                            network="darknet19")
    assert not np.any(loaded["backbone_conv17"]["conv"]["kernel"])   # the zeros were read
    np.testing.assert_array_equal(loaded["head"]["pred"]["kernel"],
                                  params["head"]["pred"]["kernel"])


def test_short_header_and_ragged_body_are_refused(tmp_path, voc_model):
  _, params, batch_stats = voc_model
  short = tmp_path / "short.weights"
  short.write_bytes(dn.header_bytes()[:10])
  with pytest.raises(darknet_weights.DarknetFileError, match="shorter than a darknet weights"):
    darknet_weights.load(str(short), params, batch_stats, parts="all", network="darknet19")
  ragged = tmp_path / "ragged.weights"
  ragged.write_bytes(dn.header_bytes() + b"\0" * 10)
  with pytest.raises(darknet_weights.DarknetFileError, match="not a whole number of float32"):
    darknet_weights.load(str(ragged), params, batch_stats, parts="all", network="darknet19")
