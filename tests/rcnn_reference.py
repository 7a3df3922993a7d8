"""Plain Python/NumPy references for the Faster R-CNN core (loops, no vectorisation).

Written from the descriptions of torchvision's and Detectron2's RPN / RoI heads, independent
of the jnp code in anchor_jax/core/rcnn_*.py, proposals.py and roi_align.py.
"""
import math

import numpy as np

from tests.reference import iou


def grid_anchors(log_wh, feat_hw, stride, offset):
  """[A, 2], (H, W) -> list of [x0, y0, x1, y1] in [H, W, A] order."""
  out = []
  for i in range(feat_hw[0]):
    for j in range(feat_hw[1]):
      for lw, lh in log_wh:
        w, h = math.exp(lw), math.exp(lh)
        cx, cy = (j + offset) * stride, (i + offset) * stride
        out.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
  return np.asarray(out)


def encode(g, a, weights):
  wx, wy, ww, wh = weights
  aw, ah = a[2] - a[0], a[3] - a[1]
  gw, gh = g[2] - g[0], g[3] - g[1]
  acx, acy = a[0] + aw / 2, a[1] + ah / 2
  gcx, gcy = g[0] + gw / 2, g[1] + gh / 2
  return [wx * (gcx - acx) / aw, wy * (gcy - acy) / ah,
          ww * math.log(gw / aw), wh * math.log(gh / ah)]


def iou_matrix(a, b):
  return np.asarray([[iou(x, y) for y in b] for x in a]).reshape(len(a), len(b))


def match(ious, gt_valid, pos_thresh, neg_thresh, allow_low_quality=True):
  """-> (labels, matched) lists: Detectron2's Matcher with [neg, pos] thresholds."""
  n, m = ious.shape
  valid = [j for j in range(m) if gt_valid[j]]
  labels, matched = [], []
  for i in range(n):
    if not valid:
      labels.append(0)
      matched.append(0)
      continue
    best_j = max(valid, key=lambda j: (ious[i, j], -j))
    best = ious[i, best_j]
    labels.append(1 if best >= pos_thresh else (0 if best < neg_thresh else -1))
    matched.append(best_j)
  if allow_low_quality:
    for j in valid:
      top = max(ious[i, j] for i in range(n))
      if top > 0:
        for i in range(n):
          if ious[i, j] == top:
            labels[i] = 1
  return labels, matched


def smooth_l1(x, beta):
  return 0.5 * x * x / beta if abs(x) < beta else abs(x) - 0.5 * beta


def bce(logit, y):
  p = 1.0 / (1.0 + math.exp(-logit))
  return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def roi_labels(proposals, proposal_valid, gt, gt_labels, gt_valid, fg_thresh, bg_hi, bg_lo):
  """-> per row of proposals + gt: (label 1/0/-1, matched GT, class 1..C or 0)."""
  boxes = list(proposals) + list(gt)
  valid = list(proposal_valid) + list(gt_valid)
  out = []
  for box, ok in zip(boxes, valid):
    ious = [iou(box, g) if gv else 0.0 for g, gv in zip(gt, gt_valid)]
    j = int(np.argmax(ious))
    best = ious[j]
    if ok and best >= fg_thresh and gt_valid[j]:
      out.append((1, j, int(gt_labels[j]) + 1))
    elif ok and bg_lo <= best < bg_hi:
      out.append((0, j, 0))
    else:
      out.append((-1, j, 0))
  return out


def rpn_loss(logits, deltas, log_wh, anchors, slot, gt, labels, matched, beta, cluster_weight):
  """torchvision's RPN loss with the paper's wh targets; labels already sampled."""
  sampled = [i for i, lab in enumerate(labels) if lab >= 0]
  pos = [i for i, lab in enumerate(labels) if lab == 1]
  norm = max(len(sampled), 1)
  obj = sum(bce(logits[i], 1.0 if labels[i] == 1 else 0.0) for i in sampled) / norm
  box, cluster = 0.0, 0.0
  for i in pos:
    g = gt[matched[i]]
    tx, ty, _, _ = encode(g, anchors[i], (1, 1, 1, 1))
    lw, lh = math.log(g[2] - g[0]), math.log(g[3] - g[1])
    aw, ah = log_wh[slot[i]]
    target = [tx, ty, lw - aw, lh - ah]
    box += sum(smooth_l1(deltas[i][k] - target[k], beta) for k in range(4))
    cluster += (aw - lw) ** 2 + (ah - lh) ** 2
  cluster = cluster_weight * cluster / (2 * len(pos)) if pos else 0.0
  return obj, box / norm, cluster


