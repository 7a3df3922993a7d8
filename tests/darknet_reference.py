"""darknet, written out independently of anchor_jax for the pretrained-weights tests.

A network is a list of layers as darknet's cfg has them: ``("conv", size, filters, bn)``,
``("max",)``, ``("route", *relative indices)``, ``("reorg",)``, ``("region", classes,
num)``. From it this module writes the cfg text, a ``.weights`` file in darknet's layout
(``parser.c``: ``save_weights`` / ``load_convolutional_weights``) and runs darknet's
forward in NumPy, float64, NCHW as darknet stores it: ``im2col``-style convolution
(cross-correlation, zero padding size/2), its BatchNorm ``(x - mean) / (sqrt(var) +
.000001)``, leaky 0.1, its max-pool (``forward_maxpool_layer``), ``reorg_cpu`` as a loop,
route as a channel concat.
"""
import numpy as np

DARKNET19_BACKBONE = [
    ("conv", 3, 32, True), ("max",), ("conv", 3, 64, True), ("max",),
    ("conv", 3, 128, True), ("conv", 1, 64, True), ("conv", 3, 128, True), ("max",),
    ("conv", 3, 256, True), ("conv", 1, 128, True), ("conv", 3, 256, True), ("max",),
    ("conv", 3, 512, True), ("conv", 1, 256, True), ("conv", 3, 512, True),
    ("conv", 1, 256, True), ("conv", 3, 512, True), ("max",),
    ("conv", 3, 1024, True), ("conv", 1, 512, True), ("conv", 3, 1024, True),
    ("conv", 1, 512, True), ("conv", 3, 1024, True),
]


def yolov2_head(classes, num, *, head=1024, passthrough=64, route_back=-9):
  """Layers 23-31 of yolov2-voc.cfg (``route -9`` reaches the stride-16 conv)."""
  return [("conv", 3, head, True), ("conv", 3, head, True), ("route", route_back),
          ("conv", 1, passthrough, True), ("reorg",), ("route", -1, -4),
          ("conv", 3, head, True), ("conv", 1, num * (5 + classes), False),
          ("region", classes, num)]


def tiny_net(classes, num):
  """ARCHS["tiny"] at width 0.125 (min 8 channels; configs/synthetic.py:tiny) as darknet
  layers: the stride-16 feature is layer 8, reached by route -5 from layer 13."""
  return [("conv", 3, 8, True), ("max",), ("conv", 3, 8, True), ("max",), ("conv", 3, 8, True),
          ("max",), ("conv", 3, 16, True), ("max",), ("conv", 3, 32, True), ("max",),
          ("conv", 3, 64, True)] + yolov2_head(classes, num, head=64, passthrough=8,
                                                route_back=-5)


def cfg_text(net, anchors) -> str:
  """The darknet cfg of ``net`` (with darknet's spacing quirks: spaces around '=')."""
  out = ["[net]", "# Testing", "batch=1", "width=416", "height=416", "channels=3", ""]
  for layer in net:
    kind = layer[0]
    if kind == "conv":
      _, size, filters, bn = layer
      out += ["[convolutional]"] + (["batch_normalize=1"] if bn else []) + [
          f"filters={filters}", f"size={size}", "stride=1", "pad=1",
          f"activation={'leaky' if bn else 'linear'}"]
    elif kind == "max":
      out += ["[maxpool]", "size=2", "stride=2"]
    elif kind == "route":
      out += ["[route]", "layers=" + ",".join(map(str, layer[1:]))]
    elif kind == "reorg":
      out += ["[reorg]", "stride=2"]
    elif kind == "region":
      flat = ", ".join(f"{v:g}" for v in np.asarray(anchors).ravel())
      out += ["[region]", f"anchors =  {flat}", "bias_match=1", f"classes={layer[1]}",
              "coords=4", f"num={layer[2]}", "softmax=1"]
    out.append("")
  return "\n".join(out)


def conv_shapes(net, channels_in=3):
  """[(layer index, size, c_in, filters, bn)] of every conv, following routes/reorgs."""
  channels, out = [], []
  c = channels_in
  for i, layer in enumerate(net):
    kind = layer[0]
    if kind == "conv":
      _, size, filters, bn = layer
      out.append((i, size, c, filters, bn))
      c = filters
    elif kind == "route":
      c = sum(channels[i + r if r < 0 else r] for r in layer[1:])
    elif kind == "reorg":
      c = 4 * c
    channels.append(c)
  return out


