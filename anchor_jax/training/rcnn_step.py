"""The Faster R-CNN training loss with learnable RPN anchors (paper Table 7), per device.

``rcnn_loss`` runs one device's share of a batch through the two stages:

  1. backbone (+ FPN) features; the RPN's objectness logits and box deltas per level;
  2. the anchors of every level placed at run time from ``params['rpn']['anchor_log_wh']``
     [L, A, 2] (``core.rcnn_boxes.level_anchors``); the RPN loss (``core.rcnn_losses.rpn_loss``:
     IoU labels and sampling on stop-gradient anchors; the anchors' gradient only through
     the t_w, t_h targets log(g / a), the paper's Eq. 3/9, and the clustering term);
  3. proposals from the stop-gradient RPN outputs (top-k per level, NMS, top-k), the GT
     boxes appended, RoIs sampled (``core.rcnn_assign.sample_rois``);
  4. RoIAlign of the sampled RoIs (on P2-P5 by box size with FPN, on C4 without), the box
     head, and its loss (``core.rcnn_losses.box_head_loss``).

The per-image losses are averaged over the device's images and divided by the device
count, so that their ``psum`` (the train step's) is the mean over the global batch. The
anchors are ordinary params: the Baseline runs this same graph with the optimiser giving
them a zero update (``anchors.optimize=False``) and ``cluster_weight`` 0.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from anchor_jax.core import rcnn_assign, rcnn_losses
from anchor_jax.evaluation import rcnn_inference

LOSS_TERMS = ("rpn_obj", "rpn_box", "cluster", "rcnn_cls", "rcnn_box")


def image_keys(step_key, *, first: int, count: int):
  """[count] keys of the images at global batch positions first .. first + count - 1: the
  sampling of an image does not depend on the device that holds it (1 vs N devices agree)."""
  return jax.vmap(lambda i: jax.random.fold_in(step_key, i))(first + jnp.arange(count))


def rcnn_loss(model, params, batch_stats, batch, *, keys, cluster_weight, cfg, num_devices=1):
  """-> (loss, terms, new batch_stats) for this device's images.

  batch: ``image`` uint8 [B, S, S, 3], ``boxes`` [B, M, 4] xyxy in [0, 1], ``labels``
  [B, M] (0-based classes), ``mask`` / ``difficult`` [B, M]. ``cfg``: the ``rcnn``
  ConfigDict. ``keys``: [B] random keys of the images (``image_keys``: anchor and RoI sampling).
  ``terms`` has the loss terms (summing to the loss over devices), the counts ``num_pos``
  (sampled positive anchors), ``num_rois_fg`` (foreground RoIs), ``num_gt`` and
  ``anchor_counts`` [L * A] (positive anchors per slot), all of this device's images.
  """
  images = batch["image"].astype(jnp.float32) / 255.0              # [B, S, S, 3]
  b, size = images.shape[0], images.shape[1]
  gt = batch["boxes"] * size                                        # [B, M, 4] px
  gt_valid = batch["mask"] & ~batch["difficult"]                    # [B, M]
  variables = {"params": params, "batch_stats": batch_stats}
  if cfg.norm == "bn":              # train-mode BN: batch statistics, running averages updated
    features, updates = model.apply(variables, images, train=True, method="features",
                                    mutable=["batch_stats"])
    new_stats = updates["batch_stats"]
  else:                             # frozen BN: nothing to update
    features = model.apply(variables, images, train=True, method="features")
    new_stats = batch_stats
  logits, deltas = model.apply(variables, features, method="rpn")  # lists [B, N_l], [B, N_l, 4]

  # ------------------------------------------------------------------ RPN
  anchor_log_wh = params["rpn"]["anchor_log_wh"]                    # [L, A, 2]
  anchors, slot, sizes = rcnn_inference.image_anchors(
      params, features, image_size=size, offset=cfg.anchor_offset)   # [N, 4], [N]
  logits_all = jnp.concatenate(logits, axis=1)                      # [B, N]
  deltas_all = jnp.concatenate(deltas, axis=1)                      # [B, N, 4]
  rpn_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
  roi_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
  rpn_fn = functools.partial(
      rcnn_losses.rpn_loss, anchor_log_wh=anchor_log_wh, anchors=anchors, level_slot=slot,
      pos_thresh=cfg.rpn_pos_iou, neg_thresh=cfg.rpn_neg_iou,
      batch_per_image=cfg.rpn_batch_per_image, pos_fraction=cfg.rpn_pos_fraction,
      beta=cfg.rpn_beta, cluster_weight=cluster_weight)
  rpn_total, rpn_terms = jax.vmap(
      lambda lg, dl, g, v, k: rpn_fn(lg, dl, gt=g, gt_valid=v, key=k))(
          logits_all, deltas_all, gt, gt_valid, rpn_keys)

  # ------------------------------------------------------------------ proposals -> RoIs
  props, _, props_valid = rcnn_inference.propose(
      logits, deltas, anchors, sizes, image_size=size, pre_nms_top_n=cfg.rpn_pre_nms_train,
      post_nms_top_n=cfg.rpn_post_nms_train, nms_thresh=cfg.rpn_nms_iou)
  sample = functools.partial(
      rcnn_assign.sample_rois, num=cfg.roi_batch_per_image, pos_fraction=cfg.roi_pos_fraction,
      fg_thresh=cfg.roi_fg_iou, bg_thresh_hi=cfg.roi_fg_iou)
  rois = jax.vmap(sample)(props, props_valid, gt, batch["labels"], gt_valid, roi_keys)
  rois = jax.tree.map(jax.lax.stop_gradient, rois)

  # ------------------------------------------------------------------ box head
  pool = functools.partial(rcnn_inference.pool_rois, fpn=cfg.fpn, image_size=size,
                           roi_size=cfg.roi_size)
  roi_features = jax.vmap(lambda f, r: pool(list(f), r))(features, rois["rois"])
  cls_logits, box_deltas = model.apply(variables, roi_features, method="box_head")
  head = functools.partial(rcnn_losses.box_head_loss, weights=tuple(cfg.box_weights),
                           beta=cfg.box_beta)
  head_total, head_terms = jax.vmap(
      lambda c, d, r: head(c, d, r["rois"], r["labels"], r["matched_gt"], r["weight"]))(
          cls_logits, box_deltas, rois)

  share = 1.0 / (b * num_devices)          # mean over the global batch after psum
  loss = jnp.sum(rpn_total + head_total) * share
  terms = {k: jnp.sum(v) * share for k, v in {**rpn_terms, **head_terms}.items()
           if k in LOSS_TERMS}
  # Counts: this device's, summed over devices by the step's psum.
  terms["num_pos"] = jnp.sum(rpn_terms["num_pos"])
  terms["num_rois_fg"] = jnp.sum((rois["labels"] > 0) & (rois["weight"] > 0))
  terms["num_gt"] = jnp.sum(gt_valid)
  terms["anchor_counts"] = jnp.sum(rpn_terms["anchor_counts"], axis=0)   # [L * A]
  return loss, terms, new_stats
