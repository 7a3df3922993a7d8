"""Plain NumPy/Python reference implementations (loops, no vectorisation).

Written straight from the paper and darknet's region layer, independent of the
jnp code, so that tests can compare the two on random inputs.
"""
import math

import numpy as np

TERMS = ("xy", "wh", "obj", "noobj", "cls", "prior", "cluster")


def sigmoid(x):
  return 1.0 / (1.0 + math.exp(-x))


def iou(a, b):
  iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
  ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
  inter = iw * ih
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / union if union > 0 else 0.0


def shape_dist(aw, ah, gw, gh, metric):
  if metric == "iou":
    inter = min(aw, gw) * min(ah, gh)
    return 1.0 - inter / (aw * ah + gw * gh - inter)
  return (math.log(aw) - math.log(gw)) ** 2 + (math.log(ah) - math.log(gh)) ** 2


def gt_cell(box, grid_h, grid_w):
  cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
  col = min(max(int(math.floor(cx * grid_w)), 0), grid_w - 1)
  row = min(max(int(math.floor(cy * grid_h)), 0), grid_h - 1)
  return row, col


def assign(boxes, mask, anchors, grid_h, grid_w, temperature, metric="iou"):
  """-> list over images of {slot: (row, col, weights over anchors)}."""
  result = []
  for b in range(boxes.shape[0]):
    per_gt, owner = {}, {}
    for j in range(boxes.shape[1]):
      if not mask[b, j]:
        continue
      box = boxes[b, j]
      row, col = gt_cell(box, grid_h, grid_w)
      gw, gh = (box[2] - box[0]) * grid_w, (box[3] - box[1]) * grid_h
      dist = [shape_dist(aw, ah, gw, gh, metric) for aw, ah in anchors]
      if temperature > 0:
        e = [math.exp(-(d - min(dist)) / temperature) for d in dist]
        weights = [v / sum(e) for v in e]
      else:
        best = min(range(len(dist)), key=lambda i: (dist[i], i))
        weights = [float(i == best) for i in range(len(dist))]
        owner[(row, col, best)] = j     # darknet: the later GT overwrites
      per_gt[j] = (row, col, weights)
    if temperature <= 0:
      per_gt = {j: v for j, v in per_gt.items()
                if owner[(v[0], v[1], v[2].index(1.0))] == j}
    result.append(per_gt)
  return result


