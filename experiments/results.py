"""Results of a sweep: ``results.csv`` (one row per run x seed) and ``results.md``
(the paper's layout, mean ± std over seeds, Opt - Baseline differences).

Numbers come only from the workdirs (``DONE``, ``attempts.jsonl``, ``anchors.jsonl``),
so the tables can be rebuilt at any time (``--table_only``). In the CSV, ``AP50`` and
``AP`` are the eval.jsonl values (fractions); the markdown shows percent like the paper.
Std uses ddof=1 and is shown from 2 seeds on; a difference is taken seed by seed over
the seeds both runs finished, then averaged, with a 95 % confidence interval of the mean
difference (Student's t, n - 1 degrees of freedom).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import re
import statistics

from scipy import stats as scipy_stats

from experiments import launcher, sweep_lib
from experiments import workdir as wd

# eval.jsonl values the tables can show (fractions; RPN recall from Faster R-CNN runs)
METRIC_KEYS = ("AP50", "AP50_agnostic", "AP", "RPN_recall@50", "RPN_recall@100",
               "RPN_recall@300", "RPN_AR@100")
CSV_FIELDS = ("name", "seed", "status", "row", "col", *METRIC_KEYS, "anchors_px",
              "anchors_step", "wall_s", "workdir")
MISSING = "n/a"


@dataclasses.dataclass
class Record:
  """One run x seed as found on disk."""
  name: str
  seed: int
  status: str
  workdir: str
  row: str = ""
  col: str = ""
  metrics: dict = dataclasses.field(default_factory=dict)   # AP50 / AP, fractions
  anchors_px: list | None = None
  anchors_step: int | None = None
  wall_s: float | None = None


@dataclasses.dataclass
class Cell:
  """The values of one table cell: seed -> metric (%), and how many seeds failed."""
  values: dict
  failed: int = 0
  expected: int = 1
  done_without: int = 0    # finished seeds that do not report this metric


def seeds_on_disk(sweep: dict, root: str) -> set[int]:
  found = set()
  for run in sweep["runs"]:
    folder = os.path.join(root, run["name"])
    if os.path.isdir(folder):
      found.update(int(m.group(1)) for m in map(re.compile(r"^seed(\d+)$").match,
                                                  os.listdir(folder)) if m)
  return found


def collect(sweep: dict, root: str, seeds) -> list[Record]:
  """A Record for every run of the sweep and every seed."""
  records = []
  for run in sweep["runs"]:
    for seed in sorted(seeds):
      path = sweep_lib.run_dir(root, run["name"], seed)
      rec = Record(name=run["name"], seed=seed, status=wd.status(path), workdir=path,
                   row=run.get("row", ""), col=run.get("col", ""),
                   wall_s=wd.wall_seconds(path))
      final = wd.done_eval(path)
      if final is not None:
        rec.metrics = {k: final[k] for k in METRIC_KEYS if final.get(k) is not None}
      anchors = wd.last_anchors(path)
      if anchors is not None:
        rec.anchors_px = [[round(float(v), 2) for v in wh] for wh in anchors["anchors_px"]]
        rec.anchors_step = anchors.get("step")
      records.append(rec)
  return records


def write_csv(records, path: str) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for r in records:
      writer.writerow({
          "name": r.name, "seed": r.seed, "status": r.status, "row": r.row, "col": r.col,
          **{k: r.metrics.get(k, "") for k in METRIC_KEYS},
          "anchors_px": json.dumps(r.anchors_px) if r.anchors_px is not None else "",
          "anchors_step": "" if r.anchors_step is None else r.anchors_step,
          "wall_s": "" if r.wall_s is None else round(r.wall_s, 1), "workdir": r.workdir})


# ---------------------------------------------------------------- statistics

def mean_std(values) -> tuple[float, float | None]:
  """Mean and sample std (ddof=1); std is None for a single value."""
  values = list(values)
  return statistics.fmean(values), (statistics.stdev(values) if len(values) >= 2 else None)


def fmt_stats(values, *, signed: bool = False, digits: int = 2) -> str:
  """``mean ± std`` (no ± for one value; ``n/a`` for none)."""
  values = list(values)
  if not values:
    return MISSING
  mean, std = mean_std(values)
  text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
  return text if std is None else f"{text} ± {std:.{digits}f}"


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float] | None:
  """(mean, low, high): Student's t interval of the mean; None under two values."""
  values = list(values)
  if len(values) < 2:
    return None
  mean, std = mean_std(values)
  half = scipy_stats.t.ppf(0.5 + level / 2, len(values) - 1) * std / len(values) ** 0.5
  return mean, mean - half, mean + half