def random_weights(net, seed=0):
  """{layer index: dict of darknet arrays}: weights [n, c, k, k] scaled by 1/sqrt(fan_in),
  BN statistics with a few tiny variances (below flax's eps)."""
  rng = np.random.default_rng(seed)
  weights = {}
  for i, size, c, n, bn in conv_shapes(net):
    arrays = {"biases": rng.normal(0, 0.1, n).astype(np.float32)}
    if bn:
      variance = rng.uniform(0.3, 2.0, n)
      variance[::5] = rng.uniform(1e-9, 1e-6, len(variance[::5]))   # darknet: sqrt(v) + 1e-6
      arrays.update(scales=rng.uniform(0.5, 1.5, n).astype(np.float32),
                    mean=rng.normal(0, 0.2, n).astype(np.float32),
                    variance=variance.astype(np.float32))
      arrays["scales"][::5] *= 1e-3   # keeps those near-dead channels' outputs moderate
    arrays["weights"] = (rng.standard_normal((n, c, size, size)) /
                         np.sqrt(c * size * size)).astype(np.float32)
    weights[i] = arrays
  return weights


def header_bytes(*, major=0, minor=2, revision=0, seen=32013312) -> bytes:
  """darknet's header: int32 major, minor, revision, then 'seen' (size_t from 0.2 on)."""
  head = np.asarray([major, minor, revision], "<i4").tobytes()
  wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
  return head + np.asarray([seen], "<u8" if wide else "<i4").tobytes()


def write_weights(path, net, weights, *, upto=None, **header):
  """A .weights file of the first ``upto`` layers (all by default), darknet's order."""
  with open(path, "wb") as f:
    f.write(header_bytes(**header))
    for i, *_ in conv_shapes(net):
      if upto is not None and i >= upto:
        break
      arrays = weights[i]
      keys = ["biases"] + (["scales", "mean", "variance"] if "scales" in arrays else [])
      for key in keys + ["weights"]:
        f.write(np.ascontiguousarray(arrays[key], "<f4").tobytes())


def reorg_cpu(x, w, h, c, batch, stride, forward):
  """darknet's blas.c ``reorg_cpu`` on flat arrays, loop for loop."""
  out = np.zeros_like(x)
  out_c = c // (stride * stride)
  for b in range(batch):
    for k in range(c):
      for j in range(h):
        for i in range(w):
          in_index = i + w * (j + h * (k + c * b))
          c2 = k % out_c
          offset = k // out_c
          w2 = i * stride + offset % stride
          h2 = j * stride + offset // stride
          out_index = w2 + w * stride * (h2 + h * stride * (c2 + out_c * b))
          if forward:
            out[out_index] = x[in_index]
          else:
            out[in_index] = x[out_index]
  return out


def _conv(x, arrays, size, bn):
  """darknet's convolutional layer: [B, C, H, W] -> [B, n, H, W] (stride 1, pad size/2)."""
  w = arrays["weights"].astype(np.float64)   # [n, c, k, k]
  pad = size // 2
  b, _, h, wd = x.shape
  xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  out = np.zeros((b, w.shape[0], h, wd))
  for ky in range(size):
    for kx in range(size):
      patch = xp[:, :, ky:ky + h, kx:kx + wd]   # [B, c, H, W]
      out += np.tensordot(w[:, :, ky, kx], patch, axes=([1], [1])).transpose(1, 0, 2, 3)
  if bn:
    mean = arrays["mean"].astype(np.float64)[:, None, None]
    std = np.sqrt(arrays["variance"].astype(np.float64))[:, None, None] + .000001
    out = (out - mean) / std * arrays["scales"].astype(np.float64)[:, None, None]
  out = out + arrays["biases"].astype(np.float64)[:, None, None]
  return np.where(out > 0, out, 0.1 * out) if bn else out   # leaky | linear


def _maxpool(x, size=2, stride=2):
  """darknet's forward_maxpool_layer with its default padding = size - 1."""
  pad = size - 1
  offset = -(pad // 2)   # C's -l.pad/2 truncates toward zero: 0 here
  b, c, h, w = x.shape
  out_h, out_w = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
  out = np.full((b, c, out_h, out_w), -np.inf)
  for n in range(size):
    for m in range(size):
      for i in range(out_h):
        for j in range(out_w):
          y, xx = i * stride + n + offset, j * stride + m + offset
          if 0 <= y < h and 0 <= xx < w:
            out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, y, xx])
  return out


def forward(net, weights, images):
  """darknet's forward of ``net`` on ``images`` [B, C, H, W] -> the last conv's output
  [B, A * (5 + C), H/32, W/32] (the region layer's input)."""
  outputs, x = [], images.astype(np.float64)
  for i, layer in enumerate(net):
    kind = layer[0]
    if kind == "conv":
      x = _conv(x, weights[i], layer[1], layer[3])
    elif kind == "max":
      x = _maxpool(x)
    elif kind == "route":
      x = np.concatenate([outputs[i + r if r < 0 else r] for r in layer[1:]], axis=1)
    elif kind == "reorg":
      b, c, h, w = x.shape
      flat = reorg_cpu(x.reshape(-1), w, h, c, b, 2, 0)   # forward_reorg_layer: forward=0
      x = flat.reshape(b, 4 * c, h // 2, w // 2)
    elif kind == "region":
      break
    outputs.append(x)
  return x
