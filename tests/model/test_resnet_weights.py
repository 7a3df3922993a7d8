"""ResNet weights: torchvision state dict -> npz (converter) -> our params, checked numerically.

A random state dict in torchvision's layout is converted, saved, loaded into our ResNet, and
our forward must equal a plain NumPy forward of torchvision's ResNet on the state dict itself
(``resnet_reference``): that checks the key mapping, the OIHW -> HWIO transposition, the
BatchNorm statistics' collections and the layers (v1.5 stride, padding, shortcuts).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.errors import UserError
from anchor_jax.model import faster_rcnn, resnet, resnet_weights
from experiments.tools import convert_resnet_torchvision as convert
from tests.model import resnet_reference as ref

WIDTH = 0.125
PLANES = (8, 16, 32, 64)   # 64..512 x WIDTH
STEM = 8
SIZE = 64


def _zeros_like_shapes(tree):
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), tree)


def _empty_variables(model, x):
  """Zero params / batch_stats of ``model``'s shapes (no random init to compile)."""
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
  return _zeros_like_shapes(shapes["params"]), _zeros_like_shapes(shapes["batch_stats"])


def _images(seed=1, batch=2, size=SIZE):
  return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype(np.float32)


def _npz(tmp_path, arrays, name="r.npz"):
  path = str(tmp_path / name)
  np.savez(path, **arrays)
  return path


@pytest.fixture(scope="module")
def state_dict_50():
  return ref.random_state_dict(50, PLANES, STEM, seed=0)


@pytest.mark.parametrize("depth", [50, 18])
def test_converted_weights_reproduce_torchvision_forward(tmp_path, depth, state_dict_50):
  sd = state_dict_50 if depth == 50 else ref.random_state_dict(18, PLANES, STEM, seed=3)
  path = _npz(tmp_path, convert.convert_state_dict(sd))
  model = resnet.ResNet(depth=depth, width=WIDTH, norm="frozen_bn", freeze_at=2)
  x = _images()
  params, stats = _empty_variables(model, x)
  params, stats = resnet_weights.load_npz(path, params, stats, prefix=None)
  # train=True: frozen BN uses the stored statistics all the same and leaves them unchanged.
  outs, state = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
      {"params": params, "batch_stats": stats}, x)
  expected = ref.resnet_forward(sd, x.transpose(0, 3, 1, 2).astype(np.float64), depth)
  assert len(outs) == 4
  for level, (got, want) in enumerate(zip(outs, expected), start=2):
    want = want.transpose(0, 2, 3, 1)   # NHWC
    assert got.shape == want.shape == (2, SIZE // 2**level, SIZE // 2**level, want.shape[-1])
    scale = np.abs(want).max()
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5 * scale, rtol=1e-4,
                               err_msg=f"C{level}")
  jax.tree.map(np.testing.assert_array_equal, state["batch_stats"], stats)


def test_converter_key_mapping():
  cases = {
      ("conv1.weight", 4): "conv1/kernel",
      ("bn1.weight", 1): "bn1/scale",
      ("bn1.running_var", 1): "bn1/var",
      ("layer3.5.conv2.weight", 4): "layer3/5/conv2/kernel",
      ("layer2.0.bn3.running_mean", 1): "layer2/0/bn3/mean",
      ("layer4.0.downsample.0.weight", 4): "layer4/0/downsample_conv/kernel",
      ("layer4.0.downsample.1.bias", 1): "layer4/0/downsample_bn/bias",
      ("fc.weight", 2): None,
      ("layer1.0.bn1.num_batches_tracked", 0): None,
  }
  for (key, ndim), want in cases.items():
    assert convert.npz_name(key, ndim) == want, key
  for bad in ("conv1.0.weight", "layer1.0.se.fc1.weight", "layer5.0.conv1.weight"):
    with pytest.raises(convert.ConversionError, match="torchvision-layout"):
      convert.npz_name(bad, 4)
  with pytest.raises(convert.ConversionError, match="conv weight"):
    convert.npz_name("layer1.0.conv1.bias", 1)
  wrapped = {"state_dict": {"module.conv1.weight": np.ones((2, 3, 7, 7), np.float32)}}
  out = convert.convert_state_dict(wrapped)
  assert list(out) == ["conv1/kernel"] and out["conv1/kernel"].shape == (7, 7, 3, 2)


