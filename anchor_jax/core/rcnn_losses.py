"""Faster R-CNN losses with learnable RPN anchors (paper Table 7: Eq. 3/9 + Eq. 11-12).

One image per call (vmap over the batch; the caller averages over images).

``rpn_loss``: the anchors are matched to the GTs (``rcnn_assign.match``, IoU
>= pos_thresh or best per GT positive, < neg_thresh negative) and
``batch_per_image`` of them sampled (``rcnn_assign.sample``), all on
``stop_gradient`` anchors. Then, over the sampled set S with positives P:

  rpn_obj  = sum_S BCE(sigmoid(logit), [anchor in P]) / |S|
  rpn_box  = sum_P [ smooth_l1(t_x - t_x*) + smooth_l1(t_y - t_y*)
                   + smooth_l1(t_w - (log g_w - log a_w)) + smooth_l1(t_h - (log g_h - log a_h)) ] / |S|
  cluster  = cluster_weight / (2 |P|) sum_P [(log a_w - log g_w)^2 + (log a_h - log g_h)^2]

with smooth_l1 of ``beta`` (torchvision's RPN: beta = 1/9, box loss summed
over positives and divided by the number sampled; Detectron2 uses beta = 0,
i.e. L1, and divides by batch_per_image x images). (t_x*, t_y*) are the
usual targets on the stop-gradient anchor; ``log a_w, log a_h`` are the
anchor's learnable shape ``anchor_log_wh[level_slot]``, so the anchors get
gradient only through the wh targets (the paper's Eq. 3, whose gradient is
Eq. 9) and the clustering term:

  d rpn_box / d log a_w = sum_{P of that slot} smooth_l1'(t_w - t_w*) / |S|   (RPN weights w_w = 1).

The clustering term (the paper's online-clustering warm-up, Eq. 11-12) runs
over the same sampled positives P as the box term; N = |P| (0 -> term 0).
The normalisers are per image (torchvision normalises over the whole batch;
equal when every image fills its ``batch_per_image`` samples).

``box_head_loss``: softmax cross-entropy over the sampled RoIs (mean) and
smooth-L1 of the class-specific deltas of the foreground rows' GT class
against ``encode(gt, roi, (10, 10, 5, 5))``, summed over foreground and
divided by the number sampled (torchvision and Detectron2). ``beta`` = 0 is
Detectron2's L1, torchvision uses 1/9. Labels: 0 = background, k >= 1 the
class k - 1, whose deltas are ``deltas[:, k - 1]``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from anchor_jax.core import box_ops, rcnn_assign, rcnn_boxes

RPN_TERMS = ("rpn_obj", "rpn_box", "cluster")
BOX_HEAD_TERMS = ("rcnn_cls", "rcnn_box")


def smooth_l1(x, beta):
  """Elementwise Huber of Fast R-CNN: 0.5 x^2 / beta for |x| < beta, else |x| - 0.5 beta.

  beta = 0 is the L1 loss (no division by zero, in values or gradients).
  """
  ax = jnp.abs(x)
  return jnp.where(ax < beta, 0.5 * x * x / jnp.maximum(beta, 1e-12), ax - 0.5 * beta)


def sigmoid_bce(logits, targets):
  """Elementwise binary cross-entropy of sigmoid(logits), numerically stable."""
  return jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def rpn_loss(logits, deltas, anchor_log_wh, anchors, level_slot, gt, gt_valid, key, *,
             pos_thresh=0.7, neg_thresh=0.3, batch_per_image=256, pos_fraction=0.5,
             beta=1.0 / 9, cluster_weight=0.0):
  """RPN loss of one image; see the module docstring.

  Args:
    logits: [N] objectness logits; deltas: [N, 4] (t_x, t_y, t_w, t_h), RPN weights (1, 1, 1, 1).
    anchor_log_wh: [L, A, 2] the learnable log (w, h) in pixels (the gradient's target).
    anchors: [N, 4] xyxy from ``rcnn_boxes.level_anchors`` (gradient stopped here);
    level_slot: [N] int index into ``anchor_log_wh.reshape(L * A, 2)``.
    gt: [M, 4] xyxy pixels; gt_valid: [M] bool (non-finite or empty boxes are dropped
      too); key: PRNG key of the sampling.
    cluster_weight: scalar, may be traced (a schedule value).

  Returns:
    (total, terms) with terms ``rpn_obj``, ``rpn_box``, ``cluster`` (summed into total),
    ``num_pos``, ``num_neg`` (sampled) and ``anchor_counts`` [L * A] (sampled positives per slot).
  """
  num_slots = anchor_log_wh.shape[0] * anchor_log_wh.shape[1]
  anchors = jax.lax.stop_gradient(anchors)
  gt = jax.lax.stop_gradient(gt)
  gt_valid = gt_valid & jnp.all(jnp.isfinite(gt), -1) & jnp.all(gt[:, 2:] > gt[:, :2], -1)
  labels, matched = rcnn_assign.match(box_ops.pairwise_iou(anchors, gt), gt_valid,
                                      pos_thresh=pos_thresh, neg_thresh=neg_thresh)
  labels = rcnn_assign.sample(labels, key, num=batch_per_image, pos_fraction=pos_fraction)
  pos = labels == 1                                               # [N]
  sampled = labels >= 0
  num_pos, num_sampled = jnp.sum(pos), jnp.sum(sampled)
  norm = jnp.maximum(num_sampled, 1).astype(logits.dtype)

  obj = jnp.sum(jnp.where(sampled, sigmoid_bce(logits, pos.astype(logits.dtype)), 0)) / norm

  # Targets on a safe box where not positive, so no log(0) enters any branch.
  g = jnp.where(pos[:, None], gt[matched], anchors)              # [N, 4]
  t_xy = rcnn_boxes.encode(g, anchors, rcnn_boxes.RPN_WEIGHTS)[:, :2]  # [N, 2]
  g_log_wh = jnp.log(g[:, 2:] - g[:, :2])                         # [N, 2]
  a_log_wh = anchor_log_wh.reshape(num_slots, 2)[level_slot]      # [N, 2] the parameter
  t_wh = g_log_wh - a_log_wh                                      # Eq. 3's target
  err = smooth_l1(deltas - jnp.concatenate([t_xy, t_wh], -1), beta)  # [N, 4]
  box = jnp.sum(jnp.where(pos[:, None], err, 0)) / norm

  sq = jnp.sum((a_log_wh - g_log_wh) ** 2, -1)                    # [N]
  cluster = cluster_weight * jnp.sum(jnp.where(pos, sq, 0)) / (
      2 * jnp.maximum(num_pos, 1).astype(sq.dtype))
  counts = jnp.zeros(num_slots, jnp.int32).at[level_slot].add(pos.astype(jnp.int32))
  terms = dict(rpn_obj=obj, rpn_box=box, cluster=cluster, num_pos=num_pos,
               num_neg=num_sampled - num_pos, anchor_counts=counts)
  return obj + box + cluster, terms


def box_head_loss(cls_logits, deltas, rois, labels, matched_gt, weight, *,
                  weights=rcnn_boxes.BOX_HEAD_WEIGHTS, beta=0.0):
  """Box head loss of one image (or of flattened RoIs of several).

  Args:
    cls_logits: [R, C + 1] (index 0 = background); deltas: [R, C, 4] class-specific.
    rois, labels, matched_gt, weight: ``rcnn_assign.sample_rois``'s [R, 4], [R], [R, 4], [R].

  Returns:
    (total, terms) with ``rcnn_cls`` and ``rcnn_box``.
  """
  rois = jax.lax.stop_gradient(rois)
  norm = jnp.maximum(jnp.sum(weight), 1.0)
  log_p = jax.nn.log_softmax(cls_logits, axis=-1)                 # [R, C + 1]
  nll = -jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
  cls = jnp.sum(weight * nll) / norm

  fg = (labels > 0) & (weight > 0)                                # [R]
  cls_idx = jnp.maximum(labels - 1, 0)
  d = jnp.take_along_axis(deltas, cls_idx[:, None, None], axis=1)[:, 0]  # [R, 4]
  safe_roi = jnp.where(fg[:, None], rois, jnp.asarray([0.0, 0.0, 1.0, 1.0], rois.dtype))
  g = jnp.where(fg[:, None], matched_gt, safe_roi)
  target = jax.lax.stop_gradient(rcnn_boxes.encode(g, safe_roi, weights))
  box = jnp.sum(jnp.where(fg[:, None], smooth_l1(d - target, beta), 0)) / norm
  return cls + box, dict(rcnn_cls=cls, rcnn_box=box)
