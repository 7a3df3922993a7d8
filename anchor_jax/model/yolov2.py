"""YOLOv2 (DarkNet-19 + passthrough head) in flax.linen, with learnable anchors.

The model maps images ``[B, S, S, 3]`` to raw predictions ``[B, S/32, S/32, A, 5 + C]``
with channels ``(t_x, t_y, t_w, t_h, t_o, class logits...)``; decoding and the loss live
elsewhere (they read the anchors from the param tree, see ``YOLOHead``).

Layers follow darknet's ``yolov2-voc.cfg``:
  * conv = Conv (no bias) + BatchNorm + LeakyReLU(0.1), 'SAME' padding, kernels
    initialised as darknet does (``sqrt(2 / fan_in) * U(-1, 1)``);
  * max-pool 2x2 / 2;
  * head: 3x3 1024, 3x3 1024; passthrough from the stride-16 feature (1x1 64 conv,
    space-to-depth x2); concat [passthrough, head] (darknet's ``route -1,-4``);
    3x3 1024; 1x1 conv with bias to ``A * (5 + C)``, linear.

Differences from darknet, all immaterial when training from scratch:
  * the passthrough's space-to-depth uses TensorFlow's channel order by default
    (``reorg="tf"``, see ``space_to_depth``); ``reorg="darknet"`` uses darknet's own
    ``reorg`` order (``darknet_reorg``), which darknet's trained detectors need;
  * BatchNorm normalises by ``sqrt(var + eps)`` with the biased variance (darknet:
    ``sqrt(var_unbiased) + 1e-6``); ``darknet_weights`` converts darknet's statistics
    exactly.

"BN without shift" (paper §3.2.3, ``bn_no_shift=True``): the ``t_w, t_h`` outputs pass
through a BatchNorm with a scale and no bias, so they are zero-mean over the batch.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from anchor_jax.core import region
from anchor_jax.model import conv as conv_lib

# A backbone layer: ``(kernel_size, channels)`` for a conv, ``MAXPOOL``, or ``SPACE_TO_DEPTH``
# (2 x 2 pixels to channels: halves the resolution like a pool, keeping every value).
MAXPOOL = "M"
SPACE_TO_DEPTH = "S2D"


@dataclasses.dataclass(frozen=True)
class Arch:
  """An architecture: backbone layer list and head widths (before ``width`` scaling).

  The passthrough source is the feature map entering the *last* max-pool (stride 16).
  """
  layers: tuple
  head_channels: int  # the three 3x3 convs of the detection head
  passthrough_channels: int  # the 1x1 conv before space-to-depth


ARCHS = {
    # DarkNet-19 as yolov2-voc.cfg (layers 0-22), head layers 23-30.
    "darknet19": Arch(
        layers=(
            (3, 32), MAXPOOL,
            (3, 64), MAXPOOL,
            (3, 128), (1, 64), (3, 128), MAXPOOL,
            (3, 256), (1, 128), (3, 256), MAXPOOL,
            (3, 512), (1, 256), (3, 512), (1, 256), (3, 512), MAXPOOL,  # 26x26x512 -> pass
            (3, 1024), (1, 512), (3, 1024), (1, 512), (3, 1024),
        ),
        head_channels=1024,
        passthrough_channels=64,
    ),
    # Small variant for CPU tests and demos: six 3x3 conv stages (five max-pools to
    # stride 32, as yolov2-tiny) and the same head structure, passthrough included.
    "tiny": Arch(
        layers=(
            (3, 16), MAXPOOL,
            (3, 32), MAXPOOL,
            (3, 64), MAXPOOL,
            (3, 128), MAXPOOL,
            (3, 256), MAXPOOL,  # stride-16 feature -> passthrough
            (3, 512),
        ),
        head_channels=512,
        passthrough_channels=32,
    ),
}
# The tiny variant with a space-to-depth stem: the first 2x downsampling moves 2 x 2
# pixels into channels instead of running a conv at full resolution, which was most of
# a CPU step (3.3x faster at 128 px, width 0.25, measured in one process). The rest is tiny's.
ARCHS["tiny_s2d"] = dataclasses.replace(
    ARCHS["tiny"], layers=(SPACE_TO_DEPTH, *ARCHS["tiny"].layers[2:]))

STRIDE = region.STRIDE  # every architecture downsamples 2x five times (max-pools, space-to-depth)
DTYPES = ("float32", "bfloat16", "float16")  # model.dtype: the compute dtype
REORGS = ("tf", "darknet")  # model.reorg: the passthrough's channel order


def darknet_kernel_init():
  """darknet's conv init, ``sqrt(2 / (k*k*Cin)) * U(-1, 1)`` (AlexeyAB/darknet).

  pjreddie/darknet draws ``sqrt(2 / fan_in) * N(0, 1)`` instead; the uniform draw is
  kept because XLA on CPU compiles it several times faster than a normal draw (seconds
  per kernel shape), which matters for tests and CPU demos. Variance is 2 / (3 fan_in).
  """
  return nn.initializers.variance_scaling(2.0 / 3.0, "fan_in", "uniform")


MAX_POOLS = ("window", "reshape")
# model.conv_grad: 'matmul' computes the kernel gradient of the stride-1 convs as matrix
# products on CPU (``conv.conv_general_dilated``; XLA's own elsewhere), 'xla' leaves all to XLA.
CONV_GRADS = ("matmul", "xla")


def conv_fn(conv_grad: str):
  """The ``nn.Conv(conv_general_dilated=)`` of ``conv_grad`` (see ``CONV_GRADS``)."""
  if conv_grad not in CONV_GRADS:
    raise ValueError(f"unknown conv_grad {conv_grad!r}; choose from {CONV_GRADS}")
  return conv_lib.conv_general_dilated if conv_grad == "matmul" else None


def max_pool_2x2(x, impl: str = "window"):
  """2x2 max-pool, stride 2: [B, H, W, C] -> [B, H/2, W/2, C].

  ``window``: ``nn.max_pool`` (XLA reduce-window; its gradient is select-and-scatter,
  which on CPU costs 5-6x the reshape's: 46 vs 8 ms for [16, 128, 128, 8]).
  ``reshape``: the max over a [B, H/2, 2, W/2, 2, C] view. Same forward values; the
  gradient differs only at ties inside a window (split equally among the tied inputs
  instead of given to one), both valid subgradients.
  """
  if impl == "window":
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
  if impl != "reshape":
    raise ValueError(f"unknown max-pool implementation {impl!r}; choose from {MAX_POOLS}")
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def scale_channels(channels: int, width: float, *, min_channels: int) -> int:
  """Width multiplier rule: ``max(round(channels * width), min_channels)``."""
  return max(int(round(channels * width)), min_channels)


def space_to_depth(x, block_size: int = 2):
  """[B, H, W, C] -> [B, H/b, W/b, b*b*C], TensorFlow's ``space_to_depth`` order.

  Output channel ``(dy * b + dx) * C + c`` holds input pixel ``(b*i + dy, b*j + dx)``
  channel ``c``. (darknet's ``reorg`` permutes channels differently; any fixed order is
  equivalent when training from scratch.)
  """
  b, h, w, c = x.shape
  if h % block_size or w % block_size:
    raise ValueError(f"spatial size {(h, w)} not divisible by {block_size}")
  x = x.reshape(b, h // block_size, block_size, w // block_size, block_size, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)  # [B, H/b, W/b, dy, dx, C]
  return x.reshape(b, h // block_size, w // block_size, block_size * block_size * c)


def darknet_reorg(x, stride: int = 2):
  """[B, H, W, C] -> [B, H/s, W/s, s*s*C] in darknet's ``reorg`` order (its trained weights).

  darknet's ``[reorg] stride=2`` calls ``reorg_cpu(in, w=W, h=H, c=C, forward=0)``, whose
  index rule reads its ``[C, H, W]`` input as if it were ``[C/s², H*s, W*s]`` and writes
  the ``[C, H, W]`` result that the next layer reads as ``[s²C, H/s, W/s]``. So output
  channel ``k`` (of ``C``) at ``(j, i)`` of that ``[C, H, W]`` view is input element
  ``(c2, h2, w2) = (k % (C/s²), s*j + o // s, s*i + o % s)`` of the ``[C/s², sH, sW]`` view,
  with ``o = k // (C/s²)``. It is a fixed permutation, not a space-to-depth: here it is done
  with reshapes and transposes (tested against a loop over ``reorg_cpu``'s formula).
  """
  b, h, w, c = x.shape
  if h % stride or w % stride or c % (stride * stride):
    raise ValueError(f"darknet reorg needs H, W divisible by {stride} and C by "
                     f"{stride * stride}, got {(h, w, c)}")
  c2 = c // (stride * stride)
  flat = x.transpose(0, 3, 1, 2)  # [B, C, H, W]: darknet's memory order
  view = flat.reshape(b, c2, h, stride, w, stride)  # [B, c2, j, dy, i, dx] of [c2, sH, sW]
  out = view.transpose(0, 3, 5, 1, 2, 4)  # [B, dy, dx, c2, j, i]: the [C, H, W] result
  out = out.reshape(b, stride * stride * c, h // stride, w // stride)  # read as [s²C, H/s, W/s]
  return out.transpose(0, 2, 3, 1)  # [B, H/s, W/s, s*s*C]


class ConvBN(nn.Module):
  """darknet ``[convolutional] batch_normalize=1 activation=leaky``."""
  features: int
  kernel_size: int
  bn_momentum: float
  bn_epsilon: float
  bn_axis_name: str | None
  leaky_slope: float
  dtype: Any = jnp.float32
  conv_grad: str = "matmul"

  @nn.compact
  def __call__(self, x, *, train: bool):
    k = self.kernel_size
    x = nn.Conv(self.features, (k, k), padding="SAME", use_bias=False, dtype=self.dtype,
                kernel_init=darknet_kernel_init(), conv_general_dilated=conv_fn(self.conv_grad),
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, axis_name=self.bn_axis_name,
                     dtype=self.dtype, name="bn")(x)
    return nn.leaky_relu(x, negative_slope=self.leaky_slope)


class YOLOHead(nn.Module):
  """Final 1x1 prediction conv, optional BN-without-shift, and the learnable anchors.

  ``anchor_log_wh`` ([A, 2], log of (w, h) in grid-cell units) is declared here so that it
  sits at ``params['head']['anchor_log_wh']``. The forward pass does not use it: the loss
  and the decoder read it from the params.

  With ``bn_no_shift`` the final conv's bias on the t_w/t_h channels is kept but is
  redundant (the BN removes any per-channel constant; in train mode its gradient is 0).

  ``obj_bias_prior`` p in (0, 1) initialises the objectness bias to ``-log((1 - p) / p)``,
  so every prediction starts at objectness p (the focal-loss prior, Lin et al. 2017); 0
  keeps darknet's zero bias (objectness 0.5 everywhere).
  """
  num_classes: int
  anchors: Sequence[Sequence[float]]
  bn_no_shift: bool
  bn_momentum: float
  bn_epsilon: float
  bn_axis_name: str | None
  obj_bias_prior: float = 0.0
  dtype: Any = jnp.float32
  conv_grad: str = "matmul"

  def _bias_init(self, key, shape, dtype=jnp.float32):
    """Zeros, with the objectness channel of every anchor at logit(obj_bias_prior)."""
    del key
    bias = np.zeros((len(self.anchors), 5 + self.num_classes), np.float32)
    if self.obj_bias_prior:
      p = self.obj_bias_prior
      bias[:, 4] = -np.log((1.0 - p) / p)
    return jnp.asarray(bias.reshape(shape), dtype)

  @nn.compact
  def __call__(self, x, *, train: bool):
    num_anchors = len(self.anchors)
    init_log_wh = np.log(np.asarray(self.anchors, np.float32))  # [A, 2]
    if init_log_wh.shape != (num_anchors, 2):
      raise ValueError(f"anchors must be (w, h) pairs, got shape {init_log_wh.shape}")
    self.param("anchor_log_wh", lambda _, shape: jnp.asarray(init_log_wh).reshape(shape),
               (num_anchors, 2))

    out_channels = 5 + self.num_classes
    # The prediction conv and the t_w/t_h BatchNorm compute in float32 whatever the
    # backbone's dtype: the raw outputs feed the loss and, through t_w + log a, the anchors'
    # gradient (a 1 x 1 conv: no measurable cost).
    x = nn.Conv(num_anchors * out_channels, (1, 1), padding="SAME", use_bias=True,
                dtype=jnp.float32, kernel_init=darknet_kernel_init(),
                bias_init=self._bias_init, conv_general_dilated=conv_fn(self.conv_grad),
                name="pred")(jnp.asarray(x, jnp.float32))
    b, h, w, _ = x.shape
    x = x.reshape(b, h, w, num_anchors, out_channels)  # [B, H, W, A, 5 + C]
    if self.bn_no_shift:
      # Normalise t_w, t_h per (anchor, channel) over B x H x W; scale only.
      t_wh = nn.BatchNorm(use_running_average=not train, axis=(-2, -1), use_bias=False,
                          use_scale=True, momentum=self.bn_momentum,
                          epsilon=self.bn_epsilon, axis_name=self.bn_axis_name,
                          dtype=jnp.float32, name="wh_bn")(x[..., 2:4])  # [B, H, W, A, 2]
      x = jnp.concatenate([x[..., :2], t_wh, x[..., 4:]], axis=-1)
    return x


class YOLOv2(nn.Module):
  """YOLOv2 detector: ``__call__(x [B, S, S, 3], *, train) -> [B, S/32, S/32, A, 5 + C]``.

  Fields:
    num_classes: C.
    anchors: initial anchors, A (w, h) pairs in grid-cell (stride-32) units; used only to
      initialise ``params['head']['anchor_log_wh']``.
    width: channel multiplier; every conv except the prediction conv gets
      ``max(round(c * width), min_channels)`` channels.
    backbone: 'darknet19' (yolov2-voc.cfg) or 'tiny' (see ``ARCHS``).
    bn_no_shift: BatchNorm (scale, no bias) on the t_w, t_h outputs (paper §3.2.3).
    bn_axis_name: pmap axis over which BatchNorm statistics are averaged, or None.
    bn_momentum: running-average decay; 0.99 as darknet (``rolling = .99 rolling + .01 batch``).
    bn_epsilon: BatchNorm epsilon.
    obj_bias_prior: initial objectness p of every prediction (bias logit(p)); 0: zero bias.
    max_pool: 'window' (nn.max_pool) or 'reshape' (same values, faster gradient on CPU;
      see ``max_pool_2x2``).
    leaky_slope: LeakyReLU negative slope (darknet: 0.1).
    min_channels: floor of the width rule.
    reorg: the passthrough's channel order, 'tf' (``space_to_depth``) or 'darknet'
      (``darknet_reorg``, for darknet's trained detectors).
    dtype: compute dtype of the backbone and head convs (``model.dtype``: bfloat16 for
      accelerators); params, the prediction conv, BN statistics and the output stay float32.
    conv_grad: 'matmul' (the convs' kernel gradients as matrix products on CPU, 1.7x faster
      CPU train step; the same values up to float32 round-off; see ``conv.py``) or 'xla'.
  """
  num_classes: int
  anchors: Sequence[Sequence[float]]
  width: float = 1.0
  backbone: str = "darknet19"
  bn_no_shift: bool = False
  bn_axis_name: str | None = None
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-5
  leaky_slope: float = 0.1
  min_channels: int = 8
  obj_bias_prior: float = 0.0
  max_pool: str = "window"
  reorg: str = "tf"
  dtype: Any = jnp.float32
  conv_grad: str = "matmul"

  def _conv(self, channels, kernel_size, name):
    return ConvBN(scale_channels(channels, self.width, min_channels=self.min_channels),
                  kernel_size, bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                  bn_axis_name=self.bn_axis_name, leaky_slope=self.leaky_slope,
                  dtype=self.dtype, conv_grad=self.conv_grad, name=name)

  @nn.compact
  def __call__(self, x, *, train: bool):
    if self.backbone not in ARCHS:
      raise ValueError(f"unknown backbone {self.backbone!r}; choose from {sorted(ARCHS)}")
    arch = ARCHS[self.backbone]
    if self.reorg not in REORGS:
      raise ValueError(f"unknown reorg {self.reorg!r}; choose from {REORGS}")
    if x.shape[1] % STRIDE or x.shape[2] % STRIDE:
      raise ValueError(f"input size {x.shape[1:3]} must be a multiple of {STRIDE}")
    x = jnp.asarray(x, self.dtype)  # [B, S, S, 3]

    # Backbone; remember the feature entering the last max-pool (stride 16).
    last_pool = max(i for i, layer in enumerate(arch.layers) if layer == MAXPOOL)
    conv_index = 0
    for i, layer in enumerate(arch.layers):
      if layer == MAXPOOL:
        if i == last_pool:
          fine = x  # [B, S/16, S/16, c16]
        x = max_pool_2x2(x, self.max_pool)
      elif layer == SPACE_TO_DEPTH:
        x = space_to_depth(x, 2)  # [B, S/2, S/2, 4 C]: a stride-2 stem with no conv at full size
      else:
        kernel_size, channels = layer
        x = self._conv(channels, kernel_size, f"backbone_conv{conv_index}")(x, train=train)
        conv_index += 1
    # x: [B, S/32, S/32, c32]

    # Detection head with passthrough.
    x = self._conv(arch.head_channels, 3, "detect_conv1")(x, train=train)
    x = self._conv(arch.head_channels, 3, "detect_conv2")(x, train=train)
    p = self._conv(arch.passthrough_channels, 1, "passthrough_conv")(fine, train=train)
    p = darknet_reorg(p, 2) if self.reorg == "darknet" else space_to_depth(p, 2)
    # p: [B, S/32, S/32, 4 * c_pass]
    x = jnp.concatenate([p, x], axis=-1)  # darknet route -1,-4: reorg first
    x = self._conv(arch.head_channels, 3, "detect_conv3")(x, train=train)
    x = YOLOHead(self.num_classes, tuple(map(tuple, self.anchors)),
                 bn_no_shift=self.bn_no_shift, bn_momentum=self.bn_momentum,
                 bn_epsilon=self.bn_epsilon, bn_axis_name=self.bn_axis_name,
                 obj_bias_prior=self.obj_bias_prior, dtype=self.dtype,
                 conv_grad=self.conv_grad, name="head")(x, train=train)
    return jnp.asarray(x, jnp.float32)  # [B, S/32, S/32, A, 5 + C]


def from_config(config, *, num_classes: int, anchors, axis_name: str | None = None) -> YOLOv2:
  """The model of ``config.model`` / ``config.anchors.bn_no_shift`` with ``num_classes``
  classes and initial ``anchors`` [A, 2] (grid units); ``axis_name``: the pmap axis of
  cross-device BatchNorm (None outside pmap)."""
  return YOLOv2(
      num_classes=num_classes, anchors=tuple(map(tuple, np.asarray(anchors).tolist())),
      width=config.model.width, backbone=config.model.name,
      bn_no_shift=config.anchors.bn_no_shift, bn_axis_name=axis_name,
      bn_momentum=config.model.bn_momentum, obj_bias_prior=config.model.obj_bias_prior,
      max_pool=config.model.max_pool, reorg=config.model.get("reorg", "tf"),
      dtype=jnp.dtype(config.model.dtype), conv_grad=config.model.get("conv_grad", "matmul"))


def count_params(params) -> int:
  """Number of scalars in a pytree (arrays or ``jax.ShapeDtypeStruct``s from eval_shape).

  Pass ``variables['params']`` for the trainable count (BN running stats live in
  ``batch_stats`` and are not counted).
  """
  return int(sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params)))


def forward_flops(model: nn.Module, image_size: int, *, batch_size: int = 1) -> int:
  """Analytic forward FLOPs: ``sum over convs of 2 * k*k * Cin * Cout * Hout * Wout``.

  Counts multiply-adds of convolutions only (as darknet's "BFLOPs"); BatchNorm,
  activations, pooling and bias adds are ignored. Shapes come from ``jax.eval_shape``, so
  nothing is computed.
  """
  x = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), jnp.float32)
  is_conv: Callable[[nn.Module, str], bool] = lambda mdl, _: isinstance(mdl, nn.Conv)

  def shapes(rng, images):
    variables = model.init(rng, images, train=False)
    _, state = model.apply(variables, images, train=False,
                           capture_intermediates=is_conv, mutable=["intermediates"])
    return variables["params"], state["intermediates"]

  rng = jax.eval_shape(jax.random.key, 0)  # only the key's shape matters here
  params, outputs = jax.eval_shape(shapes, rng, x)
  params = traverse_util.flatten_dict(params)
  total = 0
  for path, (out,) in traverse_util.flatten_dict(outputs).items():
    kernel = params[path[:-1] + ("kernel",)]  # [k, k, Cin, Cout]
    b_out, h_out, w_out, _ = out.shape
    total += 2 * int(np.prod(kernel.shape)) * b_out * h_out * w_out
  return total