def test_c4_detector_loads_a_full_resnet_and_keeps_the_heads(tmp_path, state_dict_50):
  """The C4 detector has no layer4: the file's layer4 is ignored, the heads are untouched."""
  path = _npz(tmp_path, convert.convert_state_dict(state_dict_50))
  anchors = faster_rcnn.anchor_shapes((32, 64), (0.5, 1.0, 2.0), fpn=False)
  model = faster_rcnn.FasterRCNN(num_classes=2, anchors=anchors, fpn=False, depth=50,
                                 width=WIDTH)
  x = _images(batch=1)
  params, stats = _empty_variables(model, x)
  params["rpn"]["conv"]["bias"] = np.full_like(params["rpn"]["conv"]["bias"], 3.0)
  loaded, loaded_stats = resnet_weights.load_npz(path, params, stats)
  assert "layer4" not in loaded["backbone"]
  np.testing.assert_array_equal(loaded["backbone"]["layer3"]["5"]["conv2"]["kernel"],
                                state_dict_50["layer3.5.conv2.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(loaded_stats["backbone"]["layer1"]["0"]["downsample_bn"]["var"],
                                state_dict_50["layer1.0.downsample.1.running_var"])
  assert np.all(loaded["rpn"]["conv"]["bias"] == 3.0)
  assert params["backbone"]["conv1"]["kernel"].sum() == 0   # the input trees are unchanged


@pytest.fixture(scope="module")
def tiny_trees():
  model = resnet.ResNet(depth=50, width=WIDTH)
  return _empty_variables(model, _images(batch=1, size=32))


def _load_error(tmp_path, arrays, trees) -> str:
  with pytest.raises(resnet_weights.ResNetWeightsError) as info:
    resnet_weights.load_npz(_npz(tmp_path, arrays), *trees, prefix=None)
  assert isinstance(info.value, UserError)
  return str(info.value)


def test_errors_name_the_key(tmp_path, state_dict_50, tiny_trees):
  good = convert.convert_state_dict(state_dict_50)

  oihw = dict(good)   # one kernel left in torch's layout
  oihw["layer2/0/conv2/kernel"] = state_dict_50["layer2.0.conv2.weight"]
  message = _load_error(tmp_path, oihw, tiny_trees)
  assert "'layer2/0/conv2/kernel'" in message and "(16, 16, 3, 3)" in message
  assert "(3, 3, 16, 16)" in message

  wide = resnet.ResNet(depth=50, width=0.25)   # ImageNet weights into a narrower model
  message = _load_error(tmp_path, good, _empty_variables(wide, _images(batch=1, size=32)))
  assert "(8,) in the file, the model's is (16,)" in message and "model.width=1" in message

  missing = {k: v for k, v in good.items() if k != "layer2/0/bn1/var"}
  assert "'layer2/0/bn1/var'" in _load_error(tmp_path, missing, tiny_trees)

  message = _load_error(tmp_path, {k: v for k, v in state_dict_50.items()}, tiny_trees)
  assert "convert_resnet_torchvision" in message and "torch-style" in message

  deeper = dict(good, **{"layer3/6/conv1/kernel": good["layer3/5/conv1/kernel"]})
  assert "'layer3/6/conv1/kernel'" in _load_error(tmp_path, deeper, tiny_trees)

  nan = dict(good)
  nan["layer1/1/bn2/scale"] = np.full_like(nan["layer1/1/bn2/scale"], np.nan)
  assert "'layer1/1/bn2/scale'" in _load_error(tmp_path, nan, tiny_trees)

  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not a zip file")
  with pytest.raises(resnet_weights.ResNetWeightsError, match="not a readable .npz"):
    resnet_weights.load_npz(str(garbage), *tiny_trees, prefix=None)
  with pytest.raises(resnet_weights.ResNetWeightsError, match="no such file"):
    resnet_weights.load_npz(str(tmp_path / "absent.npz"), *tiny_trees, prefix=None)


def _torch_resnet_forward(torch, sd, x, depth):
  """torchvision's ResNet forward written with torch.nn.functional on state dict ``sd``."""
  F = torch.nn.functional
  w = {k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}

  def bn(t, name):
    return F.batch_norm(t, w[f"{name}.running_mean"], w[f"{name}.running_var"],
                        w[f"{name}.weight"], w[f"{name}.bias"], training=False, eps=1e-5)

  def block(t, name, stride):
    if depth == 18:
      y = F.relu(bn(F.conv2d(t, w[f"{name}.conv1.weight"], stride=stride, padding=1),
                    f"{name}.bn1"))
      y = bn(F.conv2d(y, w[f"{name}.conv2.weight"], padding=1), f"{name}.bn2")
    else:
      y = F.relu(bn(F.conv2d(t, w[f"{name}.conv1.weight"]), f"{name}.bn1"))
      y = F.relu(bn(F.conv2d(y, w[f"{name}.conv2.weight"], stride=stride, padding=1),
                    f"{name}.bn2"))
      y = bn(F.conv2d(y, w[f"{name}.conv3.weight"]), f"{name}.bn3")
    if f"{name}.downsample.0.weight" in w:
      t = bn(F.conv2d(t, w[f"{name}.downsample.0.weight"], stride=stride),
             f"{name}.downsample.1")
    return F.relu(y + t)

  with torch.no_grad():
    t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    t = F.relu(bn(F.conv2d(t, w["conv1.weight"], stride=2, padding=3), "bn1"))
    t = F.max_pool2d(t, 3, stride=2, padding=1)
    outs = []
    for k, num in enumerate(ref.BLOCKS[depth][1], start=1):
      for i in range(num):
        t = block(t, f"layer{k}.{i}", 2 if (k > 1 and i == 0) else 1)
      outs.append(t.numpy().transpose(0, 2, 3, 1))
  return outs


def test_converted_weights_reproduce_torch_ops(tmp_path, state_dict_50):
  """With torch installed: the same round trip against torch's own conv / BN / pool ops,
  on an odd input size (every layer's padding and ceil-size rule)."""
  torch = pytest.importorskip("torch")
  path = _npz(tmp_path, convert.convert_state_dict(state_dict_50))
  model = resnet.ResNet(depth=50, width=WIDTH)
  x = _images(batch=1, size=37)
  params, stats = resnet_weights.load_npz(path, *_empty_variables(model, x), prefix=None)
  outs = model.apply({"params": params, "batch_stats": stats}, x, train=False)
  for got, want in zip(outs, _torch_resnet_forward(torch, state_dict_50, x, 50)):
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5 * np.abs(want).max(), rtol=1e-4)


