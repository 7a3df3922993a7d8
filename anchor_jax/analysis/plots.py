"""Figures of anchors over box shapes (the paper's Figure 2), and the style every anchor
figure shares (``anchors.png`` at the end of training, ``inspect/*.png``, the notebook).

Widths and heights are plotted in input pixels on log-scaled axes whose ticks are
labelled in pixels (2^k: 8, 16, 32 ...; also 1.5 x 2^k when the range spans few
octaves), so a size can be read off the figure; titles name the dataset, input size and
step (``run_title``); legends sit outside the axes (``legend_outside``), never on the data.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

HIST_BINS = 60          # bins per axis of the box-shape density
MARGIN = math.exp(0.3)  # padding factor around the plotted shapes
FEW_OCTAVES = 4         # a narrower range also gets ticks at 1.5 x 2^k
FIG_DPI = 110
X_LABEL = "width (px, log scale)"
Y_LABEL = "height (px, log scale)"
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def dataset_label(config) -> str:
  """'synthetic:mixed', 'voc', ...: the dataset name (and the synthetic preset)."""
  d = config.dataset
  return d.name + (f":{d.preset}" if d.name == "synthetic" else "")


def run_title(config, what: str, *, steps: str) -> str:
  """'<what> - <dataset> at <size> px input, <steps>' (``steps``: 'step 4', 'steps 0-4')."""
  return f"{what} - {dataset_label(config)} at {config.input.image_size} px input, {steps}"


def _shapes(points) -> np.ndarray:
  """[N, 2] finite, positive (w, h) rows of ``points``."""
  p = np.asarray(points, np.float64).reshape(-1, 2)
  return p[np.all(np.isfinite(p) & (p > 0), axis=1)]


def pixel_limits(*point_sets) -> tuple:
  """(lo, hi) in pixels around every (w, h) of the sets, one square range for both axes."""
  pts = np.concatenate([_shapes(p) for p in point_sets])
  return float(pts.min() / MARGIN), float(pts.max() * MARGIN)


def _pixel_label(value, _pos=None) -> str:
  return f"{value:g}"


def pixel_ticks(axis, lo: float, hi: float) -> None:
  """Ticks of a log-2 axis (``ax.xaxis`` / ``ax.yaxis``) over [lo, hi] px: plain pixel
  labels at 2^k (and 1.5 x 2^k over fewer than FEW_OCTAVES octaves); no minor ticks."""
  subs = (1.0,) if math.log2(hi / lo) >= FEW_OCTAVES else (1.0, 1.5)
  axis.set_major_locator(ticker.LogLocator(base=2, subs=subs))
  axis.set_major_formatter(ticker.FuncFormatter(_pixel_label))
  axis.set_minor_locator(ticker.NullLocator())


def pixel_log_axes(ax, lo: float, hi: float) -> None:
  """Both axes of a w-h plot on [lo, hi] px, log scale, pixel tick labels."""
  ax.set_xscale("log", base=2)
  ax.set_yscale("log", base=2)
  ax.set_xlim(lo, hi)
  ax.set_ylim(lo, hi)
  for axis in (ax.xaxis, ax.yaxis):
    pixel_ticks(axis, lo, hi)
  ax.set_xlabel(X_LABEL)
  ax.set_ylabel(Y_LABEL)


def log_bins(lo: float, hi: float, num: int = HIST_BINS) -> np.ndarray:
  """``num`` bins equally wide on the log axes over [lo, hi] (num + 1 edges)."""
  return np.geomspace(lo, hi, num + 1)


def density(ax, boxes_px, lo: float, hi: float) -> None:
  """Grey 2-D histogram of the box shapes on pixel log axes over [lo, hi]^2."""
  wh = _shapes(boxes_px)
  edges = log_bins(lo, hi)
  ax.hist2d(wh[:, 0], wh[:, 1], bins=[edges, edges], cmap="Greys", cmin=1)
  pixel_log_axes(ax, lo, hi)


def legend_outside(ax, **kwargs):
  """The legend of ``ax`` to the right of it (top-aligned), off the data."""
  options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0,
             "fontsize": 8}
  return ax.legend(**{**options, **kwargs})


def save(fig, path: str) -> str:
  """Writes ``fig`` as a PNG (legends outside included) and closes it."""
  fig.savefig(path, dpi=FIG_DPI, bbox_inches="tight")
  plt.close(fig)
  return path


def anchor_axes_figure(boxes_wh_px, anchor_sets: dict, *, title: str = ""):
  """The figure of ``anchor_figure`` (returned, not saved, so tests can read its axes;
  its first axes is the main w-h plot)."""
  wh = _shapes(boxes_wh_px)
  lo, hi = pixel_limits(wh, *anchor_sets.values())
  fig = plt.figure(figsize=(6.4, 6.4))
  grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4),
                          hspace=0.05, wspace=0.05)
  ax = fig.add_subplot(grid[1, 0])
  top = fig.add_subplot(grid[0, 0], sharex=ax)
  right = fig.add_subplot(grid[1, 1], sharey=ax)
  density(ax, wh, lo, hi)
  for (label, anchors), marker in zip(anchor_sets.items(), MARKERS):
    a = _shapes(anchors)
    ax.scatter(a[:, 0], a[:, 1], marker=marker, s=70, edgecolor="k", label=label, zorder=3)
  edges = log_bins(lo, hi)
  top.hist(wh[:, 0], bins=edges, color="0.5")
  right.hist(wh[:, 1], bins=edges, color="0.5", orientation="horizontal")
  top.axis("off")
  right.axis("off")
  # Above the right marginal, where nothing is drawn: anchored at the main axes' corner.
  ax.legend(loc="lower left", bbox_to_anchor=(1.02, 1.02), borderaxespad=0.0, fontsize=8)
  if title:
    top.set_title(title, fontsize=10)
  return fig


def anchor_figure(boxes_wh_px, anchor_sets: dict, path: str, *, title: str = "") -> str:
  """Writes a PNG: 2-D density of the GT box shapes (w, h in pixels at the training input
  size, log axes), marginal histograms, and one marker set per entry of ``anchor_sets``
  ({label: [A, 2] anchors in pixels})."""
  return save(anchor_axes_figure(boxes_wh_px, anchor_sets, title=title), path)
