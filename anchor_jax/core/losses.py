"""The YOLOv2 loss with learnable anchors (paper §3; darknet region_layer.c).

``yolo_loss`` is a pure function of arrays. The anchors enter as an argument
(``anchor_log_wh``, the model's ``params['head']['anchor_log_wh']``) and get
gradient only through the wh term (Eq. 3/9) and the clustering term (Eq. 11-12):
the assignment, the rescore target and the ignore mask are stop-gradient.

Baseline (fixed anchors) runs this very graph; the optimiser gives the anchors
a zero update (``optim.py``), so the two runs differ in nothing else.

Per GT j and anchor i of the GT's cell, weighted by the assignment delta_ij and
summed, then averaged over the batch (darknet divides the summed gradient by
the batch size). The squared terms carry a factor 1/2, so that the gradient of the loss
w.r.t. every raw output is exactly darknet's delta (region_layer.c: ``scale * (target -
sigma(t)) * sigma'(t)`` for x, y and objectness, ``scale * (target - t)`` for w, h),
sign flipped and divided by the batch; the class cross-entropy (softmax, ``p - y``) and
the clustering term have none. The wh term is the paper's Eq. 3 up to that 1/2, so its
anchor gradient is Eq. 9 up to the same factor, which the learning rate absorbs:

  xy    0.5 coord_scale (2 - w_j h_j) [(sig(t_x) - x_j)^2 + (sig(t_y) - y_j)^2]
  wh    0.5 coord_scale (2 - w_j h_j) [(t_w + log a_w - log g_w)^2 + (t_h + log a_h - log g_h)^2]
  obj   0.5 object_scale (sig(t_o) - IoU(pred_i, g_j))^2       (rescore; 1 without)
  cls   class_scale  cross-entropy(softmax logits, label_j)

and per prediction p, weighted by 1 - r_p where r_p = min(1, sum of delta on p):

  noobj 0.5 noobject_scale sig(t_o)^2, skipped where the predicted box has IoU >
        ignore_thresh with some GT
  prior 0.5 prior_scale [(sig(t_x) - .5)^2 + (sig(t_y) - .5)^2 + t_w^2 + t_h^2]
        (darknet pulls every prediction to its anchor for the first 12,800
        images; the caller passes prior_scale = 0 afterwards)

plus the online-clustering warm-up (Eq. 11-12), not divided by the batch:

  cluster  cluster_weight / (2 N) sum_ij delta_ij [(log a_w - log g_w)^2 + (log a_h - log g_h)^2],
           N = sum_ij delta_ij.

w_j, h_j are GT sizes as fractions of the image; a, g are in grid-cell units.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from anchor_jax.core import assign as assign_lib
from anchor_jax.core import box_ops, region
from anchor_jax.core import gt as gt_lib

LOSS_TERMS = ("xy", "wh", "obj", "noobj", "cls", "prior", "cluster")


def _gather_cells(x, cell):
  """[B, H*W, A, D], [B, M] -> [B, M, A, D]: the A predictions of each GT's cell."""
  return jnp.take_along_axis(x, cell[:, :, None, None], axis=1)


