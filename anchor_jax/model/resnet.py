"""ResNet backbones (He et al. 2016) in flax.linen: the C2..C5 feature maps of a detector.

``ResNet(...)(images [B, S, S, 3], train=...) -> (C2, C3, C4, C5)`` at strides 4, 8, 16, 32
(``max_stage=4`` stops after C4, the classic Faster R-CNN "C4" feature). Layers follow
torchvision's ``resnet{18,34,50,101}`` (so its ImageNet weights load, ``resnet_weights``):

  * stem: 7x7 conv stride 2 (padding 3, no bias), norm, ReLU, 3x3 max-pool stride 2
    (padding 1); output stride 4;
  * ``layer1``..``layer4`` (Detectron2's res2..res5): blocks of ``BasicBlock`` (depth 18/34) or
    ``Bottleneck`` (depth 50/101; v1.5: the stride sits in the 3x3 conv, as torchvision and
    Detectron2's ``stride_in_1x1=False``); the first block of layer2..4 has stride 2, and a
    1x1 conv + norm projection shortcut where the shape changes.

Padding is explicit (torchvision's), so every output size is ``ceil(S / stride)``.
Kernels are initialised with torchvision's Kaiming fan-out variance (``2 / fan_out``) drawn
uniformly (the same variance; XLA on CPU compiles uniform draws faster, see yolov2).

Normalisation (``norm``):
  * ``frozen_bn`` (the usual detector fine-tuning with small batches): BatchNorm that always
    uses its running statistics, ``y = scale * (x - mean) / sqrt(var + eps) + bias``: a fixed
    affine map. ``scale``/``bias`` sit in ``params`` (the optimiser freezes them by name, see
    ``frozen_param_mask``), ``mean``/``var`` in the ``batch_stats`` collection (never updated).
  * ``bn``: ordinary BatchNorm, batch statistics in training (averaged over ``bn_axis_name``
    under pmap) and running averages otherwise; for from-scratch runs.
Stages before ``freeze_at`` use frozen BN whatever ``norm`` says (Detectron2's ``freeze``).

``freeze_at`` (Detectron2's ``FREEZE_AT``): the number of leading stages whose params get no
update, counting the stem as stage 1 and ``layer1`` (res2) as stage 2; 0 freezes nothing,
2 (the default) the stem and ``layer1``. The forward pass stops the gradient after the last
frozen stage (nothing before it trains). The optimiser reads which leaves are frozen from
``frozen_param_mask``:

  * every param of the stem (``conv1``, ``bn1``) when ``freeze_at >= 1`` and of ``layer{k}``
    when ``freeze_at >= k + 1``;
  * with ``norm='frozen_bn'``: the ``scale`` and ``bias`` of every norm module (``bn1``,
    ``bn2``, ``bn3``, ``downsample_bn``) in every stage.

``width`` multiplies every channel count (``max(round(c * width), min_channels)``): a small
variant for CPU tests and demos (ImageNet weights need ``width=1``).
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

DEPTHS = {   # depth -> (block kind, blocks per stage layer1..layer4)
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
NORMS = ("frozen_bn", "bn")
STEM_CHANNELS = 64
STAGE_PLANES = (64, 128, 256, 512)   # layer1..layer4 inner widths (x 4 out for bottlenecks)
STAGE_STRIDES = (4, 8, 16, 32)       # output strides of C2..C5
BN_EPSILON = 1e-5                    # torchvision's BatchNorm2d / FrozenBatchNorm2d
NORM_MODULE = re.compile(r"(^|_)bn\d*$")   # names of the norm modules (bn1, downsample_bn)


def scale_channels(channels: int, width: float, *, min_channels: int) -> int:
  """Width multiplier rule: ``max(round(channels * width), min_channels)``."""
  return max(int(round(channels * width)), min_channels)


def kaiming_fan_out():
  """torchvision's ResNet init variance, ``2 / (k*k*Cout)``, drawn uniformly."""
  return nn.initializers.variance_scaling(2.0, "fan_out", "uniform")


def stage_out_channels(depth: int, width: float = 1.0, *, min_channels: int = 8) -> tuple:
  """Channels of C2..C5 for ``depth`` and ``width`` (bottlenecks expand the planes 4x)."""
  if depth not in DEPTHS:
    raise ValueError(f"ResNet depth {depth}: choose from {sorted(DEPTHS)}")
  expansion = 4 if DEPTHS[depth][0] == "bottleneck" else 1
  return tuple(scale_channels(p, width, min_channels=min_channels) * expansion
               for p in STAGE_PLANES)


