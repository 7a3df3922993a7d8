"""Faster R-CNN inference: images -> proposals -> class-specific boxes -> NMS (one jit).

As Detectron2's test path: RPN proposals (``rcnn.rpn_pre_nms_test`` per level,
``rcnn.rpn_post_nms_test`` per image after NMS at ``rcnn.rpn_nms_iou``), RoIAlign, the box
head; each (RoI, class) pair is a candidate with its softmax probability and its class's
decoded box, clipped to the image; candidates above ``eval.score_thresh`` are kept, the
best ``rcnn.test_pre_nms`` of them go through class-wise NMS at ``eval.nms_iou`` (boxes of
different classes are offset apart so that one static-shape NMS never lets them suppress
each other), and the best ``eval.max_dets`` remain. The anchors come from the params, so
learned anchors are used as trained. Boxes are returned normalised to [0, 1], in the
``nms.NmsOutput`` layout the evaluators read, with the proposals for RPN recall.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from anchor_jax.core import proposals as proposals_lib
from anchor_jax.core import rcnn_boxes, roi_align
from anchor_jax.evaluation import nms as nms_lib

ROI_LEVELS_FPN = (2, 3, 4, 5)      # RoIs are pooled from P2-P5 (Detectron2)


def pool_rois(features, rois, *, fpn: bool, image_size: int, roi_size: int,
              sampling_ratio: int = 2):
  """RoIAlign of one image's ``rois`` [R, 4] (input px) -> [R, roi_size, roi_size, C].

  ``features``: the model's maps of one image, [H_l, W_l, C] each: P2-P6 with FPN (RoIs
  are pooled from P2-P5, the level picked by box size, Detectron2's rule), or C4 alone.
  """
  if not fpn:
    (c4,) = features
    return roi_align.roi_align(c4, rois, output_size=roi_size,
                               spatial_scale=c4.shape[0] / image_size,
                               sampling_ratio=sampling_ratio, aligned=True)
  lo, hi = ROI_LEVELS_FPN[0], ROI_LEVELS_FPN[-1]
  levels = roi_align.fpn_levels(rois, min_level=lo, max_level=hi)
  pooled = list(features[:len(ROI_LEVELS_FPN)])
  strides = [image_size // f.shape[0] for f in pooled]
  return roi_align.multilevel_roi_align(pooled, rois, levels - lo, strides,
                                        output_size=roi_size, sampling_ratio=sampling_ratio)


def split_levels(x, sizes):
  """[B, N, ...] -> list of [B, N_l, ...] along the anchor axis (``sizes`` = N_l)."""
  bounds = [0]
  for n in sizes:
    bounds.append(bounds[-1] + n)
  return [x[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def image_anchors(params, features, *, image_size: int, offset: float):
  """The anchors of every level for these feature maps -> ([N, 4] px, level_slot [N],
  the per-level counts N_l)."""
  anchor_log_wh = params["rpn"]["anchor_log_wh"]                 # [L, A, 2]
  feat_hws = [tuple(f.shape[1:3]) for f in features]
  strides = [image_size // h for h, _ in feat_hws]
  anchors, slot = rcnn_boxes.level_anchors(anchor_log_wh, feat_hws, strides, offset)
  sizes = [h * w * anchor_log_wh.shape[1] for h, w in feat_hws]
  return anchors, slot, sizes


def propose(logits, deltas, anchors, sizes, *, image_size: int, pre_nms_top_n: int,
            post_nms_top_n: int, nms_thresh: float):
  """Stop-gradient proposals of a batch -> (boxes [B, P, 4] px, scores [B, P], valid [B, P])."""
  fixed = jax.lax.stop_gradient(anchors)
  anchors_per_level = [a[0] for a in split_levels(fixed[None], sizes)]
  select = functools.partial(
      proposals_lib.select_proposals, image_hw=(image_size, image_size),
      pre_nms_top_n=pre_nms_top_n, post_nms_top_n=post_nms_top_n, nms_thresh=nms_thresh)
  logits = [jax.lax.stop_gradient(x) for x in logits]
  deltas = [jax.lax.stop_gradient(x) for x in deltas]
  return jax.vmap(lambda lg, dl: select(list(lg), list(dl), anchors_per_level))(logits, deltas)


def detect(model, params, batch_stats, images, *, rcnn, score_thresh: float, nms_iou: float,
           max_dets: int):
  """uint8 images [B, S, S, 3] -> (NmsOutput with boxes in [0, 1], proposals [B, P, 4] in
  [0, 1] sorted by score, proposal_valid [B, P])."""
  x = images.astype(jnp.float32) / 255.0
  size = x.shape[1]
  variables = {"params": params, "batch_stats": batch_stats}
  features = model.apply(variables, x, train=False, method="features")
  logits, deltas = model.apply(variables, features, method="rpn")
  anchors, _, sizes = image_anchors(params, features, image_size=size,
                                    offset=rcnn.anchor_offset)
  props, _, props_valid = propose(
      logits, deltas, anchors, sizes, image_size=size, pre_nms_top_n=rcnn.rpn_pre_nms_test,
      post_nms_top_n=rcnn.rpn_post_nms_test, nms_thresh=rcnn.rpn_nms_iou)
  pool = functools.partial(pool_rois, fpn=rcnn.fpn, image_size=size, roi_size=rcnn.roi_size)
  roi_features = jax.vmap(lambda f, r: pool(list(f), r))(features, props)
  cls_logits, box_deltas = model.apply(variables, roi_features, method="box_head")
  probs = jax.nn.softmax(cls_logits, axis=-1)[..., 1:]            # [B, R, C]
  b, r, c = probs.shape
  boxes = rcnn_boxes.decode(box_deltas, props[:, :, None, :], tuple(rcnn.box_weights))
  boxes = rcnn_boxes.clip_boxes(boxes, (size, size))              # [B, R, C, 4]
  ok = (probs > score_thresh) & props_valid[:, :, None]
  scores = jnp.where(ok, probs, -jnp.inf).reshape(b, r * c)       # RoI-major, class-minor
  k = min(rcnn.test_pre_nms, r * c)
  top_scores, top = jax.lax.top_k(scores, k)                      # [B, K]
  cand_boxes = jnp.take_along_axis(boxes.reshape(b, r * c, 4), top[..., None], axis=1)
  cand_class = (top % c).astype(jnp.int32)                        # [B, K]
  # Class-wise NMS as one NMS: boxes of class j are shifted by j * (S + 1) on both axes.
  shifted = cand_boxes + (cand_class * (size + 1)).astype(jnp.float32)[..., None]
  keep, keep_valid = jax.vmap(functools.partial(
      proposals_lib.nms_fixed, iou_threshold=nms_iou, max_out=max_dets))(shifted, top_scores)
  keep_valid = keep_valid & (jnp.take_along_axis(top_scores, keep, axis=1) > -jnp.inf)
  take = lambda a: jnp.take_along_axis(a, keep, axis=1)
  dets = nms_lib.NmsOutput(
      boxes=jnp.where(keep_valid[..., None],
                      jnp.take_along_axis(cand_boxes, keep[..., None], axis=1) / size, 0.0),
      scores=jnp.where(keep_valid, take(top_scores), 0.0),
      classes=jnp.where(keep_valid, take(cand_class), -1),
      valid=keep_valid,
      indices=jnp.where(keep_valid, take(top) // c, -1).astype(jnp.int32))
  return dets, props / size, props_valid
