"""What a finished (or interrupted) training run learned: anchors, training curves, AP.

The library behind ``python -m anchor_jax.inspect --workdir=DIR`` (``tools/inspect.py``)
and the notebook ``experiments/notebooks/inspect_anchors.ipynb``. ``summarize`` writes
four PNGs (in ``plots``' style: pixel log axes, titles naming dataset, input size and
step, legends outside the data) and returns a JSON-ready summary; ``report`` turns it
into the text the CLI prints.

  anchors_density.png     GT box shapes (w, h on pixel log axes) with the initial, IoU
                          k-means and learned anchors: the paper's Figures 2-3.
  anchor_trajectories.png each anchor's path over the anchors.jsonl steps, on that density.
  anchor_counts.png       assignment mass per anchor and step, and each anchor's share.
  training_curves.png     loss terms, temperature T, clustering weight lambda and lr vs step.

The JSON holds the initial / k-means / learned anchors (input pixels), their fit on the
boxes (``anchors.fit_stats``: mean best IoU, BPR at IoU 0.5 and by YOLOv5's ratio rule,
usage) and the last line of eval.jsonl.
The boxes are those of the first N training images (default ``anchors.kmeans_images``) at
the training input size, read through the workdir's own config.json. A directory that is
not a training workdir, or a missing / corrupt file, raises WorkdirError naming it.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os

import numpy as np

from anchor_jax import workdir as workdir_lib
from anchor_jax.analysis import plots, report_text
from anchor_jax.core import anchors as anchors_lib
from anchor_jax.core import losses
from anchor_jax.data import pipeline
from anchor_jax.errors import UserError
from anchor_jax.workdir import WorkdirError

REQUIRED_FILES = (workdir_lib.CONFIG, workdir_lib.METRICS, workdir_lib.ANCHORS)
PLOT_FILES = {"density": "anchors_density.png", "trajectories": "anchor_trajectories.png",
              "counts": "anchor_counts.png", "curves": "training_curves.png"}
CURVES = ("loss",) + losses.LOSS_TERMS   # plotted from metrics.jsonl
WARMUP_KEYS = ("temperature", "cluster_weight")
# Config keys this tool reads; a config.json without them is not a training workdir's.
CONFIG_KEYS = ("seed", "dataset.name", "input.image_size", "anchors.num", "anchors.init",
               "anchors.kmeans_images")


@dataclasses.dataclass
class Run:
  """A training workdir's logs, checked and parsed.

  ``anchor_log`` is anchors.jsonl as written (file order); ``history`` is the same
  records with one per step (a resumed run's re-logged steps keep the later line),
  sorted by step. Anchor arrays are in input pixels, one row per model slot.
  """
  workdir: str
  config: object                # ml_collections.ConfigDict of config.json
  metrics: list                 # metrics.jsonl records
  anchor_log: list              # anchors.jsonl records, file order
  evals: list                   # eval.jsonl records ([] when the file is absent)

  @property
  def history(self) -> list:
    return workdir_lib.by_step(self.anchor_log)

  @property
  def initial_px(self) -> np.ndarray:
    """[A, 2] anchors of the first anchors.jsonl line."""
    return np.asarray(self.anchor_log[0]["anchors_px"], np.float64)

  @property
  def learned_px(self) -> np.ndarray:
    """[A, 2] anchors of the last anchors.jsonl line."""
    return np.asarray(self.anchor_log[-1]["anchors_px"], np.float64)

  @property
  def last_eval(self) -> dict | None:
    return self.evals[-1] if self.evals else None


# --------------------------------------------------------------------------
# Reading the workdir.
# --------------------------------------------------------------------------


def _check_config(config, path: str) -> None:
  """WorkdirError unless config.json has the keys this module reads."""
  for key in CONFIG_KEYS:
    node = config
    for part in key.split("."):
      if part not in node:
        raise WorkdirError(f"{path}: no key {key!r}; is this a training config?")
      node = node[part]


def _steps_ok(records: list, path: str) -> list:
  """WorkdirError naming the first record without an integer "step"."""
  for number, r in enumerate(records, start=1):
    if not isinstance(r.get("step"), int):
      raise WorkdirError(f'{path}: record {number} has no integer "step"')
  return records


def _check_anchor_log(records: list, path: str, num_anchors: int) -> None:
  """Every line: anchors_px [num_anchors, 2] finite > 0; counts (if any) of length A."""
  if not records:
    raise WorkdirError(f"{path}: empty (no anchors logged yet)")
  for number, r in enumerate(records, start=1):
    where = f'{path}: record {number} (step {r["step"]})'
    try:
      px = np.asarray(r["anchors_px"], np.float64)
    except KeyError:
      raise WorkdirError(f'{where}: no "anchors_px"') from None
    except (TypeError, ValueError):
      raise WorkdirError(f'{where}: "anchors_px" is not an [A, 2] list of numbers') from None
    if px.shape != (num_anchors, 2):
      raise WorkdirError(f'{where}: "anchors_px" has shape {px.shape}, expected '
                         f'({num_anchors}, 2) (anchors.num in config.json)')
    if not np.all(np.isfinite(px) & (px > 0)):
      raise WorkdirError(f"{where}: anchors must be finite and > 0, got {px.tolist()}")
    counts = r.get("counts")
    if counts is not None and np.shape(counts) != (num_anchors,):
      raise WorkdirError(f'{where}: "counts" should hold {num_anchors} numbers')


def load_run(workdir: str) -> Run:
  """Reads and checks config.json, metrics.jsonl, anchors.jsonl (and eval.jsonl if present).

  Raises WorkdirError naming the file (and line) when something is missing or corrupt.
  """
  if not os.path.isdir(workdir):
    raise WorkdirError(f"{workdir}: no such directory")
  missing = [f for f in REQUIRED_FILES if not os.path.isfile(workdir_lib.path(workdir, f))]
  if missing:
    raise WorkdirError(f'{workdir} is not a training workdir: missing {", ".join(missing)} '
                       '(written by python -m anchor_jax.main)')
  config = workdir_lib.read_config(workdir)
  _check_config(config, workdir_lib.path(workdir, workdir_lib.CONFIG))
  anchors_path = workdir_lib.path(workdir, workdir_lib.ANCHORS)
  anchor_log = _steps_ok(workdir_lib.read_jsonl(anchors_path), anchors_path)
  _check_anchor_log(anchor_log, anchors_path, config.anchors.num)
  metrics_path = workdir_lib.path(workdir, workdir_lib.METRICS)
  metrics = _steps_ok(workdir_lib.read_jsonl(metrics_path), metrics_path)
  evals = workdir_lib.read_evals(workdir)
  return Run(workdir=workdir, config=config, metrics=metrics, anchor_log=anchor_log,
             evals=evals)


def gt_boxes(config, num_images: int | None = None) -> np.ndarray:
  """[N, 2] (w, h) in pixels at the training input size of the GT boxes of the first
  ``num_images`` training images (default ``anchors.kmeans_images``, as k-means uses)."""
  num_images = num_images or config.anchors.kmeans_images
  try:
    dataset = pipeline.build_dataset(config, "train")
    boxes = pipeline.train_box_shapes(dataset, config, num_images)
  except (UserError, OSError, ValueError, KeyError) as e:
    raise WorkdirError(f"cannot read the training boxes of dataset.name="
                       f"{config.dataset.name!r}: {e}") from None
  boxes = np.asarray(boxes, np.float64).reshape(-1, 2)
  valid = np.all(np.isfinite(boxes) & (boxes > 0), axis=1)
  if not valid.any():
    raise WorkdirError(f"no valid GT boxes in the first {num_images} training images")
  return boxes[valid]


# --------------------------------------------------------------------------
# Anchors and their fit.
# --------------------------------------------------------------------------


def kmeans_anchors(config, boxes_px) -> np.ndarray:
  """[A, 2] IoU k-means anchors (pixels) on ``boxes_px``, k = anchors.num, seed = config.seed
  (what ``train.anchor_plot`` shows)."""
  return anchors_lib.kmeans_iou(boxes_px, config.anchors.num, seed=config.seed)


def anchor_sets(run: Run, boxes_px) -> dict:
  """{'initial', 'kmeans', 'learned'} -> [A, 2] anchors in pixels."""
  return {"initial": run.initial_px, "kmeans": kmeans_anchors(run.config, boxes_px),
          "learned": run.learned_px}


def fit_table(sets: dict, boxes_px) -> dict:
  """{label: anchors.fit_stats(anchors, boxes)} (mean_best_iou, bpr, bpr_ratio, usage,
  num_boxes)."""
  return {label: anchors_lib.fit_stats(a, boxes_px) for label, a in sets.items()}


def set_labels(run: Run) -> dict:
  """Legend labels for ``anchor_sets`` keys."""
  return {"initial": f'initial ({run.config.anchors.init}, step {run.anchor_log[0]["step"]})',
          "kmeans": "k-means (1 - IoU)",
          "learned": f'learned (step {run.anchor_log[-1]["step"]})'}


# --------------------------------------------------------------------------
# Figures (each ``*_figure`` returns a matplotlib figure, each ``plot_*`` writes it as a
# PNG and returns the path); the shared style is ``plots``': pixel log axes, titles with
# dataset, input size and step, legends outside the axes.
# --------------------------------------------------------------------------


def _pyplot():
  return plots.plt  # plots selects the non-interactive Agg backend.


def _slot_colors(num: int) -> list:
  cmap = _pyplot().get_cmap("tab10")
  return [cmap(i % cmap.N) for i in range(num)]


def _steps(run: Run) -> str:
  steps = [r["step"] for r in run.history]
  return f"step {steps[0]}" if steps[0] == steps[-1] else f"steps {steps[0]}-{steps[-1]}"


def density_figure(run: Run, boxes_px, sets: dict):
  """Paper Figures 2-3: the box density with the anchor sets (``plots.anchor_axes_figure``)."""
  labels = set_labels(run)
  title = plots.run_title(run.config, f"{len(boxes_px)} GT boxes and anchors",
                          steps=f'step {run.anchor_log[-1]["step"]}')
  return plots.anchor_axes_figure(boxes_px, {labels[k]: v for k, v in sets.items()},
                                  title=title)


def plot_density(run: Run, boxes_px, sets: dict, path: str) -> str:
  """anchors_density.png (``density_figure``)."""
  return plots.save(density_figure(run, boxes_px, sets), path)


def trajectories_figure(run: Run, boxes_px, *, kmeans_px=None):
  """Each anchor slot's path in (w, h) px over the logged steps (open circle: start, arrow
  head and filled square: end), on the box density; k-means anchors (if given) as black
  crosses."""
  plt = _pyplot()
  history = run.history
  paths = np.stack([np.asarray(r["anchors_px"], np.float64) for r in history], 1)  # [A, T, 2]
  extra = [kmeans_px] if kmeans_px is not None else []
  lo, hi = plots.pixel_limits(boxes_px, paths.reshape(-1, 2), *extra)
  fig, ax = plt.subplots(figsize=(6.4, 6.0))
  plots.density(ax, boxes_px, lo, hi)
  for slot, (p, color) in enumerate(zip(paths, _slot_colors(len(paths)))):  # p: [T, 2]
    (w0, h0), (w1, h1) = p[0], p[-1]
    ax.plot(p[:, 0], p[:, 1], "-", color=color, lw=1.5, zorder=3,
            label=f"anchor {slot}: {w0:.0f}x{h0:.0f} -> {w1:.0f}x{h1:.0f} px")
    ax.plot(*p[0], "o", mfc="none", mec=color, ms=9, mew=1.5, zorder=4)
    ax.plot(*p[-1], "s", color=color, mec="k", ms=7, zorder=5)
    if len(p) > 1 and np.any(p[-1] != p[-2]):
      ax.annotate("", xy=p[-1], xytext=p[-2], zorder=5,
                  arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.5})
  if kmeans_px is not None:
    k = np.asarray(kmeans_px, np.float64)
    ax.scatter(k[:, 0], k[:, 1], marker="x", c="k", s=60, zorder=4, label="k-means (1 - IoU)")
  plots.legend_outside(ax, fontsize=7)
  ax.set_title(plots.run_title(run.config, "anchor trajectories",
                               steps=f"{_steps(run)} ({len(history)} snapshots)"), fontsize=10)
  return fig


def plot_trajectories(run: Run, boxes_px, path: str, *, kmeans_px=None) -> str:
  """anchor_trajectories.png (``trajectories_figure``)."""
  return plots.save(trajectories_figure(run, boxes_px, kmeans_px=kmeans_px), path)


def count_series(run: Run) -> tuple:
  """Per logged interval: (end steps [T], interval starts [T], counts [T, A]).

  ``counts`` of a line is the assignment mass since the previous line, so each line
  after the first covers (previous step, step]. Lines without counts are skipped.
  """
  history = run.history
  ends, starts, counts = [], [], []
  for prev, cur in itertools.pairwise(history):
    if cur.get("counts") is None:
      continue
    ends.append(cur["step"])
    starts.append(prev["step"])
    counts.append([np.nan if v is None else v for v in cur["counts"]])
  return (np.asarray(ends, np.int64), np.asarray(starts, np.int64),
          np.asarray(counts, np.float64).reshape(len(ends), run.config.anchors.num))


def plot_counts(run: Run, path: str) -> str:
  """anchor_counts.png: top, assignment mass per step of each anchor (stacked; the
  whole interval between two log lines gets its mean); bottom, each anchor's share."""
  plt = _pyplot()
  ends, starts, counts = count_series(run)
  colors = _slot_colors(run.config.anchors.num)
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 6.0), sharex=True)
  if not len(ends):
    top.text(0.5, 0.5, "no training interval logged yet", ha="center", transform=top.transAxes)
  else:
    per_step = counts / np.maximum(ends - starts, 1)[:, None]  # [T, A]
    total = counts.sum(1, keepdims=True)
    share = np.divide(counts, total, out=np.full_like(counts, np.nan), where=total > 0)
    # step='pre': the value at x[i] holds over (x[i-1], x[i]]; x[0] opens the first interval.
    x = np.concatenate([starts[:1], ends])
    labels = [f"anchor {a}" for a in range(counts.shape[1])]
    top.stackplot(x, np.concatenate([per_step[:1], per_step]).T, labels=labels, colors=colors,
                  step="pre", alpha=0.85)
    for a, color in enumerate(colors):
      bottom.step(x, np.concatenate([share[:1, a], share[:, a]]), where="pre", color=color,
                  label=labels[a])
    plots.legend_outside(top, fontsize=7)
  top.set_ylabel("assignment mass / step")
  top.set_title(plots.run_title(run.config, "GT assignments per anchor", steps=_steps(run)),
                fontsize=10)
  bottom.set_ylabel("share of assignments")
  bottom.set_ylim(0, 1)
  bottom.set_xlabel("step")
  bottom.xaxis.set_major_locator(plots.ticker.MaxNLocator(integer=True))
  return plots.save(fig, path)