def norm_layer(frozen: bool, *, train: bool, momentum: float, axis_name: str | None,
               dtype, name: str) -> nn.BatchNorm:
  """BatchNorm that is frozen (running statistics always) or ordinary (``frozen=False``):
  ``scale``/``bias`` in params, ``mean``/``var`` in batch_stats."""
  return nn.BatchNorm(use_running_average=frozen or not train, momentum=momentum,
                      epsilon=BN_EPSILON, axis_name=None if frozen else axis_name,
                      dtype=dtype, name=name)


class _Block(nn.Module):
  """What both block kinds share: conv + norm helpers and the projection shortcut."""
  planes: int
  out_channels: int
  stride: int
  frozen_bn: bool
  bn_momentum: float = 0.9
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def conv(self, x, channels, kernel, stride, name):
    pad = kernel // 2
    return nn.Conv(channels, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), use_bias=False, dtype=self.dtype,
                   kernel_init=kaiming_fan_out(), name=name)(x)

  def norm(self, x, name, *, train):
    return norm_layer(self.frozen_bn, train=train, momentum=self.bn_momentum,
                      axis_name=self.bn_axis_name, dtype=self.dtype, name=name)(x)

  def shortcut(self, x, *, train):
    if self.stride == 1 and x.shape[-1] == self.out_channels:
      return x
    x = self.conv(x, self.out_channels, 1, self.stride, "downsample_conv")
    return self.norm(x, "downsample_bn", train=train)


class BasicBlock(_Block):
  """3x3 conv (stride) - norm - ReLU - 3x3 conv - norm, + shortcut, ReLU (ResNet-18/34)."""

  @nn.compact
  def __call__(self, x, *, train: bool):
    y = nn.relu(self.norm(self.conv(x, self.planes, 3, self.stride, "conv1"), "bn1",
                          train=train))
    y = self.norm(self.conv(y, self.out_channels, 3, 1, "conv2"), "bn2", train=train)
    return nn.relu(y + self.shortcut(x, train=train))


class Bottleneck(_Block):
  """1x1 - norm - ReLU - 3x3 (stride) - norm - ReLU - 1x1 (4x planes) - norm, + shortcut,
  ReLU (ResNet-50/101, v1.5)."""

  @nn.compact
  def __call__(self, x, *, train: bool):
    y = nn.relu(self.norm(self.conv(x, self.planes, 1, 1, "conv1"), "bn1", train=train))
    y = nn.relu(self.norm(self.conv(y, self.planes, 3, self.stride, "conv2"), "bn2",
                          train=train))
    y = self.norm(self.conv(y, self.out_channels, 1, 1, "conv3"), "bn3", train=train)
    return nn.relu(y + self.shortcut(x, train=train))


class Stage(nn.Module):
  """``layer{k}``: ``num_blocks`` blocks named "0", "1", ... (torchvision's indices); the
  first has ``stride``. ``make_block(stride=..., name=...)`` builds one block."""
  make_block: Callable[..., nn.Module]
  num_blocks: int
  stride: int

  @nn.compact
  def __call__(self, x, *, train: bool):
    for i in range(self.num_blocks):
      x = self.make_block(stride=self.stride if i == 0 else 1, name=str(i))(x, train=train)
    return x


