"""Reports people read at a terminal: aligned tables of anchors, their fit and AP.

Every reporting CLI (``anchors``, ``inspect``, ``evaluate``, the end of ``main``,
``experiments.claims``) formats through this module, so a number reads the same in all
of them; their ``--json`` prints the dicts the reports are made from. A report is a list
of blocks (a paragraph string, a ``Heading`` or a ``Table``) rendered as aligned plain
text (``to_text``) or as Markdown (``to_markdown``: claims.md, the notebook).

Units: anchors in input pixels, one decimal (``w x h``); mean best IoU three decimals;
BPR in percent with one decimal, AP in percent (points) with two; a missing number
(no box, no positive GT, not evaluated) is ``-``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

MISSING = "-"
RULE = "-"          # the line under a text table's header
COLUMN_GAP = "  "
TABLE_INDENT = "  "


@dataclasses.dataclass
class Heading:
  text: str
  level: int = 2


@dataclasses.dataclass
class Table:
  """Cells are strings (numbers are formatted by the caller, see ``num`` and ``pct``).

  ``header`` None: a table of label / value rows without a header line. ``align``: one
  of "<" / ">" per column; by default the first column is left-aligned, the others right
  (numbers line up on their decimal point when they have the same digits).
  """
  header: list | None
  rows: list
  align: str = ""

  def alignment(self, columns: int) -> str:
    return self.align or "<" + ">" * (columns - 1)


# --------------------------------------------------------------------------
# Numbers.
# --------------------------------------------------------------------------


def _missing(value) -> bool:
  return value is None or (isinstance(value, float) and not math.isfinite(value))


def num(value, digits: int = 3) -> str:
  """``value`` with ``digits`` decimals; None / NaN -> '-'."""
  return MISSING if _missing(value) else f"{value:.{digits}f}"


def pct(fraction, digits: int = 1) -> str:
  """A fraction (0..1) in percent with ``digits`` decimals; None / NaN -> '-'."""
  return MISSING if _missing(fraction) else f"{100 * fraction:.{digits}f}"


def wh(pair) -> str:
  """One anchor or box shape in pixels: '13.7 x 16.0'."""
  w, h = (float(v) for v in pair)
  return f"{w:.1f} x {h:.1f}"


def shape_cells(anchors) -> list[str]:
  """``wh`` of each row, padded so that a column of them lines up on its 'x'."""
  a = np.asarray(anchors, np.float64).reshape(-1, 2)
  ws, hs = [f"{w:.1f}" for w in a[:, 0]], [f"{h:.1f}" for h in a[:, 1]]
  w_width, h_width = max(map(len, ws), default=0), max(map(len, hs), default=0)
  return [f"{w.rjust(w_width)} x {h.rjust(h_width)}" for w, h in zip(ws, hs)]


def count(value) -> str:
  """A count (an int, or an assignment mass that may be fractional)."""
  if _missing(value):
    return MISSING
  return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def area_order(anchors) -> np.ndarray:
  """Indices sorting [A, 2] shapes by area (ties by width), as every anchor report does."""
  a = np.asarray(anchors, np.float64).reshape(-1, 2)
  return np.lexsort((a[:, 0], a[:, 0] * a[:, 1]))


# --------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------


def _text_table(table: Table) -> list[str]:
  rows = [list(map(str, r)) for r in ([table.header] if table.header else []) + table.rows]
  columns = max((len(r) for r in rows), default=0)
  rows = [r + [""] * (columns - len(r)) for r in rows]
  widths = [max(len(r[c]) for r in rows) for c in range(columns)]
  align = table.alignment(columns)

  def line(cells):
    padded = (cell.ljust(w) if a == "<" else cell.rjust(w)
              for cell, w, a in zip(cells, widths, align))
    return (TABLE_INDENT + COLUMN_GAP.join(padded)).rstrip()

  out = [line(r) for r in rows]
  if table.header:
    out.insert(1, line([RULE * w for w in widths]))
  return out


def to_text(blocks) -> str:
  """Aligned plain text: a blank line before each heading and after each table; tables
  are indented under their heading."""
  lines, previous = [], None
  for block in blocks:
    if lines and (isinstance(block, Heading) or isinstance(previous, Table)):
      lines.append("")
    if isinstance(block, Heading):
      lines.append(block.text)
      if block.level == 1:
        lines.append("=" * len(block.text))
    elif isinstance(block, Table):
      lines += _text_table(block)
    else:
      lines.append(str(block))
    previous = block
  return "\n".join(lines)


def _md_row(cells) -> str:
  return "| " + " | ".join(str(c) for c in cells) + " |"


def to_markdown(blocks) -> str:
  """Markdown: headings with '#', pipe tables, blocks separated by blank lines."""
  parts = []
  for block in blocks:
    if isinstance(block, Heading):
      parts.append("#" * block.level + " " + block.text)
    elif isinstance(block, Table):
      columns = max(len(r) for r in ([block.header] if block.header else []) + block.rows)
      header = block.header or [""] * columns
      parts.append("\n".join([_md_row(header), _md_row(["---"] * columns)]
                             + [_md_row(r) for r in block.rows]))
    else:
      parts.append(str(block))
  return "\n\n".join(parts)


# --------------------------------------------------------------------------
# Anchors and their fit.
# --------------------------------------------------------------------------


def anchors_table(sets: dict, columns: dict | None = None) -> Table:
  """Anchor sets side by side, each sorted by area: '#', then per set its shapes (px)
  and its extra columns ``columns[label]`` = [(name, values in the set's order)], e.g.
  ``("usage", boxes per anchor)``, reordered with the shapes."""
  columns = columns or {}
  header, cells = ["#"], []
  for label, anchors in sets.items():
    anchors = np.asarray(anchors, np.float64).reshape(-1, 2)
    order = area_order(anchors)
    header.append(label)
    cells.append(shape_cells(anchors[order]))
    for name, values in columns.get(label, ()):
      header.append(name)
      cells.append([count(values[i]) for i in order])
  num_rows = max(len(c) for c in cells)
  rows = [[str(r + 1)] + [c[r] if r < len(c) else "" for c in cells] for r in range(num_rows)]
  return Table(header, rows)


def usage_columns(fits: dict) -> dict:
  """``anchors_table`` columns: each fitted set's usage (boxes whose best anchor it is)."""
  return {label: [("usage", s["usage"])] for label, s in fits.items()
          if s and s.get("usage") is not None}


def fit_table(fits: dict, *, iou_thresh: float = 0.5, ratio_thresh: float = 4.0) -> Table:
  """Mean best IoU, BPR at IoU >= ``iou_thresh`` and by YOLOv5's ratio rule, one column
  per set (``core.anchors.fit_stats`` dicts)."""
  n = {s["num_boxes"] for s in fits.values()}
  first = f"fit on {n.pop()} boxes" if len(n) == 1 else "fit"
  rows = [["mean best IoU"] + [num(s["mean_best_iou"]) for s in fits.values()],
          [f"BPR, IoU >= {iou_thresh:g} (%)"] + [pct(s["bpr"]) for s in fits.values()],
          [f"BPR, YOLOv5 ratio < {ratio_thresh:g} (%)"]
          + [pct(s.get("bpr_ratio")) for s in fits.values()]]
  return Table([first, *fits], rows)


def anchor_fit_blocks(sets: dict, fits: dict | None = None, *, columns: dict | None = None,
                      iou_thresh: float = 0.5, ratio_thresh: float = 4.0) -> list:
  """The anchors of each set (px, sorted by area) with their usage, then their fit."""
  fits = {k: v for k, v in (fits or {}).items() if v and v.get("mean_best_iou") is not None}
  merged = usage_columns(fits)
  for label, extra in (columns or {}).items():
    merged[label] = merged.get(label, []) + list(extra)
  blocks = [anchors_table(sets, merged)]
  if fits:
    blocks.append(fit_table(fits, iou_thresh=iou_thresh, ratio_thresh=ratio_thresh))
  return blocks


def anchor_report_blocks(out: dict) -> list:
  """The report of ``python -m anchor_jax.anchors`` (``analysis.anchor_report`` dicts of
  a CSV fit, a workdir's learned anchors or a config's training boxes)."""
  blocks, iou = [], out.get("iou_thresh", 0.5)
  ratio = out.get("ratio_thresh", 4.0)
  if "dataset" in out:   # config_report
    d = out["dataset"]
    blocks += [Heading(f'{d["name"]} training boxes at {d["image_size"]} px: '
                       f'{d["num_boxes"]} boxes in {d["images"]} images'),
               box_size_table(d)]
  if "step" in out:      # workdir_report
    head = f'learned anchors at step {out["step"]} (px, sorted by area'
    if out.get("counts") is not None:
      head += "; assigned: GT boxes given to each over the last logged interval"
    head += ")"
  else:
    head = f'{out["k"]} anchors by IoU k-means (seed {out["seed"]}; px, sorted by area)'
    if out.get("num_dropped"):
      head += f', {out["num_dropped"]} invalid box shapes skipped'
  blocks.append(Heading(head))
  label = "learned" if "step" in out else "k-means"
  sets, fits = {label: out["anchors"]}, {label: out}
  columns = {}
  if out.get("counts") is not None:
    columns[label] = [("assigned", out["counts"])]
  init = out.get("config_init_fit")
  if init is not None and "anchors" in init:
    init_label = f'initial ({init["init"]})'
    sets[init_label], fits[init_label] = init["anchors"], init
  blocks += anchor_fit_blocks(sets, fits, columns=columns, iou_thresh=iou, ratio_thresh=ratio)
  blocks += [f'darknet cfg: {out["darknet"]}',
             f'config:      --config.anchors.init="{out["config_init"]}"']
  if out.get("exported"):
    blocks.append("wrote " + ", ".join(out["exported"]))
  return blocks


def box_size_table(dataset: dict) -> Table:
  """Percentiles of the box widths, heights (px) and aspect ratios."""
  percentiles = ("5", "25", "50", "75", "95")
  rows = [[name] + [f"{v:.{digits}f}" for v in dataset[key]] for name, key, digits in (
      ("w (px)", "w_percentiles_5_25_50_75_95", 1), ("h (px)", "h_percentiles_5_25_50_75_95", 1),
      ("w / h", "aspect_w_over_h_percentiles", 2))]
  return Table(["percentile"] + [f"{p} %" for p in percentiles], rows)


# --------------------------------------------------------------------------
# AP.
# --------------------------------------------------------------------------


def _eval_heading(result: dict) -> str:
  where = [result[k] for k in ("metric",) if result.get(k)]
  if result.get("step") is not None:
    where.append(f'step {result["step"]}')
  if result.get("split"):
    where.append(f'{result["split"]} split')
  head = "AP" + (f' ({", ".join(map(str, where))})' if where else "")
  counts = [f"{result[k]} {name}" for k, name in (
      ("num_images", "images"), ("num_gt", "GT boxes"), ("num_detections", "detections"))
      if result.get(k) is not None]
  return head + (": " + ", ".join(counts) if counts else "")


def eval_blocks(result: dict | None) -> list:
  """AP50 (AP and its splits for COCO), class-agnostic AP50, then AP per class."""
  if result is None:
    return ["no evaluation yet (eval.jsonl is absent or empty)"]
  coco = result.get("metric") == "coco" or "AP" in result and result.get("AP") is not None
  rows = []
  if coco:
    rows.append(["AP (%)", pct(result.get("AP"), 2)])
  rows.append(["AP50 (%)", pct(result.get("AP50"), 2)])
  if "AP50_agnostic" in result:
    rows.append(["class-agnostic AP50 (%)", pct(result["AP50_agnostic"], 2)])
  if coco and "AP75" in result:
    rows.append(["AP75 (%)", pct(result["AP75"], 2)])
    rows += [[f"AP {size} (%)", pct(result.get(k), 2)]
             for size, k in (("small", "APs"), ("medium", "APm"), ("large", "APl"))]
  blocks = [Heading(_eval_heading(result)), Table(None, rows)]
  dropped = [f"{result[k]} {name}" for k, name in (
      ("num_dropped", "detections (NaN/inf or no area)"),
      ("num_dropped_gt", "GT boxes without area")) if result.get(k)]
  if dropped:
    blocks.append(TABLE_INDENT + "dropped: " + ", ".join(dropped))
  per_class = result.get("per_class") or {}
  if per_class:
    per_class_50 = result.get("per_class_AP50")
    header = ["class", "AP (%)" if coco else "AP50 (%)"] + (["AP50 (%)"] if per_class_50 else [])
    rows = [[name, pct(ap, 2)] + ([pct(per_class_50.get(name), 2)] if per_class_50 else [])
            for name, ap in per_class.items()]
    blocks.append(Table(header, rows))
  return blocks


# --------------------------------------------------------------------------
# Whole reports.
# --------------------------------------------------------------------------


def inspect_blocks(summary: dict) -> list:
  """``python -m anchor_jax.inspect``: the three anchor sets with usage and fit, the
  last eval and where the figures are (``analysis.inspection.summarize``'s dict)."""
  d = summary["dataset"]
  total = summary.get("total_steps")
  step = f'step {summary["step"]}' + (f" of {total}" if total else "")
  blocks = [Heading(f'{summary["workdir"]}: {d.get("label", d["name"])} at {d["image_size"]} '
                    f"px, {step}", level=1),
            f'{d["num_boxes"]} GT boxes of the first {d["num_images"]} training images',
            Heading("anchors (px, each set sorted by area) and boxes per anchor")]
  labels = {"initial": "initial" + (f' ({summary["anchors_init"]})'
                                    if summary.get("anchors_init") else ""),
            "kmeans": "k-means", "learned": "learned"}
  sets = {labels[k]: summary[f"{k}_anchors_px"] for k in labels}
  fits = {labels[k]: summary["fit"][k] for k in labels if k in summary["fit"]}
  blocks += anchor_fit_blocks(sets, fits)
  blocks += eval_blocks(summary.get("eval"))
  plots = summary.get("plots") or {}
  if plots:
    blocks += [Heading("figures"), Table(None, [[k, v] for k, v in plots.items()],
                                         align="<<")]
  return blocks


def train_blocks(summary: dict) -> list:
  """The end of a training run: steps, time, throughput, initial -> learned anchors
  (model slot order), final AP50 and class-agnostic AP50, and where its files are
  (``train_and_evaluate``'s summary with the CLI's ``wall_s``, ``workdir`` and
  ``steady_images_per_sec``)."""
  steps = f'{summary["step"]} of {summary["total_steps"]}'
  if summary.get("steps_run") is not None:
    steps += f' ({summary["steps_run"]} this run)'
  run = [["steps", steps]]
  if summary.get("wall_s") is not None:
    wall = f'{summary["wall_s"]:.1f} s'
    if summary.get("train_s") is not None:
      wall += f' (training loop {summary["train_s"]:.1f} s, compile and evals included)'
    run.append(["wall time", wall])
  rates = []
  if summary.get("images_per_sec"):
    rates.append(f'{summary["images_per_sec"]:.1f} over the loop')
  if summary.get("steady_images_per_sec"):
    rates.append(f'{summary["steady_images_per_sec"]:.1f} median of the logged windows '
                 "after the first")
  if rates:
    run.append(["images/s", ", ".join(rates)])
  initial = np.asarray(summary["initial_anchors_px"], np.float64).reshape(-1, 2)
  learned = np.asarray(summary["learned_anchors_px"], np.float64).reshape(-1, 2)
  rows = [[str(i), a, "->", b]
          for i, (a, b) in enumerate(zip(shape_cells(initial), shape_cells(learned)))]
  blocks = [Heading("run summary"), Table(None, run, align="<<"),
            Table(["anchor", "initial (px)", "", "learned (px)"], rows)]
  result = summary.get("eval")
  if result is None:
    blocks.append(TABLE_INDENT + "not evaluated")
  else:
    rows = [[f'AP50 at step {summary["step"]} (%)', pct(result.get("AP50"), 2)],
            ["class-agnostic AP50 (%)", pct(result.get("AP50_agnostic"), 2)]]
    rows += [[f"RPN recall at {k} proposals, IoU 0.5 (%)", pct(result[f"RPN_recall@{k}"], 2)]
             for k in (50, 100, 300) if result.get(f"RPN_recall@{k}") is not None]
    blocks.append(Table(None, rows))
  files = [["checkpoint", summary.get("checkpoint") or MISSING]]
  if summary.get("plot"):
    files.append(["figure", summary["plot"]])
  if summary.get("workdir"):
    files.append(["logs", f'{summary["workdir"]} (metrics.jsonl, anchors.jsonl, eval.jsonl)'])
    files.append(["more figures", f'python -m anchor_jax.inspect --workdir={summary["workdir"]}'])
  blocks.append(Table(None, files, align="<<"))
  return blocks