def yolo_loss(out, log_anchors, boxes, labels, mask, *, temperature, cluster_weight,
              prior_scale, coord_scale=1.0, object_scale=5.0, noobject_scale=1.0,
              class_scale=1.0, ignore_thresh=0.6, metric="iou"):
  out = np.asarray(out, np.float64)
  log_anchors = np.asarray(log_anchors, np.float64)
  anchors = np.exp(log_anchors)
  batch, grid_h, grid_w, num_anchors, _ = out.shape
  t = dict.fromkeys(TERMS, 0.0)
  cl_num = cl_den = 0.0

  def pred_box(b, row, col, i):
    v = out[b, row, col, i]
    cx, cy = (col + sigmoid(v[0])) / grid_w, (row + sigmoid(v[1])) / grid_h
    w = anchors[i, 0] * math.exp(v[2]) / grid_w
    h = anchors[i, 1] * math.exp(v[3]) / grid_h
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

  assignment = assign(boxes, mask, anchors, grid_h, grid_w, temperature, metric)
  for b in range(batch):
    resp = np.zeros((grid_h, grid_w, num_anchors))
    for j, (row, col, weights) in assignment[b].items():
      box = boxes[b, j]
      w, h = box[2] - box[0], box[3] - box[1]
      tx = (box[0] + box[2]) / 2 * grid_w - col
      ty = (box[1] + box[3]) / 2 * grid_h - row
      cw = coord_scale * (2 - w * h)
      for i, d in enumerate(weights):
        v = out[b, row, col, i]
        lgw, lgh = math.log(w * grid_w), math.log(h * grid_h)
        t["xy"] += 0.5 * d * cw * ((sigmoid(v[0]) - tx) ** 2 + (sigmoid(v[1]) - ty) ** 2)
        t["wh"] += 0.5 * d * cw * ((v[2] + log_anchors[i, 0] - lgw) ** 2
                             + (v[3] + log_anchors[i, 1] - lgh) ** 2)
        t["obj"] += 0.5 * d * object_scale * (sigmoid(v[4]) - iou(pred_box(b, row, col, i), box)) ** 2
        logits = v[5:]
        log_z = max(logits) + math.log(sum(math.exp(x - max(logits)) for x in logits))
        t["cls"] += d * class_scale * (log_z - logits[labels[b, j]])
        resp[row, col, i] += d
        cl_num += d * ((log_anchors[i, 0] - lgw) ** 2 + (log_anchors[i, 1] - lgh) ** 2)
        cl_den += d
    for row in range(grid_h):
      for col in range(grid_w):
        for i in range(num_anchors):
          v = out[b, row, col, i]
          free = 1 - min(1.0, resp[row, col, i])
          p = pred_box(b, row, col, i)
          best = max([iou(p, boxes[b, j]) for j in range(boxes.shape[1]) if mask[b, j]],
                     default=0.0)
          if best <= ignore_thresh:
            t["noobj"] += 0.5 * free * noobject_scale * sigmoid(v[4]) ** 2
          t["prior"] += 0.5 * free * prior_scale * ((sigmoid(v[0]) - 0.5) ** 2
                                              + (sigmoid(v[1]) - 0.5) ** 2
                                              + v[2] ** 2 + v[3] ** 2)
  for k in TERMS:
    t[k] /= batch
  t["cluster"] = cluster_weight * cl_num / (2 * cl_den) if cl_den else 0.0
  return sum(t.values()), t


def random_batch(rng, *, batch, max_boxes, grid, num_classes, collide=False, empty_prob=0.2):
  """Random padded GT batch: [B, M, 4] xyxy in [0, 1], labels, mask."""
  centre = rng.uniform(0.02, 0.98, (batch, max_boxes, 2))
  if collide:   # snap centres to a few cells so that GTs share cells and anchors
    centre = (rng.integers(0, grid, (batch, max_boxes, 2)) + 0.5) / grid
  wh = np.exp(rng.uniform(np.log(0.03), np.log(0.9), (batch, max_boxes, 2)))
  boxes = np.concatenate([centre - wh / 2, centre + wh / 2], -1)
  counts = rng.integers(0, max_boxes + 1, batch)
  counts[rng.uniform(size=batch) < empty_prob] = 0
  mask = np.arange(max_boxes)[None] < counts[:, None]
  labels = rng.integers(0, num_classes, (batch, max_boxes))
  boxes = np.where(mask[..., None], boxes, 0.0)
  return boxes.astype(np.float32), labels.astype(np.int32), mask


def _cxcywh_iou(a, b):
  """darknet's box_iou on (x, y, w, h) centre boxes."""
  return iou((a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2),
             (b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2))


