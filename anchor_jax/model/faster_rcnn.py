"""Faster R-CNN (Ren et al. 2015) with learnable RPN anchor shapes, in flax.linen.

The model holds the networks and the anchors' parameters; anchor placement, assignment,
proposals, RoIAlign and the losses are pure functions in ``anchor_jax.core`` (``rcnn_boxes``,
``rcnn_assign``, ``proposals``, ``roi_align``, ``rcnn_losses``) that the training step calls
between the methods below (all through ``model.apply(variables, ..., method=...)``):

  * ``features(images [B, S, S, 3] in [0, 1], train) -> [P_l: B, S/s_l, S/s_l, C]``, the
    RPN's levels: with ``fpn`` P2..P6 (strides 4..64, ResNet C2..C5 + ``fpn.FPN``), without
    it the one level C4 (stride 16). Images are normalised by ``pixel_mean`` / ``pixel_std``
    first (torchvision's ImageNet values: its and timm's weights expect them).
  * ``rpn(features) -> (logits [B, H_l*W_l*A] per level, deltas [B, H_l*W_l*A, 4] per level)``:
    Detectron2's ``StandardRPNHead``, one 3x3 conv + ReLU shared by all levels, then 1x1
    convs to A objectness logits and 4A box deltas ``(t_x, t_y, t_w, t_h)``; flattened
    ``[H, W, A]`` row-major (cell-major, anchor-minor), the order of ``rcnn_boxes``' anchors.
  * ``box_head(roi_features [B, R, roi_size, roi_size, C]) -> (cls_logits [B, R, C + 1],
    deltas [B, R, num_classes, 4])``: two fc layers of ``fc_dim`` + ReLU (Detectron2's
    ``FastRCNNConvFCHead`` with 2 fc), then class scores (index 0 = background, 1..C the
    classes) and class-specific deltas (row c - 1 for class c). The RoI features come from
    RoIAlign over ``roi_strides`` (P2..P5 with FPN, as Detectron2's box pooler; C4 without).
  * ``__call__(images, train)``: all three on dummy RoI features, so ``init`` creates every
    param; returns ``(features, (logits, deltas), (cls_logits, box_deltas))``.

The anchors: ``params['rpn']['anchor_log_wh']`` [L, A, 2], the log of (width, height) in input
pixels of anchor slot a at level l (L = 5 with FPN, 1 without), initialised from ``anchors``.
The forward pass does not read it: the training step places the anchors at every cell
(``rcnn_boxes.level_anchors``) and the RPN loss gives it gradient through ``t_w, t_h`` targets
(paper Eq. 3/9). Baseline = the optimiser's zero update for that leaf.

Deviation from Detectron2's R50-C4: without FPN the box head is the same 2-fc head over
RoIAlign 7x7 of C4 (Detectron2 runs res5 on 14x14 RoIs and average-pools), so ``layer4``
is not built (``ResNet(max_stage=4)``) and ImageNet weights of ``layer4`` are not used.

Init: RPN and predictor layers normal(0.01) (box deltas normal(0.001)), biases 0, as
Detectron2; fc layers ``c2_xavier_fill``. The 1x1 RPN heads and the predictors compute in
float32 whatever ``dtype`` (their outputs feed the losses and the anchors' gradient).

Frozen params: ``frozen_mask(model, params)`` (``resnet.frozen_param_mask``) is True for the
backbone stages up to ``freeze_at`` and every frozen-BN ``scale``/``bias``; the optimiser gives
those leaves a zero update.

``from_config(config, *, num_classes, anchors, axis_name=None)`` reads
  ``model.width``, ``model.dtype``,
  ``rcnn.depth``, ``rcnn.fpn``, ``rcnn.norm``, ``rcnn.freeze_at``, ``rcnn.fpn_channels``,
  ``rcnn.rpn_channels`` (0: the feature channels), ``rcnn.fc_dim``, ``rcnn.roi_size``,
  and, when present, ``rcnn.bn_momentum`` (0.9), ``rcnn.pixel_mean``, ``rcnn.pixel_std``
  (ImageNet's); ``default_anchors(config)`` reads ``rcnn.fpn``, ``rcnn.anchor_sizes``,
  ``rcnn.aspect_ratios``.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from anchor_jax.model import fpn as fpn_lib
from anchor_jax.model import resnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # RGB in [0, 1] (torchvision, timm)
IMAGENET_STD = (0.229, 0.224, 0.225)
FPN_STRIDES = fpn_lib.STRIDES            # P2..P6
C4_STRIDE = 16


def anchor_shapes(sizes: Sequence[float], aspect_ratios: Sequence[float], *,
                  fpn: bool) -> np.ndarray:
  """Initial anchor (w, h) in pixels, float32 [L, A, 2]: ``w = size / sqrt(r)``,
  ``h = size * sqrt(r)`` (r = h / w; area size², Detectron2's ``generate_cell_anchors``).

  With ``fpn`` one size per level (``len(sizes)`` levels, A = len(aspect_ratios)); without,
  every size at the one level, size-major: A = len(sizes) * len(aspect_ratios).
  """
  sizes = np.asarray(sizes, np.float64).reshape(-1)
  ratios = np.asarray(aspect_ratios, np.float64).reshape(-1)
  if sizes.size == 0 or ratios.size == 0 or (sizes <= 0).any() or (ratios <= 0).any():
    raise ValueError(f"anchor sizes {sizes.tolist()} and aspect ratios {ratios.tolist()} "
                     "must be non-empty and positive")
  wh = np.stack([sizes[:, None] / np.sqrt(ratios)[None, :],
                 sizes[:, None] * np.sqrt(ratios)[None, :]], axis=-1)   # [S, R, 2]
  return (wh if fpn else wh.reshape(1, -1, 2)).astype(np.float32)


def default_anchors(config) -> np.ndarray:
  """``anchor_shapes`` of ``config.rcnn``: [L, A, 2] pixel (w, h)."""
  rcnn = config.rcnn
  return anchor_shapes(rcnn.anchor_sizes, rcnn.aspect_ratios, fpn=rcnn.fpn)


class RPNHead(nn.Module):
  """Shared 3x3 conv + ReLU, 1x1 objectness and deltas per level; holds ``anchor_log_wh``."""
  anchors: Sequence   # [L][A][2] pixels: the initial value of anchor_log_wh
  channels: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: Sequence):
    init_log_wh = np.log(np.asarray(self.anchors, np.float32))   # [L, A, 2]
    if init_log_wh.ndim != 3 or init_log_wh.shape[-1] != 2:
      raise ValueError(f"anchors must be [levels, anchors, 2] (w, h), got {init_log_wh.shape}")
    levels, num_anchors, _ = init_log_wh.shape
    if len(features) != levels:
      raise ValueError(f"{levels} anchor levels for {len(features)} feature levels")
    self.param("anchor_log_wh", lambda _, shape: jnp.asarray(init_log_wh).reshape(shape),
               init_log_wh.shape)
    normal = nn.initializers.normal(0.01)
    conv = nn.Conv(self.channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                   kernel_init=normal, name="conv")
    objectness = nn.Conv(num_anchors, (1, 1), dtype=jnp.float32, kernel_init=normal,
                         name="objectness")
    anchor_deltas = nn.Conv(4 * num_anchors, (1, 1), dtype=jnp.float32, kernel_init=normal,
                            name="anchor_deltas")
    logits, deltas = [], []
    for x in features:
      b, h, w, _ = x.shape
      x = jnp.asarray(nn.relu(conv(x)), jnp.float32)
      logits.append(objectness(x).reshape(b, h * w * num_anchors))         # [B, H*W*A]
      deltas.append(anchor_deltas(x).reshape(b, h * w * num_anchors, 4))   # [B, H*W*A, 4]
    return logits, deltas


class BoxHead(nn.Module):
  """Flatten, fc + ReLU, fc + ReLU, class scores (C + 1) and class-specific deltas (C x 4)."""
  num_classes: int
  fc_dim: int = 1024
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, r = x.shape[:2]
    x = x.reshape(b, r, -1)   # [B, R, s*s*C], (row, col, channel) order
    for name in ("fc1", "fc2"):
      x = nn.relu(nn.Dense(self.fc_dim, dtype=self.dtype, kernel_init=fpn_lib.xavier_fill(),
                           name=name)(x))
    x = jnp.asarray(x, jnp.float32)
    cls_logits = nn.Dense(self.num_classes + 1, dtype=jnp.float32,
                          kernel_init=nn.initializers.normal(0.01), name="cls_score")(x)
    deltas = nn.Dense(4 * self.num_classes, dtype=jnp.float32,
                      kernel_init=nn.initializers.normal(0.001), name="bbox_pred")(x)
    return cls_logits, deltas.reshape(b, r, self.num_classes, 4)


class FasterRCNN(nn.Module):
  """Faster R-CNN, ResNet (+ FPN) backbone; methods and params in the module docstring.

  Fields:
    num_classes: C (foreground classes).
    anchors: initial anchor (w, h) in pixels [L, A, 2]; only initialises ``anchor_log_wh``.
    fpn: P2..P6 with FPN, or the one C4 level.
    depth, width, norm, freeze_at: the ResNet's (``resnet.ResNet``).
    fpn_channels: FPN output channels before ``width`` scaling (256).
    rpn_channels: channels of the RPN's 3x3 conv; 0 = the feature channels (Detectron2).
    fc_dim: box head fc width before ``width`` scaling (1024).
    roi_size: RoIAlign output size the box head expects (7).
    pixel_mean, pixel_std: RGB input normalisation (images in [0, 1]).
    bn_momentum, bn_axis_name: the ResNet's ``norm='bn'`` settings.
    min_channels: floor of the width rule.
    dtype: compute dtype; params, BN statistics and the heads' outputs stay float32.
  """
  num_classes: int
  anchors: Sequence
  fpn: bool = True
  depth: int = 50
  width: float = 1.0
  norm: str = "frozen_bn"
  freeze_at: int = 2
  fpn_channels: int = 256
  rpn_channels: int = 0
  fc_dim: int = 1024
  roi_size: int = 7
  pixel_mean: Sequence[float] = IMAGENET_MEAN
  pixel_std: Sequence[float] = IMAGENET_STD
  bn_momentum: float = 0.9
  bn_axis_name: str | None = None
  min_channels: int = 8
  dtype: Any = jnp.float32

  @property
  def strides(self) -> tuple:
    """Strides of the ``features`` levels (the RPN's)."""
    return FPN_STRIDES if self.fpn else (C4_STRIDE,)

  @property
  def roi_strides(self) -> tuple:
    """Strides of the levels RoIAlign pools from: P2..P5 with FPN, C4 without."""
    return FPN_STRIDES[:4] if self.fpn else (C4_STRIDE,)

  @property
  def feature_channels(self) -> int:
    """Channels of every ``features`` level."""
    if self.fpn:
      return self._scaled(self.fpn_channels)
    return resnet.stage_out_channels(self.depth, self.width,
                                     min_channels=self.min_channels)[2]

  def _scaled(self, channels: int) -> int:
    return resnet.scale_channels(channels, self.width, min_channels=self.min_channels)

  def setup(self):
    self.backbone = resnet.ResNet(
        depth=self.depth, width=self.width, norm=self.norm, freeze_at=self.freeze_at,
        max_stage=5 if self.fpn else 4, bn_momentum=self.bn_momentum,
        bn_axis_name=self.bn_axis_name, min_channels=self.min_channels, dtype=self.dtype)
    if self.fpn:
      self.neck = fpn_lib.FPN(self._scaled(self.fpn_channels), dtype=self.dtype, name="fpn")
    self.rpn_head = RPNHead(self.anchors, self.rpn_channels or self.feature_channels,
                            dtype=self.dtype, name="rpn")
    self.roi_head = BoxHead(self.num_classes, self._scaled(self.fc_dim), dtype=self.dtype,
                            name="box_head")

  def features(self, images, train: bool = False) -> list:
    """images [B, S, S, 3] in [0, 1] -> the RPN levels [B, S/s_l, S/s_l, C] (``strides``)."""
    multiple = 32 if self.fpn else C4_STRIDE
    if images.shape[1] % multiple or images.shape[2] % multiple:
      raise ValueError(f"input size {images.shape[1:3]} must be a multiple of {multiple}")
    mean = jnp.asarray(self.pixel_mean, jnp.float32)
    std = jnp.asarray(self.pixel_std, jnp.float32)
    x = (jnp.asarray(images, jnp.float32) - mean) / std
    c = self.backbone(x, train=train)
    return list(self.neck(c)) if self.fpn else [c[2]]

  def rpn(self, features: Sequence):
    """-> (logits [B, H_l*W_l*A] per level, deltas [B, H_l*W_l*A, 4] per level), float32."""
    return self.rpn_head(features)

  def box_head(self, roi_features):
    """[B, R, s, s, C] -> (cls_logits [B, R, C + 1], deltas [B, R, num_classes, 4])."""
    return self.roi_head(roi_features)

  def __call__(self, images, train: bool = False):
    feats = self.features(images, train)
    rpn_out = self.rpn(feats)
    dummy = jnp.zeros((images.shape[0], 1, self.roi_size, self.roi_size,
                       self.feature_channels), feats[0].dtype)
    return feats, rpn_out, self.box_head(dummy)


def from_config(config, *, num_classes: int, anchors,
                axis_name: str | None = None) -> FasterRCNN:
  """The detector of ``config.model`` / ``config.rcnn`` (keys in the module docstring) with
  initial ``anchors`` [L, A, 2] pixels; ``axis_name``: pmap axis of ``norm='bn'``."""
  rcnn = config.rcnn
  return FasterRCNN(
      num_classes=num_classes,
      anchors=tuple(tuple(map(tuple, level)) for level in np.asarray(anchors).tolist()),
      fpn=bool(rcnn.fpn), depth=int(rcnn.depth), width=float(config.model.width),
      norm=rcnn.norm, freeze_at=int(rcnn.freeze_at), fpn_channels=int(rcnn.fpn_channels),
      rpn_channels=int(rcnn.rpn_channels), fc_dim=int(rcnn.fc_dim),
      roi_size=int(rcnn.roi_size), bn_momentum=float(rcnn.get("bn_momentum", 0.9)),
      pixel_mean=tuple(rcnn.get("pixel_mean", IMAGENET_MEAN)),
      pixel_std=tuple(rcnn.get("pixel_std", IMAGENET_STD)),
      bn_axis_name=axis_name, dtype=jnp.dtype(config.model.dtype))


def frozen_mask(model: FasterRCNN, params):
  """``resnet.frozen_param_mask`` for this model: True where a leaf gets no update."""
  return resnet.frozen_param_mask(params, model.freeze_at, norm=model.norm,
                                  backbone="backbone")
