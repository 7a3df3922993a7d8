"""Optimiser and schedules: SGD as darknet trains YOLOv2 (or AdamW), plus the anchors' own rules.

* Learning rate (``train.lr_shape``): ``piecewise``, the paper's piecewise-constant
  schedule in absolute steps; ``step``, a peak lr cut by a factor at given fractions of
  the run (the same shape, scaling with ``train.steps``); or ``cosine``, a linear warm-up
  to a peak then a cosine decay to a fraction of the peak; each times darknet's burn-in
  factor ``min(1, (step / burn_in) ** power)``.
* ``train.optimizer``: ``sgd`` (darknet: SGD + momentum, L2 weight decay added to
  the gradient) or ``adamw`` (``optax.adamw``: Adam with decoupled weight decay,
  ``lr * weight_decay * param``).
* Weight decay on convolution/dense kernels only (``.../kernel``), never on
  biases, BatchNorm parameters or anchors.
* The anchors (the leaf ``anchor_log_wh``: YOLOv2's ``params['head']['anchor_log_wh']``,
  Faster R-CNN's ``params['rpn']['anchor_log_wh']``) get the same optimiser without
  weight decay (SGD+momentum, or Adam) with their own learning-rate multiplier;
  with ``anchors.optimize=False``
  (Baseline) their update is exactly zero, so they stay bit-identical while the
  forward/backward graph is the same as in the optimised run.
* The warm-ups of paper §3.2 are schedules too: temperature T annealed linearly
  from T0 to 0, clustering weight lambda from lambda0 to 0.
"""
from __future__ import annotations

import re
from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from anchor_jax import config_lib

ANCHOR_LEAF = "anchor_log_wh"   # the learnable anchors' param name, in any module


def lr_schedule(lrs: Sequence[Sequence[float]], *, burn_in_steps: int = 0,
                burn_in_power: float = 4.0) -> optax.Schedule:
  """Piecewise-constant lr from ``[(start_step, lr), ...]`` times darknet's burn-in.

  E.g. the paper's VOC recipe ``[(0, 1e-4), (100, 1e-3), (15000, 1e-4), (27000, 1e-5)]``.
  """
  lrs = sorted((int(s), float(v)) for s, v in lrs)
  if not lrs or lrs[0][0] != 0:
    raise ValueError(f"train.lr_schedule must start at step 0, got {lrs}.")
  starts = jnp.asarray([s for s, _ in lrs])
  values = jnp.asarray([v for _, v in lrs])

  def schedule(step):
    base = values[jnp.sum(step >= starts) - 1]
    if burn_in_steps <= 0:
      return base
    return base * jnp.minimum(1.0, (step / burn_in_steps) ** burn_in_power)
  return schedule


def step_lr_schedule(peak_lr: float, total_steps: int, decay_at: Sequence[float], *,
                     decay_factor: float = 0.1, burn_in_steps: int = 0,
                     burn_in_power: float = 4.0) -> optax.Schedule:
  """``peak_lr`` times ``decay_factor`` once for each fraction of ``decay_at`` the run has
  passed, e.g. (0.75, 0.95) over 1200 steps: 1e-2 until step 900, 1e-3 until 1140, 1e-4
  after (darknet's ``steps`` policy with its steps given as fractions of the run), times the
  burn-in factor."""
  fractions = [float(f) for f in decay_at]
  if any(not 0 < f < 1 for f in fractions) or fractions != sorted(fractions):
    raise ValueError(f"train.lr_decay_at={tuple(decay_at)} must be increasing fractions of "
                     "the run in (0, 1).")
  lrs = [(0, peak_lr)] + [(int(round(f * total_steps)), peak_lr * decay_factor ** (i + 1))
                          for i, f in enumerate(fractions)]
  return lr_schedule(lrs, burn_in_steps=burn_in_steps, burn_in_power=burn_in_power)


