"""torchvision's ResNet forward in plain NumPy (NCHW, OIHW), and random state dicts in its layout.

Written from torchvision's ``models/resnet.py`` (eval mode), independently of our flax
model, so a match checks the weight layout, the key mapping and the layer arithmetic.
"""
import numpy as np

BLOCKS = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3))}
EPS = 1e-5


def conv2d(x, w, stride=1, pad=0):
  """x [N, C, H, W], w [O, C, kh, kw] -> [N, O, Ho, Wo]: zero padding, cross-correlation."""
  n, c, h, wd = x.shape
  o, _, kh, kw = w.shape
  x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  ho = (h + 2 * pad - kh) // stride + 1
  wo = (wd + 2 * pad - kw) // stride + 1
  out = np.zeros((n, o, ho, wo), np.float64)
  for dy in range(kh):
    for dx in range(kw):
      patch = x[:, :, dy:dy + stride * ho:stride, dx:dx + stride * wo:stride]   # [N, C, Ho, Wo]
      out += np.einsum("nchw,oc->nohw", patch, w[:, :, dy, dx])
  return out


def batch_norm(x, sd, name):
  """Eval-mode BatchNorm2d of module ``name`` of state dict ``sd``."""
  shape = (1, -1, 1, 1)
  mean = sd[f"{name}.running_mean"].reshape(shape)
  var = sd[f"{name}.running_var"].reshape(shape)
  return ((x - mean) / np.sqrt(var + EPS) * sd[f"{name}.weight"].reshape(shape)
          + sd[f"{name}.bias"].reshape(shape))


def max_pool_3x3_s2(x):
  """MaxPool2d(kernel_size=3, stride=2, padding=1): padding never wins (-inf)."""
  n, c, h, w = x.shape
  x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
  ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
  out = np.full((n, c, ho, wo), -np.inf)
  for dy in range(3):
    for dx in range(3):
      out = np.maximum(out, x[:, :, dy:dy + 2 * ho:2, dx:dx + 2 * wo:2])
  return out


def relu(x):
  return np.maximum(x, 0.0)


def block_forward(x, sd, name, kind, stride):
  """One BasicBlock / Bottleneck (stride in conv2, torchvision's v1.5)."""
  if kind == "basic":
    y = relu(batch_norm(conv2d(x, sd[f"{name}.conv1.weight"], stride, 1), sd, f"{name}.bn1"))
    y = batch_norm(conv2d(y, sd[f"{name}.conv2.weight"], 1, 1), sd, f"{name}.bn2")
  else:
    y = relu(batch_norm(conv2d(x, sd[f"{name}.conv1.weight"]), sd, f"{name}.bn1"))
    y = relu(batch_norm(conv2d(y, sd[f"{name}.conv2.weight"], stride, 1), sd, f"{name}.bn2"))
    y = batch_norm(conv2d(y, sd[f"{name}.conv3.weight"]), sd, f"{name}.bn3")
  if f"{name}.downsample.0.weight" in sd:
    x = batch_norm(conv2d(x, sd[f"{name}.downsample.0.weight"], stride), sd,
                   f"{name}.downsample.1")
  return relu(y + x)


def resnet_forward(sd, x, depth):
  """images x [N, 3, H, W] (already normalised) -> [C2, C3, C4, C5] NCHW."""
  kind, blocks = BLOCKS[depth]
  x = relu(batch_norm(conv2d(x, sd["conv1.weight"], 2, 3), sd, "bn1"))
  x = max_pool_3x3_s2(x)
  outs = []
  for k, num in enumerate(blocks, start=1):
    for i in range(num):
      x = block_forward(x, sd, f"layer{k}.{i}", kind, 2 if (k > 1 and i == 0) else 1)
    outs.append(x)
  return outs


def random_state_dict(depth, planes=(64, 128, 256, 512), stem=64, seed=0, num_classes=10):
  """A torchvision-layout ResNet state dict of random NumPy float32 arrays (with ``fc`` and
  ``num_batches_tracked``, which a converter drops). Conv weights are He-scaled so the
  activations stay O(1) through the network; BatchNorm stats are away from identity."""
  rng = np.random.default_rng(seed)
  kind, blocks = BLOCKS[depth]
  expansion = 4 if kind == "bottleneck" else 1
  sd = {}

  def conv(name, o, i, k):
    sd[f"{name}.weight"] = (rng.standard_normal((o, i, k, k)) * np.sqrt(1.0 / (i * k * k))
                            ).astype(np.float32)

  def bn(name, c):
    sd[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    sd[f"{name}.bias"] = rng.normal(0.0, 0.2, c).astype(np.float32)
    sd[f"{name}.running_mean"] = rng.normal(0.0, 0.2, c).astype(np.float32)
    sd[f"{name}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
    sd[f"{name}.num_batches_tracked"] = np.array(7, np.int64)

  conv("conv1", stem, 3, 7)
  bn("bn1", stem)
  cin = stem
  for k, (num, p) in enumerate(zip(blocks, planes), start=1):
    for i in range(num):
      name, cout = f"layer{k}.{i}", p * expansion
      if kind == "basic":
        conv(f"{name}.conv1", p, cin, 3), bn(f"{name}.bn1", p)
        conv(f"{name}.conv2", cout, p, 3), bn(f"{name}.bn2", cout)
      else:
        conv(f"{name}.conv1", p, cin, 1), bn(f"{name}.bn1", p)
        conv(f"{name}.conv2", p, p, 3), bn(f"{name}.bn2", p)
        conv(f"{name}.conv3", cout, p, 1), bn(f"{name}.bn3", cout)
      if i == 0 and (k > 1 or cin != cout):
        conv(f"{name}.downsample.0", cout, cin, 1), bn(f"{name}.downsample.1", cout)
      cin = cout
  sd["fc.weight"] = rng.standard_normal((num_classes, cin)).astype(np.float32)
  sd["fc.bias"] = np.zeros(num_classes, np.float32)
  return sd