def darknet_region_deltas(out, anchors, boxes, labels, mask, *, seen_before_12800,
                          coord_scale, object_scale, noobject_scale, class_scale, thresh,
                          rescore=True):
  """darknet's ``forward_region_layer`` (region_layer.c, YOLOv2), transcribed as loops.

  ``out`` [B, H, W, A, 5 + C] raw outputs, ``anchors`` [A, 2] (darknet's ``biases``, grid
  units), ``boxes`` [B, M, 4] xyxy in [0, 1] (darknet stores (x, y, w, h)), GT in slot
  order. Returns ``delta`` of the same shape: darknet's delta w.r.t. each *raw* output,
  i.e. its deltas on the logistic outputs (x, y, objectness) times the logistic gradient
  (``gradient_array(..., LOGISTIC, ...)``), its w, h deltas as written and its softmax
  class deltas. The gradient of a loss that matches darknet is ``-delta / B``.
  """
  out = np.asarray(out, np.float64)
  batch, grid_h, grid_w, num_anchors, depth = out.shape
  num_classes = depth - 5
  act = out.copy()                                  # darknet's l.output after activation
  for b, j, i, n in np.ndindex(batch, grid_h, grid_w, num_anchors):
    v = act[b, j, i, n]
    v[0], v[1], v[4] = sigmoid(out[b, j, i, n, 0]), sigmoid(out[b, j, i, n, 1]), sigmoid(
        out[b, j, i, n, 4])
    logits = out[b, j, i, n, 5:]
    e = [math.exp(x - max(logits)) for x in logits]
    v[5:] = [x / sum(e) for x in e]
  delta = np.zeros_like(out)

  def region_box(b, n, i, j):                       # get_region_box
    v = act[b, j, i, n]
    return ((i + v[0]) / grid_w, (j + v[1]) / grid_h,
            math.exp(out[b, j, i, n, 2]) * anchors[n][0] / grid_w,
            math.exp(out[b, j, i, n, 3]) * anchors[n][1] / grid_h)

  def delta_region_box(truth, b, n, i, j, scale):
    pred = region_box(b, n, i, j)
    box_iou = _cxcywh_iou(pred, truth)
    tx, ty = truth[0] * grid_w - i, truth[1] * grid_h - j
    tw = math.log(truth[2] * grid_w / anchors[n][0])
    th = math.log(truth[3] * grid_h / anchors[n][1])
    d = delta[b, j, i, n]
    d[0] = scale * (tx - act[b, j, i, n, 0])
    d[1] = scale * (ty - act[b, j, i, n, 1])
    d[2] = scale * (tw - out[b, j, i, n, 2])
    d[3] = scale * (th - out[b, j, i, n, 3])
    return box_iou

  for b in range(batch):
    truths = []
    for t in range(boxes.shape[1]):
      if mask[b, t]:
        x0, y0, x1, y1 = boxes[b, t]
        truths.append(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, int(labels[b, t])))
    for j in range(grid_h):
      for i in range(grid_w):
        for n in range(num_anchors):
          pred = region_box(b, n, i, j)
          best_iou = max([_cxcywh_iou(pred, truth[:4]) for truth in truths], default=0.0)
          delta[b, j, i, n, 4] = noobject_scale * (0 - act[b, j, i, n, 4])
          if best_iou > thresh:
            delta[b, j, i, n, 4] = 0
          if seen_before_12800:
            truth = ((i + .5) / grid_w, (j + .5) / grid_h, anchors[n][0] / grid_w,
                     anchors[n][1] / grid_h)
            delta_region_box(truth, b, n, i, j, .01)
    for truth in truths:
      i, j = int(truth[0] * grid_w), int(truth[1] * grid_h)
      best_iou, best_n = 0.0, 0
      for n in range(num_anchors):                  # bias_match: the anchor shape alone
        shape_iou = _cxcywh_iou((0, 0, anchors[n][0] / grid_w, anchors[n][1] / grid_h),
                                (0, 0, truth[2], truth[3]))
        if shape_iou > best_iou:
          best_iou, best_n = shape_iou, n
      box_iou = delta_region_box(truth[:4], b, best_n, i, j,
                                 coord_scale * (2 - truth[2] * truth[3]))
      target = box_iou if rescore else 1.0
      delta[b, j, i, best_n, 4] = object_scale * (target - act[b, j, i, best_n, 4])
      for c in range(num_classes):                  # delta_region_class, softmax
        delta[b, j, i, best_n, 5 + c] = class_scale * (
            (c == truth[4]) - act[b, j, i, best_n, 5 + c])
  logistic = act[..., [0, 1, 4]] * (1 - act[..., [0, 1, 4]])
  delta[..., [0, 1, 4]] *= logistic
  return delta