@pytest.mark.slow
def test_torchvision_resnet50_forward_matches(tmp_path):
  """With torch and torchvision installed: a random torchvision resnet50 through the
  converter gives our full-size ResNet-50 torch's C2..C5."""
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  torch.manual_seed(0)
  net = torchvision.models.resnet50().eval()
  with torch.no_grad():   # move BN away from identity so the statistics matter
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.normal_(0.0, 0.1)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.uniform_(0.5, 1.5)
        m.bias.normal_(0.0, 0.1)
  sd = {k: v.numpy() for k, v in net.state_dict().items()}
  path = _npz(tmp_path, convert.convert_state_dict(sd))
  model = resnet.ResNet(depth=50)
  x = _images(batch=1, size=64)
  params, stats = resnet_weights.load_npz(path, *_empty_variables(model, x), prefix=None)
  outs = model.apply({"params": params, "batch_stats": stats}, jnp.asarray(x), train=False)
  with torch.no_grad():
    t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    t = net.maxpool(net.relu(net.bn1(net.conv1(t))))
    expected = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
      t = layer(t)
      expected.append(t.numpy().transpose(0, 2, 3, 1))
  for got, want in zip(outs, expected):
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4 * np.abs(want).max(), rtol=1e-3)


def test_converter_cli_on_a_saved_state_dict(tmp_path, capsys):
  """With torch installed: --checkpoint (a torch.save'd state dict) -> the npz the loader reads."""
  torch = pytest.importorskip("torch")
  sd = ref.random_state_dict(18, PLANES, STEM, seed=5)
  checkpoint = tmp_path / "r18.pth"
  torch.save({"state_dict": {f"module.{k}": torch.from_numpy(np.asarray(v))
                             for k, v in sd.items()}}, str(checkpoint))
  out = tmp_path / "r18.npz"
  assert convert.run([f"--checkpoint={checkpoint}", f"--output={out}"]) == 0
  assert "wrote" in capsys.readouterr().out
  with np.load(out) as data:
    np.testing.assert_array_equal(data["layer2/0/downsample_conv/kernel"],
                                  sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0))
    assert "fc/kernel" not in data.files and len(data.files) == len(
        convert.convert_state_dict(sd))
  assert convert.run([f"--output={out}"]) == 2   # no source: a usage error, exit status 2