def cosine_lr_schedule(peak_lr: float, total_steps: int, *, warmup_steps: int = 0,
                       final_lr_frac: float = 0.0, burn_in_steps: int = 0,
                       burn_in_power: float = 4.0) -> optax.Schedule:
  """Linear warm-up 0 -> ``peak_lr`` over ``warmup_steps``, then a cosine decay to
  ``peak_lr * final_lr_frac`` at ``total_steps`` (constant after), times the burn-in factor.
  """
  if not 0 <= warmup_steps < total_steps:
    raise ValueError(f"train.warmup_steps={warmup_steps} must be in [0, train.steps).")
  base = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak_lr, warmup_steps=warmup_steps,
      decay_steps=total_steps, end_value=peak_lr * final_lr_frac)

  def schedule(step):
    if burn_in_steps <= 0:
      return base(step)
    return base(step) * jnp.minimum(1.0, (step / burn_in_steps) ** burn_in_power)
  return schedule


def warmup_schedule(init_value: float, steps: int) -> optax.Schedule:
  """Linear from ``init_value`` at step 0 to 0 at ``steps``, then 0 (T and lambda)."""
  if steps <= 0:
    return optax.constant_schedule(0.0)
  linear = optax.linear_schedule(init_value, 0.0, steps)
  return lambda step: jnp.maximum(linear(step), 0.0)   # no -1e-8 from rounding


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", k)) for k in path)


def param_labels(params, *, optimize_anchors: bool, frozen=None):
  """'anchors' / 'frozen' for the anchor leaf, 'decay' for kernels, 'no_decay' otherwise;
  'frozen' also wherever the optional bool pytree ``frozen`` (same structure) is True
  (Faster R-CNN's frozen BatchNorm and backbone stages)."""
  def label(path, _):
    name = _path_str(path)
    if name == ANCHOR_LEAF or name.endswith("/" + ANCHOR_LEAF):
      return "anchors" if optimize_anchors else "frozen"
    return "decay" if re.search(r"(^|/)kernel$", name) else "no_decay"
  labels = jax.tree_util.tree_map_with_path(label, params)
  if frozen is None:
    return labels
  return jax.tree.map(lambda lab, f: "frozen" if f and lab != "anchors" else lab,
                      labels, frozen)


OPTIMIZERS = config_lib.OPTIMIZERS   # the values train.optimizer may take


def make_optimizer(*, lr: optax.Schedule, momentum: float, weight_decay: float,
                   anchor_lr_mult: float, optimize_anchors: bool, params,
                   optimizer: str = "sgd", adam_b2: float = 0.999,
                   adam_eps: float = 1e-8, frozen=None) -> optax.GradientTransformation:
  """The optimiser of ``optimizer`` with per-group weight decay and the anchors' rules.

  ``sgd``: SGD with ``momentum``; kernels get L2 decay ``weight_decay * param`` added to
  the gradient. ``adamw``: Adam with b1 = ``momentum``, b2 = ``adam_b2``; kernels get
  decoupled decay (``optax.adamw``), the other groups plain Adam. Either way the anchors
  use ``lr * anchor_lr_mult`` and no decay, and the frozen group (the Baseline's anchors,
  and the leaves where the bool pytree ``frozen`` is True) a zero update.
  """
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"train.optimizer={optimizer!r}: choose one of {OPTIMIZERS}.")
  anchor_lr = lambda step: lr(step) * anchor_lr_mult
  if optimizer == "sgd":
    transforms = {
        "decay": optax.chain(optax.add_decayed_weights(weight_decay),
                             optax.sgd(lr, momentum=momentum)),
        "no_decay": optax.sgd(lr, momentum=momentum),
        "anchors": optax.sgd(anchor_lr, momentum=momentum),
    }
  else:
    adam = dict(b1=momentum, b2=adam_b2, eps=adam_eps)
    transforms = {
        "decay": optax.adamw(lr, weight_decay=weight_decay, **adam),
        "no_decay": optax.adam(lr, **adam),
        "anchors": optax.adam(anchor_lr, **adam),
    }
  transforms["frozen"] = optax.set_to_zero()
  return optax.multi_transform(
      transforms, param_labels(params, optimize_anchors=optimize_anchors, frozen=frozen))