def fmt_ci(values, *, digits: int = 2) -> str:
  """``[low, high]`` of ``mean_ci`` (``n/a`` under two values)."""
  ci = mean_ci(values)
  return MISSING if ci is None else f"[{ci[1]:+.{digits}f}, {ci[2]:+.{digits}f}]"


def paired_diff(cell: Cell | None, base: Cell | None) -> list[float]:
  """cell - base for each seed both have."""
  if cell is None or base is None:
    return []
  return [cell.values[s] - base.values[s] for s in sorted(cell.values) if s in base.values]


def fmt_cell(cell: Cell | None) -> str:
  if cell is None:
    return MISSING
  if not cell.values:
    return "failed" if cell.failed and not cell.done_without else MISSING
  notes = []
  if len(cell.values) < cell.expected:
    notes.append(f"n={len(cell.values)}")
  if cell.failed:
    notes.append(f"{cell.failed} failed")
  return fmt_stats(cell.values.values()) + (f" ({', '.join(notes)})" if notes else "")


def fmt_diff(cell: Cell | None, base: Cell | None) -> str:
  """Paired difference: ``mean ± std [95 % CI]``."""
  diffs = paired_diff(cell, base)
  text = fmt_stats(diffs, signed=True)
  if len(diffs) >= 2:
    text += f" {fmt_ci(diffs)}"
  expected = cell.expected if cell is not None else 0
  return text if not diffs or len(diffs) >= expected else f"{text} (n={len(diffs)})"


# ---------------------------------------------------------------- markdown

def _md_row(cells) -> str:
  return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def render_grid(table: dict, cell_of, reference: Cell | None = None) -> list[str]:
  """A markdown table in the sweep's layout; ``cell_of(row, col) -> Cell | None``.

  With ``reference`` (the run of ``diff: {"run": ...}``) each cell also shows its
  difference to it."""
  rows, cols, diff = table["rows"], table["cols"], table.get("diff") or {}
  along, base = diff.get("along"), diff.get("base")
  diff_cols = [c for c in cols if c != base] if along == "cols" else []
  header = [table.get("row_header", ""), *cols, *(f"{c} − {base}" for c in diff_cols)]
  lines = [_md_row(header), _md_row(["---"] * len(header))]
  for row in rows:
    out = [row]
    for col in cols:
      cell = cell_of(row, col)
      text = fmt_cell(cell)
      if along == "rows" and row != base and cell is not None and cell.values:
        text += f" ({fmt_diff(cell, cell_of(base, col))})"
      elif reference is not None and cell is not None and cell.values:
        text += f" ({fmt_diff(cell, reference)})"
      out.append(text)
    out += [fmt_diff(cell_of(row, c), cell_of(row, base)) for c in diff_cols]
    lines.append(_md_row(out))
  return lines


def _cells(records, metric: str, expected: int) -> dict:
  """run name -> Cell of ``metric`` in percent."""
  cells = {}
  for r in records:
    cell = cells.setdefault(r.name, Cell(values={}, expected=expected))
    if r.status == wd.STATUS_DONE and metric in r.metrics:
      cell.values[r.seed] = 100.0 * r.metrics[metric]
    elif r.status == wd.STATUS_DONE:
      cell.done_without += 1
    elif r.status == wd.STATUS_FAILED:
      cell.failed += 1
  return cells


def _metrics(sweep, records) -> list[str]:
  """The sweep's metrics that some run reports (AP50 always), plus COCO's AP when found."""
  names = [m for m in sweep_lib.metrics(sweep)
           if m == "AP50" or any(m in r.metrics for r in records)]
  if "AP" not in names and any("AP" in r.metrics for r in records):
    names.append("AP")
  return names


