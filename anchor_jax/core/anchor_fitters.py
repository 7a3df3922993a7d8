"""The anchors other tools give their users, for Baseline rows beside the paper's inits.

Each is written from its published description (not from the tools' code):

* ``calc_anchors_darknet``: darknet's ``detector calc_anchors`` (AlexeyAB's fork,
  ``do_kmeans``): Lloyd k-means on the boxes' (w, h) in network-input pixels, from k
  boxes drawn at random, until the assignments stop changing (at most 1000 rounds); an
  emptied centre keeps its place. Its distance is ``1 - IoU`` of the two shapes (the
  fork's ``dist``; pjreddie's original matrix k-means is Euclidean, ``distance=
  'euclidean'``). It differs from ``anchors.kmeans_iou`` in its start (one random draw,
  not the best of three k-means++ seedings) and in keeping empty centres.
* ``autoanchor_yolov5``: ultralytics YOLOv5's AutoAnchor (``utils/autoanchor.py``): boxes
  smaller than 2 px on both sides are left out; k-means on the whitened (w, h) (each
  column divided by its standard deviation), then a genetic evolution that multiplies the
  anchors by random factors and keeps a mutation when it raises the fitness: the mean over
  boxes of the best anchor's ratio score, counted only where it passes the 4.0 threshold.

The ratio score of a box and an anchor is ``min(r, 1/r)`` of the worse of its width and
height ratios (``ratio_score``); a box is "recalled" when some anchor scores above
``1 / thr`` (YOLOv5's best possible recall; ``thr = 4``: both sides within 4x).

Shapes are [N, 2] (w, h) and anchors [k, 2], in any one unit (pixels here); NumPy only.
"""
from __future__ import annotations

import numpy as np

from anchor_jax.core.box_ops import clean_shapes, sort_by_area

YOLOV5_THRESHOLD = 4.0       # anchor_t: a box and an anchor within 4x on both sides
YOLOV5_GENERATIONS = 1000    # evolution steps
YOLOV5_MUTATION_PROB = 0.9   # chance that each anchor coordinate is mutated in a step
YOLOV5_MUTATION_SIGMA = 0.1  # std of the multiplicative mutation
YOLOV5_MIN_PX = 2.0          # boxes under this on both sides are left out; anchors floored
KMEANS_MAX_ITER = 1000
YOLOV5_KMEANS_STARTS = 30  # scipy.cluster.vq.kmeans(iter=30): restarts, best distortion kept


def ratio_score(wh, anchors) -> np.ndarray:
  """[N, 2] boxes, [k, 2] anchors -> [N, k]: min over (w, h) of min(r, 1/r), r = box / anchor."""
  r = np.asarray(wh, np.float64)[:, None, :] / np.asarray(anchors, np.float64)[None]
  return np.minimum(r, 1.0 / r).min(axis=2)


def ratio_recall(wh, anchors, *, thr: float = YOLOV5_THRESHOLD) -> float:
  """Share of boxes with some anchor within ``thr`` on both sides (YOLOv5's BPR)."""
  wh, _ = clean_shapes(wh)
  return float(np.mean(ratio_score(wh, anchors).max(axis=1) > 1.0 / thr))


def yolov5_fitness(wh, anchors, *, thr: float = YOLOV5_THRESHOLD) -> float:
  """Mean over boxes of the best anchor's ratio score, 0 where it fails the threshold."""
  best = ratio_score(wh, anchors).max(axis=1)
  return float(np.mean(best * (best > 1.0 / thr)))


def _distances(points, centres, distance: str) -> np.ndarray:
  """[N, 2] x [k, 2] -> [N, k]: Euclidean, or 1 - IoU of the shapes centred together."""
  if distance == "euclidean":
    return np.sqrt(((points[:, None, :] - centres[None]) ** 2).sum(-1))
  if distance == "iou":
    inter = np.minimum(points[:, None, 0], centres[None, :, 0]) * np.minimum(
        points[:, None, 1], centres[None, :, 1])
    union = points[:, None].prod(-1) + centres[None].prod(-1) - inter
    return 1.0 - inter / union
  raise ValueError(f"distance must be 'euclidean' or 'iou', got {distance!r}")


def _kmeans(points, k: int, rng, *, distance: str = "euclidean",
            max_iter: int = KMEANS_MAX_ITER):
  """Lloyd k-means from k points drawn at random (repeats when the data has fewer), mean
  updates; an emptied centre keeps its place. -> (centres [k, 2], mean distance)."""
  centres = points[rng.permutation(len(points))[:k]].astype(np.float64)
  if len(centres) < k:
    centres = np.concatenate([centres, centres[rng.integers(len(centres), size=k - len(centres))]])
  owner = None
  for _ in range(max_iter):
    new_owner = _distances(points, centres, distance).argmin(axis=1)
    if owner is not None and np.array_equal(new_owner, owner):
      break
    owner = new_owner
    for c in range(k):
      members = points[owner == c]
      if len(members):
        centres[c] = members.mean(axis=0)
  return centres, float(_distances(points, centres, distance).min(axis=1).mean())


def calc_anchors_darknet(wh, k: int, *, seed: int = 0, distance: str = "iou") -> np.ndarray:
  """darknet's ``calc_anchors``: k-means on (w, h) with ``1 - IoU`` (or ``euclidean``)
  distance from one random start, sorted by area. [k, 2]."""
  wh, _ = clean_shapes(wh)
  if not len(wh):
    raise ValueError("calc_anchors: no valid box shapes")
  return sort_by_area(_kmeans(wh, k, np.random.default_rng(seed), distance=distance)[0])


def autoanchor_yolov5(wh, k: int, *, seed: int = 0, thr: float = YOLOV5_THRESHOLD,
                      generations: int = YOLOV5_GENERATIONS) -> np.ndarray:
  """YOLOv5 AutoAnchor: whitened k-means, then genetic evolution of ``yolov5_fitness``.
  [k, 2] sorted by area, never below ``YOLOV5_MIN_PX``."""
  wh, _ = clean_shapes(wh)
  wh = wh[(wh >= YOLOV5_MIN_PX).any(axis=1)]
  if not len(wh):
    raise ValueError(f"autoanchor: no box of {YOLOV5_MIN_PX} px or more")
  rng = np.random.default_rng(seed)
  sigma = wh.std(axis=0)
  sigma = np.where(sigma > 0, sigma, 1.0)
  # scipy's kmeans(obs, k, iter=30), which YOLOv5 calls: the best of 30 random starts.
  runs = [_kmeans(wh / sigma, k, rng) for _ in range(YOLOV5_KMEANS_STARTS)]
  anchors = min(runs, key=lambda run: run[1])[0] * sigma
  best = yolov5_fitness(wh, anchors, thr=thr)
  for _ in range(generations):
    factors = np.ones_like(anchors)
    while (factors == 1).all():    # mutate at least one coordinate
      mutate = rng.random(anchors.shape) < YOLOV5_MUTATION_PROB
      factors = (mutate * rng.random() * rng.standard_normal(anchors.shape)
                 * YOLOV5_MUTATION_SIGMA + 1).clip(0.3, 3.0)
    candidate = (anchors * factors).clip(min=YOLOV5_MIN_PX)
    fitness = yolov5_fitness(wh, candidate, thr=thr)
    if fitness > best:
      best, anchors = fitness, candidate
  return sort_by_area(anchors)