def metric_series(run: Run, key: str) -> tuple:
  """(steps [T], values [T]) of ``key`` in metrics.jsonl, sorted by step; a step logged
  twice (a resumed run re-logs the steps after its checkpoint) keeps its later line.
  None / non-numbers -> NaN."""
  by_step = {m["step"]: m.get(key) for m in run.metrics if key in m}
  rows = sorted(by_step.items())
  steps = np.asarray([s for s, _ in rows], np.int64)
  values = np.asarray([v if isinstance(v, (int, float)) else math.nan for _, v in rows],
                      np.float64)
  return steps, values


def plot_training_curves(run: Run, path: str) -> str:
  """training_curves.png: top, the total loss and each term (log scale; zeros hidden);
  bottom, the warm-up schedules T and lambda, with the learning rate on a right axis."""
  plt = _pyplot()
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 6.4), sharex=True)
  for key in CURVES:
    steps, values = metric_series(run, key)
    if len(steps):
      top.plot(steps, values, lw=2.0 if key == "loss" else 1.0, label=key,
               color="k" if key == "loss" else None)
  outside = (1.12, 1.0)   # right of the lr axis of the bottom panel
  if not run.metrics:
    top.text(0.5, 0.5, "no steps logged yet", ha="center", transform=top.transAxes)
  else:
    top.set_yscale("log", nonpositive="mask")
    plots.legend_outside(top, bbox_to_anchor=outside, fontsize=7)
  top.set_ylabel("loss terms")
  steps, _ = metric_series(run, "loss")
  span = f"steps {steps[0]}-{steps[-1]}" if len(steps) else "no steps"
  name = os.path.basename(os.path.normpath(run.workdir))
  top.set_title(plots.run_title(run.config, f"training curves of {name}", steps=span),
                fontsize=10)
  for key, label in zip(WARMUP_KEYS, ("temperature T", "cluster weight lambda")):
    steps, values = metric_series(run, key)
    if len(steps):
      bottom.plot(steps, values, label=label)
  bottom.set_ylabel("warm-up schedule")
  bottom.set_xlabel("step")
  bottom.xaxis.set_major_locator(plots.ticker.MaxNLocator(integer=True))
  handles, labels = bottom.get_legend_handles_labels()
  steps, lr = metric_series(run, "lr")
  if len(steps):
    right = bottom.twinx()
    right.plot(steps, lr, ":", color="0.4", label="lr (right axis)")
    right.set_yscale("log", nonpositive="mask")
    right.set_ylabel("learning rate")
    more = right.get_legend_handles_labels()
    handles, labels = handles + more[0], labels + more[1]
  if handles:   # one legend for both axes of the panel, off the curves
    bottom.legend(handles, labels, loc="upper left", bbox_to_anchor=outside,
                  borderaxespad=0.0, fontsize=7)
  return plots.save(fig, path)