class ResNet(nn.Module):
  """``__call__(images [B, S, S, 3], *, train) -> (C2, C3, C4[, C5])`` (strides 4..32).

  Fields:
    depth: 18, 34 (basic blocks), 50, 101 (bottlenecks).
    width: channel multiplier (see the module docstring); 1 for ImageNet weights.
    norm: 'frozen_bn' or 'bn' (see the module docstring).
    freeze_at: leading stages (stem = 1, layer1 = 2, ...) with no update and frozen BN.
    max_stage: the last stage built, 5 (C5) or 4 (C4; layer4 then has no params).
    bn_momentum: running-average decay of ``norm='bn'`` (torchvision's momentum 0.1).
    bn_axis_name: pmap axis of cross-device BatchNorm statistics (``norm='bn'``), or None.
    min_channels: floor of the width rule.
    dtype: compute dtype; params and BatchNorm statistics stay float32.
  Inputs are normalised images (the caller subtracts the pixel mean, divides by the std).
  """
  depth: int = 50
  width: float = 1.0
  norm: str = "frozen_bn"
  freeze_at: int = 2
  max_stage: int = 5
  bn_momentum: float = 0.9
  bn_axis_name: str | None = None
  min_channels: int = 8
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    if self.norm not in NORMS:
      raise ValueError(f"ResNet norm {self.norm!r}: choose from {NORMS}")
    if self.max_stage not in (4, 5):
      raise ValueError(f"ResNet max_stage {self.max_stage}: 4 (C4) or 5 (C5)")
    if not 0 <= self.freeze_at <= 5:
      raise ValueError(f"ResNet freeze_at {self.freeze_at}: 0 (nothing) .. 5 (everything)")
    block, blocks = DEPTHS[self.depth] if self.depth in DEPTHS else (None, None)
    out_channels = stage_out_channels(self.depth, self.width, min_channels=self.min_channels)
    frozen = lambda stage: self.norm == "frozen_bn" or stage <= self.freeze_at

    def stop(value, stage):   # nothing before a frozen stage's output trains
      return jax.lax.stop_gradient(value) if stage == self.freeze_at else value

    x = jnp.asarray(x, self.dtype)
    stem = scale_channels(STEM_CHANNELS, self.width, min_channels=self.min_channels)
    x = nn.Conv(stem, (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)), use_bias=False,
                dtype=self.dtype, kernel_init=kaiming_fan_out(), name="conv1")(x)
    x = norm_layer(frozen(1), train=train, momentum=self.bn_momentum,
                   axis_name=self.bn_axis_name, dtype=self.dtype, name="bn1")(x)
    x = nn.relu(x)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))   # [B, S/4, S/4, .]
    x = stop(x, 1)
    outputs = []
    for k in range(1, self.max_stage):   # layer1 .. layer{max_stage - 1}: stages 2..
      stage = k + 1
      make_block = functools.partial(
          Bottleneck if block == "bottleneck" else BasicBlock,
          scale_channels(STAGE_PLANES[k - 1], self.width, min_channels=self.min_channels),
          out_channels[k - 1], frozen_bn=frozen(stage), bn_momentum=self.bn_momentum,
          bn_axis_name=self.bn_axis_name, dtype=self.dtype)
      x = Stage(make_block, blocks[k - 1], 1 if k == 1 else 2, name=f"layer{k}")(x, train=train)
      x = stop(x, stage)
      outputs.append(x)   # C{k+1}: [B, S/2^(k+1), S/2^(k+1), out_channels[k-1]]
    return tuple(outputs)


def _stage_of(name: str) -> int | None:
  """Stage number of a backbone top-level module name: stem 1, ``layer{k}`` k + 1."""
  if name in ("conv1", "bn1"):
    return 1
  match = re.fullmatch(r"layer(\d+)", name)
  return int(match.group(1)) + 1 if match else None


def frozen_param_mask(params, freeze_at: int, *, norm: str = "frozen_bn",
                      backbone: str | None = "backbone"):
  """A pytree like ``params`` of bools: True where the leaf must get no update.

  ``params`` is a whole detector's tree with the ResNet under ``params[backbone]`` (leaves
  outside it are False), or the ResNet's own tree with ``backbone=None``. True for every
  leaf of a stage ``<= freeze_at`` (stem 1, ``layer{k}`` k + 1), and with
  ``norm='frozen_bn'`` for the ``scale``/``bias`` of every norm module of the backbone.
  """
  if norm not in NORMS:
    raise ValueError(f"norm {norm!r}: choose from {NORMS}")
  flat = traverse_util.flatten_dict(params)
  skip = 0 if backbone is None else 1
  mask = {}
  for path, _ in flat.items():
    frozen = False
    if backbone is None or (path and path[0] == backbone):
      inner = path[skip:]
      stage = _stage_of(inner[0]) if inner else None
      if stage is not None and stage <= freeze_at:
        frozen = True
      if (norm == "frozen_bn" and len(inner) >= 2 and inner[-1] in ("scale", "bias")
          and NORM_MODULE.search(inner[-2])):
        frozen = True
    mask[path] = frozen
  return traverse_util.unflatten_dict(mask)
