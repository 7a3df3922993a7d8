"""Ground-truth hygiene: reject bad boxes on the host, mask them inside jit.

Boxes are xyxy normalised to [0, 1] of the network input, padded to a fixed
``max_boxes`` with a boolean mask. A GT slot is *valid* when its mask is set,
all four coordinates are finite, it has positive width and height, and its
label is in ``[0, num_classes)``. Invalid slots never contribute to any loss
term: inside jit they are masked (and counted), on the host ``check_gt``
raises with the offending slots named.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Stand-in for masked slots, so that no NaN/inf ever enters the arithmetic
# (0 * NaN is NaN, and jnp.where does not stop NaN gradients).
_SAFE_BOX = (0.25, 0.25, 0.75, 0.75)


def valid_gt(boxes, labels, mask, *, num_classes):
  """[B, M, 4], [B, M], [B, M] -> [B, M] bool: which slots are usable GTs."""
  finite = jnp.all(jnp.isfinite(boxes), axis=-1)
  positive = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
  label_ok = (labels >= 0) & (labels < num_classes)
  return mask.astype(bool) & finite & positive & label_ok


def sanitize_gt(boxes, labels, mask, *, num_classes):
  """Masks invalid slots (jit-safe).

  Returns ``(boxes, labels, valid, num_invalid)``: boxes with every invalid slot
  replaced by a harmless finite box, labels clipped into range, the validity
  mask, and the number of slots that had ``mask`` set but were unusable (NaN,
  inf, non-positive size or bad label) so that callers can log it.
  """
  valid = valid_gt(boxes, labels, mask, num_classes=num_classes)
  safe = jnp.asarray(_SAFE_BOX, boxes.dtype)
  boxes = jnp.where(valid[..., None], boxes, safe)
  labels = jnp.where(valid, labels, 0)
  num_invalid = jnp.sum(mask.astype(bool) & ~valid)
  return boxes, labels, valid, num_invalid


def check_gt(boxes, labels, mask, *, num_classes, where="ground truth"):
  """Host-side check of a padded GT batch; raises ValueError naming bad slots.

  Use it where data enters the program (dataset readers, user-provided
  arrays). Inside jit, ``sanitize_gt`` masks the same slots instead.
  """
  boxes, labels = np.asarray(boxes), np.asarray(labels)
  mask = np.asarray(mask).astype(bool)
  problems = {
      "non-finite coordinates": ~np.all(np.isfinite(boxes), axis=-1),
      "x1 <= x0 or y1 <= y0 (non-positive size)": ~(
          (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])),
      f"label outside [0, {num_classes})": (labels < 0) | (labels >= num_classes),
  }
  lines = []
  for what, bad in problems.items():
    idx = np.argwhere(bad & mask)
    if idx.size:
      shown = ", ".join(str(tuple(int(v) for v in i)) for i in idx[:5])
      more = f" (+{len(idx) - 5} more)" if len(idx) > 5 else ""
      lines.append(f"  {len(idx)} slot(s) with {what}: {shown}{more}")
  if lines:
    raise ValueError(
        f"Invalid boxes in {where} (boxes must be [x0, y0, x1, y1] in [0, 1] "
        "with x1 > x0 and y1 > y0; fix or drop them, or clear their mask):\n"
        + "\n".join(lines))