def box_head_loss(cls_logits, deltas, rois, labels, matched_gt, weight, weights, beta):
  norm = max(sum(weight), 1.0)
  cls, box = 0.0, 0.0
  for r in range(len(labels)):
    if not weight[r]:
      continue
    z = cls_logits[r]
    cls -= z[labels[r]] - (max(z) + math.log(sum(math.exp(v - max(z)) for v in z)))
    if labels[r] > 0:
      target = encode(matched_gt[r], rois[r], weights)
      box += sum(smooth_l1(deltas[r][labels[r] - 1][k] - target[k], beta) for k in range(4))
  return cls / norm, box / norm


def bilinear(feat, y, x):
  """torchvision's bilinear_interpolate on [H, W, C]."""
  h, w = feat.shape[:2]
  if y < -1.0 or y > h or x < -1.0 or x > w:
    return np.zeros(feat.shape[-1])
  y, x = max(y, 0.0), max(x, 0.0)
  y_lo, x_lo = int(y), int(x)
  if y_lo >= h - 1:
    y_lo = y_hi = h - 1
    y = float(y_lo)
  else:
    y_hi = y_lo + 1
  if x_lo >= w - 1:
    x_lo = x_hi = w - 1
    x = float(x_lo)
  else:
    x_hi = x_lo + 1
  ly, lx = y - y_lo, x - x_lo
  hy, hx = 1 - ly, 1 - lx
  return (hy * hx * feat[y_lo, x_lo] + hy * lx * feat[y_lo, x_hi]
          + ly * hx * feat[y_hi, x_lo] + ly * lx * feat[y_hi, x_hi])


def roi_align(feat, boxes, output_size, spatial_scale, sampling_ratio, aligned):
  """torchvision's roi_align (CPU kernel) as loops, channels last."""
  off = 0.5 if aligned else 0.0
  out = np.zeros((len(boxes), output_size, output_size, feat.shape[-1]))
  for r, box in enumerate(boxes):
    x0, y0 = box[0] * spatial_scale - off, box[1] * spatial_scale - off
    w, h = box[2] * spatial_scale - off - x0, box[3] * spatial_scale - off - y0
    if not aligned:
      w, h = max(w, 1.0), max(h, 1.0)
    bin_w, bin_h = w / output_size, h / output_size
    g = sampling_ratio
    for ph in range(output_size):
      for pw in range(output_size):
        acc = np.zeros(feat.shape[-1])
        for iy in range(g):
          y = y0 + ph * bin_h + (iy + 0.5) * bin_h / g
          for ix in range(g):
            x = x0 + pw * bin_w + (ix + 0.5) * bin_w / g
            acc += bilinear(feat, y, x)
        out[r, ph, pw] = acc / (g * g)
  return out


def fpn_level(box, min_level, max_level, canonical_size=224, canonical_level=4):
  size = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
  level = math.floor(canonical_level + math.log2(size / canonical_size + 1e-8))
  return min(max(level, min_level), max_level) - min_level


def greedy_nms(boxes, scores, iou_threshold):
  """torchvision's nms: indices kept, by score descending (ties: lower index first)."""
  order = sorted((i for i in range(len(scores)) if np.isfinite(scores[i])
                  and np.all(np.isfinite(boxes[i]))), key=lambda i: (-scores[i], i))
  kept = []
  for i in order:
    if all(iou(boxes[i], boxes[j]) <= iou_threshold for j in kept):
      kept.append(i)
  return kept


def decode(d, a):
  """RPN weights (1, 1, 1, 1), Detectron2's scale clamp."""
  aw, ah = a[2] - a[0], a[3] - a[1]
  cx, cy = a[0] + aw / 2 + d[0] * aw, a[1] + ah / 2 + d[1] * ah
  w = aw * math.exp(min(d[2], math.log(1000 / 16)))
  h = ah * math.exp(min(d[3], math.log(1000 / 16)))
  return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def select_proposals(logits, deltas, anchors, image_hw, pre, post, thresh, min_size):
  """Detectron2's find_top_rpn_proposals for one image, with its offset batched NMS."""
  h, w = image_hw
  boxes, scores, lvl = [], [], []
  for level, (lg, dl, an) in enumerate(zip(logits, deltas, anchors)):
    for i in sorted(range(len(lg)), key=lambda i: (-lg[i], i))[:pre]:
      x0, y0, x1, y1 = decode(dl[i], an[i])
      box = [min(max(x0, 0), w), min(max(y0, 0), h), min(max(x1, 0), w), min(max(y1, 0), h)]
      if box[2] - box[0] > min_size and box[3] - box[1] > min_size:
        boxes.append(box)
        scores.append(lg[i])
        lvl.append(level)
  offset = max(h, w) + 1
  shifted = [[c + lv * offset for c in b] for b, lv in zip(boxes, lvl)]
  kept = greedy_nms(np.asarray(shifted).reshape(-1, 4), np.asarray(scores), thresh)[:post]
  return np.asarray([boxes[i] for i in kept]).reshape(-1, 4), np.asarray([scores[i] for i in kept])
