"""Feature Pyramid Network (Lin et al. 2017) over ResNet's C2..C5, as Detectron2's ``FPN``.

``FPN(channels)((C2, C3, C4, C5)) -> (P2, P3, P4, P5, P6)`` at strides 4, 8, 16, 32, 64,
each with ``channels`` channels:

  * lateral 1x1 conv (with bias) on each C_l;
  * top-down: ``M5 = lateral5(C5)``, ``M_l = lateral_l(C_l) + nearest_2x(M_{l+1})``;
  * output 3x3 conv (padding 1, with bias) on each M_l -> P_l;
  * P6 = max-pool kernel 1 stride 2 of P5 (Detectron2's ``LastLevelMaxPool``: every other
    cell), for the RPN's largest anchors.

Odd sizes: the 2x upsample is cropped to the lateral's size, which equals torchvision's
``F.interpolate(size=..., mode="nearest")`` (index ``floor(i * h / h_out)``) for
``h_out = 2h - 1`` as for ``2h``. Convs are initialised as Detectron2's ``c2_xavier_fill``
(``kaiming_uniform_(a=1)``: variance ``1 / fan_in``), biases 0. No normalisation.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

LEVELS = (2, 3, 4, 5)    # the inputs C2..C5; the outputs add P6
STRIDES = (4, 8, 16, 32, 64)


def xavier_fill():
  """Detectron2's ``c2_xavier_fill``: uniform with variance ``1 / fan_in``."""
  return nn.initializers.variance_scaling(1.0, "fan_in", "uniform")


def upsample_nearest_2x(x, hw):
  """[B, h, w, C] -> [B, H, W, C] nearest 2x, cropped to ``hw = (H, W)`` (H in {2h-1, 2h})."""
  x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return x[:, :hw[0], :hw[1]]


class FPN(nn.Module):
  """``__call__(features (C2, C3, C4, C5)) -> (P2, P3, P4, P5, P6)``; see the module docstring.

  Module names: ``lateral{l}`` and ``output{l}`` for l = 2..5 (Detectron2's
  ``fpn_lateral{l}`` / ``fpn_output{l}``).
  """
  channels: int = 256
  dtype: Any = jnp.float32

  def _conv(self, kernel, name):
    pad = kernel // 2
    return nn.Conv(self.channels, (kernel, kernel), padding=((pad, pad), (pad, pad)),
                   use_bias=True, dtype=self.dtype, kernel_init=xavier_fill(), name=name)

  @nn.compact
  def __call__(self, features: Sequence):
    if len(features) != len(LEVELS):
      raise ValueError(f"FPN takes C2..C5 ({len(LEVELS)} maps), got {len(features)}")
    laterals = [self._conv(1, f"lateral{level}")(c) for level, c in zip(LEVELS, features)]
    merged = [None] * len(LEVELS)
    merged[-1] = laterals[-1]
    for i in range(len(LEVELS) - 2, -1, -1):   # top-down: 4, 3, 2
      merged[i] = laterals[i] + upsample_nearest_2x(merged[i + 1], laterals[i].shape[1:3])
    outputs = [self._conv(3, f"output{level}")(m) for level, m in zip(LEVELS, merged)]
    p6 = outputs[-1][:, ::2, ::2]   # max_pool2d(kernel_size=1, stride=2)
    return (*outputs, p6)