# --------------------------------------------------------------------------
# Tables and the summary.
# --------------------------------------------------------------------------


def eval_table(run: Run) -> dict | None:
  """The last eval.jsonl line's step, split, metric, AP50, AP50_agnostic (classes
  merged), AP (None if absent), per_class (and per_class_AP50 for COCO) and its image,
  GT and detection counts; None when nothing was evaluated."""
  last = run.last_eval
  if last is None:
    return None
  table = {k: last.get(k) for k in ("step", "split", "metric", "AP50", "AP50_agnostic", "AP",
                                    "per_class", "num_images", "num_gt", "num_detections")}
  if "per_class_AP50" in last:
    table["per_class_AP50"] = last["per_class_AP50"]
  return table


def eval_markdown(table: dict | None) -> str:
  """Markdown for ``eval_table`` (``report_text.eval_blocks``): AP50, the class-agnostic
  AP50 (and COCO's AP), then AP per class, in percent."""
  return report_text.to_markdown(report_text.eval_blocks(table))


def fit_markdown(fit: dict, sets: dict) -> str:
  """Markdown comparing anchor sets (``report_text.anchor_fit_blocks``): each set's
  anchors (px, sorted by area) with usage, then mean best IoU and BPR."""
  return report_text.to_markdown(report_text.anchor_fit_blocks(sets, fit))


