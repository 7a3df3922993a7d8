"""RPN proposals: static-shape greedy NMS and Detectron2's proposal selection.

``nms_fixed`` is torchvision's ``ops.nms`` (greedy: visit boxes by score
descending, keep one unless its IoU with a kept box is > iou_threshold) with a
fixed output count: candidates are sorted once by ``top_k`` (ties: lower index
first) and a ``lax.while_loop`` walks the ranks until ``max_out`` are kept or
the candidates run out. Non-finite scores or boxes are never kept. (The
class-wise detector NMS in ``evaluation/nms.py`` is the multi-class sibling;
this one serves the RPN inside the jitted step, where core may not import
evaluation.)

``select_proposals`` is Detectron2's ``find_top_rpn_proposals`` (torchvision's
``RegionProposalNetwork.filter_proposals`` is the same up to its sigmoid
scores and score threshold): per level the ``pre_nms_top_n`` highest
objectness logits, their boxes decoded from the anchors (``stop_gradient``,
RPN weights, scale clamp) and clipped to the image; boxes with width or height
<= min_size or non-finite coordinates dropped (Detectron2's ``nonempty``, so
even min_size 0 drops empty boxes); NMS within each level; the
``post_nms_top_n`` best of all levels by score. Detectron2 runs one
``batched_nms`` with the boxes of level l offset by l x (max coordinate + 1)
so that levels never suppress each other; here each level runs its own NMS
(vmapped over levels), which keeps exactly the same boxes with [K, K] rather
than [L K, L K] IoU matrices. Scores are the objectness logits (Detectron2's;
sigmoid for probabilities); padding rows have score -inf, zero boxes and
``valid`` False.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from anchor_jax.core import box_ops, rcnn_boxes


def nms_fixed(boxes, scores, *, iou_threshold, max_out):
  """Greedy NMS. boxes [N, 4] xyxy, scores [N] -> (indices [max_out] int32, valid [max_out])
  in score order; padding rows have index 0 and valid False."""
  n = scores.shape[0]
  ok = jnp.isfinite(scores) & jnp.all(jnp.isfinite(boxes), axis=-1)
  top, order = lax.top_k(jnp.where(ok, scores, -jnp.inf), n)      # [N] by score, desc
  candidate = top > -jnp.inf                                      # [N] in rank order
  ranked = jnp.where(candidate[:, None], boxes[order], 0.0)
  overlap = box_ops.pairwise_iou(ranked, ranked) > iou_threshold  # [N, N] rank space
  limit = min(max_out, n)

  def cond(state):
    rank, count, _ = state
    return (rank < n) & (count < limit) & candidate[jnp.minimum(rank, n - 1)]

  def body(state):
    rank, count, keep = state
    kept = ~jnp.any(keep & overlap[rank])
    return rank + 1, count + kept.astype(jnp.int32), keep.at[rank].set(kept)

  zero = jnp.int32(0)
  _, _, keep = lax.while_loop(cond, body, (zero, zero, jnp.zeros(n, bool)))
  first, ranks = lax.top_k(jnp.where(keep, n - jnp.arange(n), 0), limit)  # kept, rank order
  valid = first > 0
  indices = jnp.where(valid, order[ranks], 0).astype(jnp.int32)
  if limit < max_out:
    indices = jnp.concatenate([indices, jnp.zeros(max_out - limit, jnp.int32)])
    valid = jnp.concatenate([valid, jnp.zeros(max_out - limit, bool)])
  return indices, valid


def _level_candidates(logits, deltas, anchors, image_hw, k, pad_to, min_size):
  """One level: top-k -> (boxes [pad_to, 4], scores [pad_to]) with -inf for dropped rows."""
  scores, idx = lax.top_k(logits, k)                              # [k]
  boxes = rcnn_boxes.decode(deltas[idx], anchors[idx], rcnn_boxes.RPN_WEIGHTS)
  boxes = rcnn_boxes.clip_boxes(boxes, image_hw)                  # [k, 4]
  keep = (jnp.all(jnp.isfinite(boxes), -1) & jnp.isfinite(scores)
          & (boxes[:, 2] - boxes[:, 0] > min_size) & (boxes[:, 3] - boxes[:, 1] > min_size))
  scores = jnp.where(keep, scores, -jnp.inf)
  boxes = jnp.where(keep[:, None], boxes, 0.0)
  pad = pad_to - k
  return (jnp.concatenate([boxes, jnp.zeros((pad, 4), boxes.dtype)]),
          jnp.concatenate([scores, jnp.full((pad,), -jnp.inf, scores.dtype)]))


def select_proposals(logits_per_level, deltas_per_level, anchors_per_level, image_hw, *,
                     pre_nms_top_n, post_nms_top_n, nms_thresh=0.7, min_size=0.0):
  """Proposals of one image.

  Args:
    logits_per_level: L arrays [N_l]; deltas_per_level: L [N_l, 4];
    anchors_per_level: L [N_l, 4] xyxy pixels; image_hw: (H, W) for clipping (may be traced).
    pre_nms_top_n: candidates per level; post_nms_top_n: proposals kept in all.

  Returns:
    (boxes [post, 4], scores [post] logits, valid [post] bool), sorted by score.
  """
  sg = jax.lax.stop_gradient
  ks = [min(pre_nms_top_n, x.shape[0]) for x in logits_per_level]
  pad_to = max(ks)
  cands = [_level_candidates(sg(lg), sg(d), sg(a), image_hw, k, pad_to, min_size)
           for lg, d, a, k in zip(logits_per_level, deltas_per_level, anchors_per_level, ks)]
  boxes = jnp.stack([b for b, _ in cands])                        # [L, K, 4]
  scores = jnp.stack([s for _, s in cands])                       # [L, K]
  per_level = min(post_nms_top_n, pad_to)
  nms = functools.partial(nms_fixed, iou_threshold=nms_thresh, max_out=per_level)
  idx, ok = jax.vmap(nms)(boxes, scores)                          # [L, P]
  kept_scores = jnp.where(ok, jnp.take_along_axis(scores, idx, 1), -jnp.inf).reshape(-1)
  kept_boxes = jnp.take_along_axis(boxes, idx[..., None], 1).reshape(-1, 4)  # [L P, 4]
  take = min(post_nms_top_n, kept_scores.shape[0])
  out_scores, flat = lax.top_k(kept_scores, take)                 # [take]
  valid = out_scores > -jnp.inf
  out_boxes = jnp.where(valid[:, None], kept_boxes[flat], 0.0)
  if take < post_nms_top_n:
    pad = post_nms_top_n - take
    out_boxes = jnp.concatenate([out_boxes, jnp.zeros((pad, 4), out_boxes.dtype)])
    out_scores = jnp.concatenate([out_scores, jnp.full((pad,), -jnp.inf, out_scores.dtype)])
    valid = jnp.concatenate([valid, jnp.zeros(pad, bool)])
  return out_boxes, out_scores, valid
