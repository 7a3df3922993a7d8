"""anchor_jax.analysis.plots: pixel tick labels on log axes, titles, legends off the data,
read back from the matplotlib figures (and from the anchors.png training writes)."""
import ml_collections
import numpy as np
import pytest

from anchor_jax.analysis import plots
from anchor_jax.data import pipeline
from anchor_jax.training import train
from tests import train_util

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def visible_ticks(axis):
  """[(position, label)] of the ticks inside the axis' view (the labels matplotlib draws)."""
  lo, hi = sorted(axis.get_view_interval())
  axis.figure.canvas.draw()
  return [(t.get_loc(), t.label1.get_text()) for t in axis.get_major_ticks()
          if lo <= t.get_loc() <= hi]


def assert_pixel_ticks(ax, want):
  for axis in (ax.xaxis, ax.yaxis):
    ticks = visible_ticks(axis)
    assert [label for _, label in ticks] == want
    # The label is the position in pixels (plotted in pixels, log-scaled).
    np.testing.assert_allclose([pos for pos, _ in ticks], [float(w) for w in want])
  assert ax.get_xscale() == ax.get_yscale() == "log"
  assert ax.get_xlabel() == "width (px, log scale)" and ax.get_ylabel() == "height (px, log scale)"


def assert_legend_off_the_axes(ax):
  renderer = ax.figure.canvas.get_renderer()
  legend = ax.get_legend().get_window_extent(renderer)
  assert not legend.overlaps(ax.get_window_extent(renderer))


def _boxes(lo, hi, n=400, seed=0):
  rng = np.random.default_rng(seed)
  return np.exp(rng.uniform(np.log(lo), np.log(hi), (n, 2)))


def test_ticks_are_powers_of_two_in_pixels():
  # Shapes in [10, 100] px -> limits 10 / e^0.3 = 7.4 .. 100 e^0.3 = 135: five octaves.
  boxes = np.concatenate([_boxes(10, 100), [[10, 10], [100, 100]]])
  fig = plots.anchor_axes_figure(boxes, {"k-means": [[20, 30], [60, 40]]}, title="t")
  ax = fig.axes[0]
  np.testing.assert_allclose(ax.get_xlim(), (10 / np.exp(0.3), 100 * np.exp(0.3)))
  assert_pixel_ticks(ax, ["8", "16", "32", "64", "128"])
  assert_legend_off_the_axes(ax)
  assert fig.axes[1].get_title() == "t"
  plots.plt.close(fig)


def test_a_narrow_range_also_gets_ticks_at_one_and_a_half_powers():
  # [20, 40] px -> 14.8 .. 54 px, under two octaves: 16, 24, 32, 48.
  boxes = np.concatenate([_boxes(20, 40), [[20, 20], [40, 40]]])
  fig = plots.anchor_axes_figure(boxes, {"learned": [[30, 30]]})
  assert_pixel_ticks(fig.axes[0], ["16", "24", "32", "48"])
  plots.plt.close(fig)


def test_run_title_names_dataset_size_and_step():
  config = ml_collections.ConfigDict({"dataset": {"name": "synthetic", "preset": "mixed"},
                                      "input": {"image_size": 128}})
  assert plots.run_title(config, "anchors", steps="step 5") == (
      "anchors - synthetic:mixed at 128 px input, step 5")
  config.dataset.name = "voc"
  assert plots.dataset_label(config) == "voc"


@pytest.fixture()
def captured_figures(monkeypatch):
  """Figures passed to plots.save (still written), so their axes can be read back."""
  figures = []

  def keep(fig, path):
    figures.append(fig)
    fig.savefig(path, dpi=plots.FIG_DPI, bbox_inches="tight")
    return path
  monkeypatch.setattr(plots, "save", keep)
  yield figures
  for fig in figures:
    plots.plt.close(fig)


def test_training_anchors_png_has_pixel_ticks_title_and_legend_outside(tmp_path,
                                                                        captured_figures):
  config = train_util.tiny_config(**{"anchors.kmeans_images": 50})
  train_ds = pipeline.build_dataset(config, "train")
  init = np.full((5, 2), 5.0)                     # identical: 160 px at stride 32
  learned = np.array([[0.5, 0.5], [1, 0.5], [0.5, 1], [1, 1], [1.5, 1.2]])
  path = train.anchor_plot(config, train_ds, init, learned, str(tmp_path), step=4)
  with open(path, "rb") as f:
    assert f.read(8) == PNG_MAGIC
  (fig,) = captured_figures
  ax, top = fig.axes[0], fig.axes[1]
  boxes = pipeline.train_box_shapes(train_ds, config)
  assert top.get_title() == (f"{len(boxes)} GT boxes and anchors - synthetic:mixed at 64 px "
                             "input, step 4")
  # Boxes of 3..61 px and anchors up to 160 px: 3 / e^0.3 = 2.2 .. 160 e^0.3 = 216.
  assert boxes.min() == 3 and boxes.max() <= 160
  assert_pixel_ticks(ax, ["4", "8", "16", "32", "64", "128"])
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert labels == ["initial (identical)", "k-means (1 - IoU)", "learned (step 4)"]
  assert_legend_off_the_axes(ax)