def render(sweep: dict, records, *, command: str, spec: str, root: str, seeds) -> str:
  """The whole results.md."""
  table, seeds = sweep["table"], sorted(seeds)
  by_cell = {(run["row"], run["col"]): run["name"] for run in sweep["runs"] if "row" in run}
  counts = {s: sum(r.status == s for r in records) for s in
            (wd.STATUS_DONE, wd.STATUS_FAILED, wd.STATUS_INCOMPLETE, wd.STATUS_MISSING)}
  status = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
  out = [f"# {sweep.get('title', spec)}", "",
         f"Produced by: `{command}`", "",
         (f"Sweep `{spec}` · config `{sweep['config']}` · base overrides "
          f"`{' '.join(sweep['base']) or '(none)'}` · seeds {', '.join(map(str, seeds))} · "
          f"{len(sweep['runs'])} runs x {len(seeds)} seed(s): {status} · {_now()}"), "",
         ("Cells: metric (%) of the final eval, mean ± std over seeds (std ddof=1; one seed: "
          "no ±; `n=` finished seeds when fewer than all; `n/a`: not run yet). Differences "
          "are paired by seed: mean ± std [95 % confidence interval of the mean]. "
          "AP50_agnostic is AP50 with all classes merged: localisation apart from "
          "classification."), ""]
  diff = table.get("diff") or {}
  for metric in _metrics(sweep, records):
    cells = _cells(records, metric, expected=len(seeds))

    def cell_of(row, col, cells=cells):
      return cells.get(by_cell.get((row, col)))
    out += [f"## {metric} (%)", ""]
    out += render_grid(table, cell_of, reference=cells.get(diff.get("run")))
    if "run" in diff:
      out += ["", (f"In parentheses: the difference to `{diff['run']}`: "
                   f"{fmt_cell(cells.get(diff['run']))}.")]
    paper = (table.get("paper") or {}).get(metric)
    if paper:
      def paper_of(row, col, paper=paper):
        value = paper.get(row, {}).get(col)
        return None if value is None else Cell(values={0: value})
      out += ["", f"The paper's {metric} (%), same layout:", ""]
      out += render_grid(table, paper_of)
    out.append("")
  out += _runs_section(records)
  failed = [r for r in records if r.status == wd.STATUS_FAILED]
  if failed:
    out += ["", "## Failures", ""]
    last = {(f["name"], f["seed"]): f for f in launcher.read_failures(root)}
    for r in failed:
      f = last.get((r.name, r.seed), {})
      out.append(f"- `{r.name}` seed {r.seed}: {f.get('reason', 'failed')} "
                 f"(log: `{os.path.join(r.workdir, wd.LOG)}`; tail in failures.jsonl)")
  return "\n".join(out).rstrip("\n") + "\n"


def _runs_section(records) -> list[str]:
  shown = [k for k in METRIC_KEYS if k == "AP50" or any(k in r.metrics for r in records)]
  header = ["run", "seed", "status", *(f"{k} (%)" for k in shown),
            "anchors (px, last logged)", "wall (s)"]
  lines = ["## Runs", "", _md_row(header), _md_row(["---"] * len(header))]
  for r in records:
    anchors = " ".join(f"{w:.1f}×{h:.1f}" for w, h in r.anchors_px) if r.anchors_px else ""
    wall = "" if r.wall_s is None else f"{r.wall_s:.0f}"
    lines.append(_md_row([r.name, r.seed, r.status, *(_pct(r.metrics.get(k)) for k in shown),
                          anchors, wall]))
  return lines


def _pct(value) -> str:
  return MISSING if value is None else f"{100 * value:.2f}"


def _now() -> str:
  return datetime.datetime.now().isoformat(timespec="seconds")


def write_all(sweep: dict, root: str, seeds, *, command: str, spec: str) -> list[Record]:
  """Writes DIR/results.csv and DIR/results.md; returns the records."""
  seeds = set(seeds) | seeds_on_disk(sweep, root)
  records = collect(sweep, root, seeds)
  os.makedirs(root, exist_ok=True)
  write_csv(records, os.path.join(root, "results.csv"))
  with open(os.path.join(root, "results.md"), "w") as f:
    f.write(render(sweep, records, command=command, spec=spec, root=root, seeds=seeds))
  return records
