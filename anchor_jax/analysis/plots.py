"""Figure 2 of the paper: GT box shapes in log w - log h with anchors on top."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def anchor_figure(boxes_wh_px, anchor_sets: dict, path: str, *, title: str = "") -> str:
  """Writes a PNG: 2-D density of log(w), log(h) of the GT boxes (pixels at the
  training input size), marginal histograms, and one marker set per entry of
  ``anchor_sets`` ({label: [A, 2] anchors in pixels})."""
  wh = np.asarray(boxes_wh_px, np.float64)
  wh = wh[np.all(np.isfinite(wh) & (wh > 0), axis=1)]
  logw, logh = np.log(wh[:, 0]), np.log(wh[:, 1])
  fig = plt.figure(figsize=(6.4, 6.4))
  grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4),
                          hspace=0.05, wspace=0.05)
  ax = fig.add_subplot(grid[1, 0])
  top = fig.add_subplot(grid[0, 0], sharex=ax)
  right = fig.add_subplot(grid[1, 1], sharey=ax)
  all_pts = [np.log(np.asarray(a, np.float64)) for a in anchor_sets.values()] + [
      np.stack([logw, logh], 1)]
  lo = min(p.min() for p in all_pts if p.size) - 0.3
  hi = max(p.max() for p in all_pts if p.size) + 0.3
  ax.hist2d(logw, logh, bins=60, range=[[lo, hi], [lo, hi]], cmap="Greys", cmin=1)
  markers = ["o", "s", "^", "D", "v", "P", "X"]
  for (label, anchors), marker in zip(anchor_sets.items(), markers):
    a = np.log(np.asarray(anchors, np.float64))
    ax.scatter(a[:, 0], a[:, 1], marker=marker, s=70, edgecolor="k", label=label, zorder=3)
  ax.set_xlim(lo, hi)
  ax.set_ylim(lo, hi)
  ax.set_xlabel("log(w)  [w in pixels]")
  ax.set_ylabel("log(h)  [h in pixels]")
  ax.legend(loc="lower right", fontsize=8)
  top.hist(logw, bins=60, range=(lo, hi), color="0.5")
  right.hist(logh, bins=60, range=(lo, hi), color="0.5", orientation="horizontal")
  top.axis("off")
  right.axis("off")
  if title:
    top.set_title(title, fontsize=10)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return path
