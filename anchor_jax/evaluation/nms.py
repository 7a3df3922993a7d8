"""Class-wise greedy non-maximum suppression (darknet/YOLOv2 test time).

Per image and class: candidates with score > ``score_threshold`` are visited in
descending score order; a candidate is kept unless its IoU with an already
kept box of the same class is > ``iou_threshold``. The kept (box, class)
pairs of all classes are then ranked by score and the top ``max_dets`` kept.
YOLO shares one box between the C class scores of a candidate, so the IoU
matrix is computed once per image and reused by every class.

Ties are broken deterministically everywhere: by score descending, then class
index ascending, then candidate index ascending.

Two implementations return the same padded ``NmsOutput``:
  * ``nms_device``: jnp, static shapes, jit/vmap-safe (a ``lax.while_loop``
    over score ranks, all classes in lockstep). Runs where the network ran,
    so on GPU/TPU only the ≤ max_dets detections travel to the host.
  * ``nms_host``: NumPy; the IoU matrix of the candidates above threshold
    only, packed into bit rows; per class a greedy pass whose suppression
    step is one big-int OR over all candidates (bit-parallel).
``nms`` dispatches on ``backend``; None picks ``default_backend()``: 'host'
when JAX runs on CPU, 'device' on GPU/TPU. Why (experiments/benchmarks/
bench_eval.py, 2-core CPU): with a trained-detector-like score distribution
(a few hundred (box, class) pairs above 0.005 per image) the host version is
the faster one, as it works only on candidates above threshold while the
static-shape version always pays for the full N×N IoU and a sequential loop;
with dense scores (every pair above threshold) the device version wins on
CPU too. On an accelerator, the device version inside the jitted eval step
avoids moving all H*W*A*C scores to the host and its loop runs on-device.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from anchor_jax.core import box_ops


def default_backend() -> str:
  """'host' when JAX computes on CPU (faster there, see module doc), else 'device'."""
  return "host" if jax.default_backend() == "cpu" else "device"


class NmsOutput(NamedTuple):
  """Detections padded to ``max_dets``; rows with ``valid`` False are padding."""
  boxes: object  # [B, M, 4] xyxy, as given (zeros in padding)
  scores: object  # [B, M] (0 in padding)
  classes: object  # [B, M] int32 class index (-1 in padding)
  valid: object  # [B, M] bool
  indices: object  # [B, M] int32 candidate index into N (-1 in padding)


# ----------------------------------------------------------------------------
# Device (jnp) version.
# ----------------------------------------------------------------------------


def _nms_device_one(boxes, scores, *, iou_threshold, score_threshold, max_dets,
                    pre_nms_topk):
  """One image: boxes [N, 4], scores [N, C] -> NmsOutput of [M] arrays."""
  n, c = scores.shape
  k = n if pre_nms_topk is None else min(pre_nms_topk, n)
  m = min(max_dets, n * c)
  finite_box = jnp.all(jnp.isfinite(boxes), axis=-1)  # [N]
  cls_scores = scores.T  # [C, N]
  ok = (cls_scores > score_threshold) & finite_box[None, :]  # NaN scores fail `>`
  masked = jnp.where(ok, cls_scores, -jnp.inf)  # [C, N]
  top_scores, order = lax.top_k(masked, k)  # [C, K], ties -> lower index first
  top_valid = top_scores > -jnp.inf  # [C, K]
  overlap = box_ops.pairwise_iou(boxes, boxes) > iou_threshold  # [N, N]
  class_ids = jnp.arange(c)

  def cond(state):
    rank, _ = state
    return (rank < k) & jnp.any(top_valid[:, jnp.minimum(rank, k - 1)])

  def body(state):
    rank, keep = state  # keep: [C, N] kept so far, in candidate index space
    idx = order[:, rank]  # [C] the candidate each class visits now
    suppressed = jnp.any(keep & overlap[idx], axis=-1)  # [C]
    keep = keep.at[class_ids, idx].set(top_valid[:, rank] & ~suppressed)
    return rank + 1, keep

  _, keep = lax.while_loop(cond, body, (0, jnp.zeros((c, n), bool)))
  kept_scores = jnp.where(keep, masked, -jnp.inf).reshape(c * n)  # class-major
  out_scores, flat = lax.top_k(kept_scores, m)  # [M]
  valid = out_scores > -jnp.inf
  cand = flat % n
  out = NmsOutput(
      boxes=jnp.where(valid[:, None], boxes[cand], 0.0),
      scores=jnp.where(valid, out_scores, 0.0),
      classes=jnp.where(valid, flat // n, -1).astype(jnp.int32),
      valid=valid,
      indices=jnp.where(valid, cand, -1).astype(jnp.int32))
  if m < max_dets:  # fewer candidates than slots: pad
    out = NmsOutput(*(jnp.concatenate(
        [x, jnp.full((max_dets - m,) + x.shape[1:], fill, x.dtype)])
        for x, fill in zip(out, (0, 0, -1, False, -1))))
  return out


@functools.partial(
    jax.jit, static_argnames=("iou_threshold", "score_threshold", "max_dets", "pre_nms_topk"))
def nms_device(boxes, scores, *, iou_threshold: float = 0.45,
               score_threshold: float = 0.005, max_dets: int = 300,
               pre_nms_topk: int | None = None) -> NmsOutput:
  """Batched class-wise NMS in jnp with static shapes.

  Args:
    boxes: ``[B, N, 4]`` xyxy (any consistent units).
    scores: ``[B, N, C]`` per-class scores.
    iou_threshold: suppress when IoU > this.
    score_threshold: candidates need score > this.
    max_dets: detections kept per image (output padded to this).
    pre_nms_topk: visit only the top-k candidates per class (None: all N).
      Bounds the sequential loop; results match the exact NMS whenever no
      class has more than k candidates above the score threshold.

  Returns:
    ``NmsOutput`` of ``[B, max_dets, ...]`` arrays, sorted by score.
  """
  fn = functools.partial(
      _nms_device_one, iou_threshold=iou_threshold, score_threshold=score_threshold,
      max_dets=max_dets, pre_nms_topk=pre_nms_topk)
  return jax.vmap(fn)(jnp.asarray(boxes, jnp.float32), jnp.asarray(scores, jnp.float32))


# ----------------------------------------------------------------------------
# Host (NumPy) version.
# ----------------------------------------------------------------------------


def _greedy(order, overlap_row, max_keep):
  """Greedy NMS visiting candidates ``order`` (by score) -> kept, in that order.

  ``overlap_row(p)`` is candidate p's row of the overlap matrix as a Python
  int bitset, so suppressing by a kept box is one big-int OR over all
  candidates (bit-parallel, 64 per word) and testing a candidate one shift.
  """
  suppressed = 0
  kept = []
  for p in order.tolist():
    if suppressed >> p & 1:
      continue
    kept.append(p)
    if len(kept) == max_keep:
      break
    suppressed |= overlap_row(p)
  return np.asarray(kept, np.int64)


def _nms_host_one(boxes, scores, *, iou_threshold, score_threshold, max_dets,
                  pre_nms_topk):
  """One image: boxes [N, 4], scores [N, C] -> (cand, cls, score) kept, sorted."""
  ok = (scores > score_threshold) & np.isfinite(boxes).all(axis=-1)[:, None]  # [N, C]
  cand = np.flatnonzero(ok.any(axis=1))  # [U] candidates valid for some class
  if cand.size == 0:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, scores.dtype)
  sub = boxes[cand]  # [U, 4]
  overlap = box_ops.pairwise_iou(sub, sub) > iou_threshold  # [U, U]
  packed = np.packbits(overlap, axis=1, bitorder="little")  # [U, ceil(U / 8)] bit rows
  rows = {}  # position -> row as int, built on first use (shared by all classes)

  def overlap_row(p):
    if p not in rows:
      rows[p] = int.from_bytes(packed[p].tobytes(), "little")
    return rows[p]

  ok_sub = ok[cand]  # [U, C]
  kept_pos, kept_cls = [], []
  for cls in np.flatnonzero(ok_sub.any(axis=0)):
    members = np.flatnonzero(ok_sub[:, cls])  # positions in cand (index order)
    order = members[np.argsort(-scores[cand[members], cls], kind="stable")]
    if pre_nms_topk is not None:
      order = order[:pre_nms_topk]
    kept = _greedy(order, overlap_row, max_dets)
    kept_pos.append(kept)
    kept_cls.append(np.full(kept.size, cls, np.int64))
  pos = np.concatenate(kept_pos)
  cls = np.concatenate(kept_cls)
  idx = cand[pos]
  sc = scores[idx, cls]
  rank = np.lexsort((idx, cls, -sc))[:max_dets]  # score desc, class, index
  return idx[rank], cls[rank], sc[rank]


def nms_host(boxes, scores, *, iou_threshold: float = 0.45,
             score_threshold: float = 0.005, max_dets: int = 300,
             pre_nms_topk: int | None = None) -> NmsOutput:
  """Batched class-wise NMS in NumPy; same contract as ``nms_device``."""
  boxes = np.asarray(boxes, np.float32)  # [B, N, 4]
  scores = np.asarray(scores, np.float32)  # [B, N, C]
  b = boxes.shape[0]
  out = NmsOutput(
      boxes=np.zeros((b, max_dets, 4), np.float32),
      scores=np.zeros((b, max_dets), np.float32),
      classes=np.full((b, max_dets), -1, np.int32),
      valid=np.zeros((b, max_dets), bool),
      indices=np.full((b, max_dets), -1, np.int32))
  for i in range(b):
    idx, cls, sc = _nms_host_one(
        boxes[i], scores[i], iou_threshold=iou_threshold,
        score_threshold=score_threshold, max_dets=max_dets, pre_nms_topk=pre_nms_topk)
    n = idx.size
    out.boxes[i, :n] = boxes[i, idx]
    out.scores[i, :n] = sc
    out.classes[i, :n] = cls
    out.valid[i, :n] = True
    out.indices[i, :n] = idx
  return out


def nms(boxes, scores, *, backend: str | None = None, iou_threshold: float = 0.45,
        score_threshold: float = 0.005, max_dets: int = 300,
        pre_nms_topk: int | None = None) -> NmsOutput:
  """Class-wise NMS with ``backend`` 'host', 'device' or None (``default_backend()``)."""
  backend = default_backend() if backend is None else backend
  kwargs = dict(iou_threshold=iou_threshold, score_threshold=score_threshold,
                max_dets=max_dets, pre_nms_topk=pre_nms_topk)
  if backend == "host":
    return nms_host(boxes, scores, **kwargs)
  if backend == "device":
    return nms_device(boxes, scores, **kwargs)
  raise ValueError(f'unknown NMS backend {backend!r}; expected "host" or "device"')
