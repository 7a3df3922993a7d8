"""Faster R-CNN assignment: IoU matching, balanced sampling, RoI sampling.

All static shapes, jit/vmap-safe, one image per call (vmap over the batch).
Nothing here is differentiated: callers pass ``stop_gradient`` boxes.

``match`` is Detectron2's ``Matcher`` (thresholds [neg, pos], labels [0, -1, 1],
``allow_low_quality_matches``) and torchvision's ``Matcher``: an anchor is
positive when its best IoU >= pos_thresh, negative when < neg_thresh, ignored
(-1) in between; with ``allow_low_quality`` every anchor whose IoU with a GT
equals that GT's best IoU is also positive (ties all kept), its matched GT stays
its own argmax (as both peers). Deviation: a GT whose best IoU is 0 makes no
low-quality match (the peers would mark every anchor with IoU 0 to it positive).
Padded GTs (``gt_valid`` False) never match; with no valid GT every anchor is
negative.

``sample`` is Detectron2's ``subsample_labels`` / torchvision's
``BalancedPositiveNegativeSampler``: min(#pos, int(num * pos_fraction))
positives and min(#neg, num - #pos sampled) negatives, uniformly at random,
the rest set to -1. Static shapes: each class is drawn by ``top_k`` of iid
uniform scores restricted to that class (a uniform random subset), so the
result is a pure function of ``key``.

``sample_rois`` is the box head's sampling (Detectron2
``ROIHeads.label_and_sample_proposals``, torchvision
``RoIHeads.select_training_samples``): GTs are appended to the proposals,
each row is matched to its best GT; foreground IoU >= fg_thresh, background
bg_thresh_lo <= IoU < bg_thresh_hi (Fast R-CNN's [0.1, 0.5) if
bg_thresh_lo = 0.1; the peers use 0), then ``sample``. Labels follow
torchvision: 0 = background, 1..C = GT class + 1 (``gt_labels`` are 0-based,
as everywhere in anchor_jax; Detectron2 uses C for background instead).
Sampled rows come foreground first, then background (Detectron2's order),
padded to ``num`` rows with weight 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from anchor_jax.core import box_ops


def match(iou, gt_valid, *, pos_thresh, neg_thresh, allow_low_quality=True):
  """[N, M] IoU, [M] bool -> (labels [N] int32 in {1, 0, -1}, matched [N] int32 GT index)."""
  iou = jnp.where(gt_valid[None, :], iou, -1.0)                   # padded GTs never match
  best = jnp.max(iou, axis=1)                                     # [N] (-1: no valid GT)
  matched = jnp.argmax(iou, axis=1).astype(jnp.int32)             # [N] first best
  labels = jnp.where(best >= pos_thresh, 1, jnp.where(best < neg_thresh, 0, -1))
  if allow_low_quality:
    best_per_gt = jnp.max(iou, axis=0)                            # [M]
    is_best = (iou == best_per_gt[None, :]) & (best_per_gt > 0)[None, :]  # [N, M]
    labels = jnp.where(jnp.any(is_best, axis=1), 1, labels)
  return labels.astype(jnp.int32), jnp.where(best >= 0, matched, 0)


def _draw(mask, key, k):
  """[N] bool -> (indices [k] of a uniform random subset of mask, drawn [k] bool)."""
  if k == 0:
    return jnp.zeros((0,), jnp.int32), jnp.zeros((0,), bool)
  scores = jnp.where(mask, jax.random.uniform(key, mask.shape), -1.0)
  top, idx = lax.top_k(scores, k)                                 # [k]
  return idx, top >= 0


def sample(labels, key, *, num, pos_fraction):
  """[N] labels in {1, 0, -1} -> [N] labels with the unsampled set to -1."""
  n = labels.shape[0]
  max_pos = int(num * pos_fraction)
  pos_key, neg_key = jax.random.split(key)
  pos_idx, pos_ok = _draw(labels == 1, pos_key, min(max_pos, n))
  num_pos = jnp.sum(pos_ok)
  neg_idx, neg_ok = _draw(labels == 0, neg_key, min(num, n))
  neg_ok &= jnp.arange(neg_idx.shape[0]) < num - num_pos
  out = jnp.full((n,), -1, jnp.int32)
  out = out.at[jnp.where(pos_ok, pos_idx, n)].set(1, mode="drop")  # index n: dropped
  return out.at[jnp.where(neg_ok, neg_idx, n)].set(0, mode="drop")


def sample_rois(proposals, proposal_valid, gt, gt_labels, gt_valid, key, *, num,
                pos_fraction, fg_thresh=0.5, bg_thresh_hi=0.5, bg_thresh_lo=0.0):
  """RoIs for the box head of one image.

  Args:
    proposals: [R, 4] xyxy; proposal_valid: [R] bool.
    gt: [M, 4] xyxy; gt_labels: [M] int 0-based class; gt_valid: [M] bool.
    key: PRNG key; num, pos_fraction: static sampling sizes.

  Returns:
    dict(rois [num, 4], labels [num] int32 (0 = background, 1..C),
    matched_gt [num, 4] (the matched GT box on foreground rows, else the RoI itself),
    weight [num] float32 (1 for sampled rows, 0 padding)).
  """
  boxes = jnp.concatenate([proposals, gt.astype(proposals.dtype)])  # [K = R + M, 4]
  valid = jnp.concatenate([proposal_valid, gt_valid])             # [K]
  iou = jnp.where(gt_valid[None, :], box_ops.pairwise_iou(boxes, gt), 0.0)  # [K, M]
  best = jnp.max(iou, axis=1)                                     # [K]
  matched = jnp.argmax(iou, axis=1)                               # [K]
  fg = valid & (best >= fg_thresh) & gt_valid[matched]
  bg = valid & ~fg & (best < bg_thresh_hi) & (best >= bg_thresh_lo)
  labels = sample(jnp.where(fg, 1, jnp.where(bg, 0, -1)), key, num=num,
                  pos_fraction=pos_fraction)                      # [K]
  k = boxes.shape[0]
  rank = jnp.where(labels == 1, 2, jnp.where(labels == 0, 1, 0))  # fg, then bg, then unused
  take = min(num, k)
  _, idx = lax.top_k(rank * (k + 1) - jnp.arange(k), take)        # [take], index order in class
  used = rank[idx] > 0
  is_fg = labels[idx] == 1
  cls = jnp.where(is_fg, gt_labels[matched[idx]] + 1, 0).astype(jnp.int32)
  rois = jnp.where(used[:, None], boxes[idx], 0.0)
  out = dict(rois=rois, labels=cls,
             matched_gt=jnp.where(is_fg[:, None], gt[matched[idx]].astype(rois.dtype), rois),
             weight=used.astype(jnp.float32))
  if take < num:
    pad = num - take
    out = {name: jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
           for name, x in out.items()}
  return out