def report(summary: dict) -> str:
  """The text report of ``summarize``'s dict (what ``python -m anchor_jax.inspect``
  prints)."""
  return report_text.to_text(report_text.inspect_blocks(summary))


def summarize(workdir: str, *, out_dir: str | None = None,
              num_images: int | None = None) -> dict:
  """Reads ``workdir``, writes the four PNGs to ``out_dir`` (default DIR/inspect) and
  returns the JSON-ready summary."""
  run = load_run(workdir)
  out_dir = out_dir or workdir_lib.path(workdir, workdir_lib.INSPECT)
  os.makedirs(out_dir, exist_ok=True)
  boxes = gt_boxes(run.config, num_images)
  sets = anchor_sets(run, boxes)
  paths = {k: os.path.join(out_dir, f) for k, f in PLOT_FILES.items()}
  plot_density(run, boxes, sets, paths["density"])
  plot_trajectories(run, boxes, paths["trajectories"], kmeans_px=sets["kmeans"])
  plot_counts(run, paths["counts"])
  plot_training_curves(run, paths["curves"])
  c = run.config
  return {
      "workdir": workdir,
      "step": run.anchor_log[-1]["step"],
      "total_steps": c.get("train", {}).get("steps"),
      "anchors_init": c.anchors.init,
      "dataset": {"name": c.dataset.name, "label": plots.dataset_label(c),
                  "image_size": c.input.image_size,
                  "num_images": num_images or c.anchors.kmeans_images,
                  "num_boxes": len(boxes)},
      "initial_anchors_px": sets["initial"].tolist(),
      "kmeans_anchors_px": sets["kmeans"].tolist(),
      "learned_anchors_px": sets["learned"].tolist(),
      "fit": fit_table(sets, boxes),
      "eval": eval_table(run),
      "plots": paths,
  }