def yolo_loss(outputs, anchor_log_wh, gt_boxes, gt_labels, gt_mask, *,
              temperature=0.0, cluster_weight=0.0, prior_scale=0.0,
              coord_scale=1.0, object_scale=5.0, noobject_scale=1.0,
              class_scale=1.0, ignore_thresh=0.6, rescore=True,
              assign_metric="iou", axis_name=None):
  """YOLOv2 loss for one batch; see the module docstring for every term.

  Args:
    outputs: [B, H, W, A, 5 + C] raw network outputs.
    anchor_log_wh: [A, 2] log anchor (w, h), grid-cell units.
    gt_boxes: [B, M, 4] xyxy in [0, 1]; gt_labels: [B, M] int; gt_mask: [B, M].
      Masked, non-finite, non-positive-size or out-of-range-label slots are
      ignored and counted in ``terms['num_invalid_gt']``.
    temperature, cluster_weight, prior_scale: scalars (schedule values; may be
      traced, so annealing never recompiles). temperature 0 = hard assignment.
    axis_name: under ``pmap``, the device axis. The batch size B and the
      clustering normaliser N are then summed over devices, so each device
      returns its *share* of the global loss: summing shares (and their
      gradients) over devices gives exactly the single-device loss of the
      global batch.

  Returns:
    (total, terms): total scalar loss; terms holds each term of LOSS_TERMS
    (already scaled, summed into total) and diagnostics: ``num_gt``,
    ``num_invalid_gt``, ``avg_iou`` (mean rescore IoU of assigned
    predictions) and ``anchor_counts`` [A] (assignment mass per anchor).
  """
  batch, grid_h, grid_w, num_anchors, depth = outputs.shape
  num_classes = depth - 5
  boxes, labels, valid, num_invalid = gt_lib.sanitize_gt(
      gt_boxes, gt_labels, gt_mask, num_classes=num_classes)
  a = assign_lib.assign(boxes, valid, anchor_log_wh, grid_hw=(grid_h, grid_w),
                        temperature=temperature, metric=assign_metric)
  delta = a.delta                                                  # [B, M, A]

  # ---- Per (GT, anchor of its cell) terms. ----
  per_cell = outputs.reshape(batch, grid_h * grid_w, num_anchors, depth)
  t = _gather_cells(per_cell, a.cell)                              # [B, M, A, D]
  wh_frac = box_ops.xyxy_to_cxcywh(boxes)[..., 2:]                 # [B, M, 2]
  coord_w = coord_scale * (2.0 - wh_frac[..., 0] * wh_frac[..., 1])  # [B, M]

  xy_err = jax.nn.sigmoid(t[..., 0:2]) - a.target_xy[:, :, None, :]
  # Eq. 3: the anchors' gradient path (Eq. 9).
  wh_err = t[..., 2:4] + anchor_log_wh - a.gt_log_wh[:, :, None, :]  # [B, M, A, 2]
  xy = 0.5 * jnp.sum(delta * coord_w[..., None] * jnp.sum(xy_err ** 2, -1))
  wh = 0.5 * jnp.sum(delta * coord_w[..., None] * jnp.sum(wh_err ** 2, -1))

  pred = region.decode_boxes(outputs, anchor_log_wh)               # [B, H, W, A, 4]
  pred_cells = pred.reshape(batch, grid_h * grid_w, num_anchors, 4)
  iou = box_ops.iou(_gather_cells(pred_cells, a.cell), boxes[:, :, None, :])
  iou = jax.lax.stop_gradient(iou)                                 # [B, M, A]
  obj_target = iou if rescore else jnp.ones_like(iou)
  obj = 0.5 * object_scale * jnp.sum(delta * (jax.nn.sigmoid(t[..., 4]) - obj_target) ** 2)

  log_p = jax.nn.log_softmax(t[..., 5:], axis=-1)                  # [B, M, A, C]
  nll = -jnp.take_along_axis(log_p, labels[:, :, None, None], axis=-1)[..., 0]
  cls = class_scale * jnp.sum(delta * nll)

  # ---- Per prediction terms. ----
  flat = outputs.reshape(batch, -1, depth)                         # [B, N, D]
  free = 1.0 - a.responsible                                       # [B, N]
  ignored = assign_lib.ignore_mask(pred.reshape(batch, -1, 4), boxes, valid,
                                   thresh=ignore_thresh)
  noobj = 0.5 * noobject_scale * jnp.sum(
      free * (~ignored) * jax.nn.sigmoid(flat[..., 4]) ** 2)
  prior_err = (jnp.sum((jax.nn.sigmoid(flat[..., 0:2]) - 0.5) ** 2, -1)
               + jnp.sum(flat[..., 2:4] ** 2, -1))
  prior = 0.5 * prior_scale * jnp.sum(free * prior_err)

  # ---- Online clustering (Eq. 11-12). ----
  mass = jnp.sum(delta)
  norm_batch = batch
  if axis_name is not None:
    mass = jax.lax.psum(mass, axis_name)
    norm_batch = jax.lax.psum(batch, axis_name)
  sq = jnp.sum((anchor_log_wh - a.gt_log_wh[:, :, None, :]) ** 2, -1)  # [B, M, A]
  cluster = cluster_weight * jnp.sum(delta * sq) / (2.0 * jnp.maximum(mass, 1e-9))

  terms = {
      "xy": xy, "wh": wh, "obj": obj, "noobj": noobj, "cls": cls, "prior": prior,
  }
  terms = {k: v / norm_batch for k, v in terms.items()}
  terms["cluster"] = cluster
  total = sum(terms[k] for k in LOSS_TERMS)
  terms.update(
      num_gt=jnp.sum(valid), num_invalid_gt=num_invalid,
      avg_iou=jnp.sum(delta * iou) / jnp.maximum(mass, 1e-9),
      anchor_counts=jnp.sum(delta, axis=(0, 1)))
  return total, terms
