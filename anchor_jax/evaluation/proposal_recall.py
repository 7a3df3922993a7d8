"""RPN recall: the share of ground-truth boxes covered by the top-k proposals.

For each image the proposals come sorted by objectness; a GT box counts as recalled at
(k, t) when one of the first k proposals has IoU >= t with it (each GT takes its best
proposal; a proposal may cover several GTs, as in the RPN recall curves of the Faster
R-CNN and FPN papers; COCO's and Detectron2's one-to-one matching differ slightly when
boxes crowd). Reported as fractions of all counted GT boxes (as AP50 in eval.jsonl):
``RPN_recall@k`` at IoU 0.5 and ``RPN_AR@k``, the mean over IoU 0.5:0.05:0.95.
Difficult GTs are not counted.
"""
from __future__ import annotations

import numpy as np

from anchor_jax.core import box_ops

TOP_K = (50, 100, 300)
IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)   # [10]


class ProposalRecall:
  """Accumulates per-GT best IoUs at each k over an eval pass."""

  def __init__(self, top_k=TOP_K):
    self.top_k = tuple(int(k) for k in top_k)
    self._best = {k: [] for k in self.top_k}    # k -> list of [G] best IoUs

  def add(self, gt_boxes, proposals, valid=None) -> None:
    """One image: gt_boxes [G, 4], proposals [P, 4] (same units, sorted by score),
    valid [P] bool (padding rows False)."""
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    props = np.asarray(proposals, np.float64).reshape(-1, 4)
    if valid is not None:
      props = props[np.asarray(valid, bool)]
    if gt.shape[0] == 0:
      return
    iou = box_ops.pairwise_iou(gt, props) if props.shape[0] else np.zeros((gt.shape[0], 0))
    for k in self.top_k:
      top = iou[:, :k]
      self._best[k].append(top.max(axis=1) if top.shape[1] else np.zeros(gt.shape[0]))

  def compute(self) -> dict:
    """-> {'RPN_recall@k': fraction, 'RPN_AR@k': fraction, 'num_gt': int} (no GT: 0)."""
    out = {}
    for k in self.top_k:
      best = np.concatenate(self._best[k]) if self._best[k] else np.zeros(0)
      if best.size == 0:
        out[f"RPN_recall@{k}"], out[f"RPN_AR@{k}"] = 0.0, 0.0
        continue
      hits = best[:, None] >= IOU_THRESHOLDS[None, :] - 1e-12       # [G, 10]
      out[f"RPN_recall@{k}"] = float(hits[:, 0].mean())
      out[f"RPN_AR@{k}"] = float(hits.mean())
    out["num_gt"] = int(sum(len(b) for b in self._best[self.top_k[0]]))
    return out
