r"""Checks the paper's three Table 1 claims on a finished (or partial) Table 1 sweep.

  python -m experiments.claims experiments/sweeps/table1.py:cpu --workdir_root=runs/table1

Reads only the workdirs (like ``--table_only``), writes ``DIR/claims.md`` and prints the
same tables aligned as text (``--json``: the numbers as one JSON object):

1. **Opt beats Baseline**: for each init, Opt - Baseline in AP50 points, paired by seed;
   the claim holds for an init when the mean gain is >= ``--min_gain`` (paper: >= 1).
2. **Opt is robust to the init**: the spread (max - min over inits) of Opt's mean AP50;
   holds when <= ``--max_spread`` points (paper Table 1: 0.06 on VOC). Baseline's spread is
   shown next to it for contrast.
3. **Learned anchors agree across inits** (paper Table 4): for each seed and each pair of
   inits, Opt's two learned anchor sets are matched one to one (Hungarian, maximising
   the summed shape IoU); the score of a pair is its worst side: the largest relative
   difference ``max(x, y) / min(x, y) - 1`` of a width or height over the matched anchors.
   The claim holds when every pair's mean over seeds is <= ``--max_side_diff`` (5 %, the
   closeness of the paper's Table 4 sets); the mean matched IoU is shown beside it. The
   same scores between Opt's learned anchors and the k-means anchors say how far learning
   moved from clustering.

A verdict needs every expected seed of both cells, and at least two seeds (pass
``--seeds K`` while a sweep is still running: the seeds found on disk may be fewer); with
missing seeds it says so rather than guessing. To tell "the anchors did not help localisation" from "localisation is not what
limits AP here", the file also tabulates ``avg_iou`` from ``metrics.jsonl`` (mean IoU of the
responsible predictions with their GT boxes over the last logged window of training) and
the class cross-entropy per assigned GT box, per cell.
"""
from __future__ import annotations

import functools
import itertools
import os
import statistics
import sys

import numpy as np
from absl import flags
from scipy import optimize

from anchor_jax import workdir as workdir_lib
from anchor_jax.analysis import report_text
from anchor_jax.core import box_ops
from anchor_jax.tools import cli
from experiments import results, sweep_lib
from experiments import workdir as wd
from experiments.results import fmt_stats

BASELINE, OPT = "Baseline", "Opt"
TRAIN_KEYS = ("avg_iou",)   # last metrics.jsonl window, tabulated per cell


def _matching(anchors_a, anchors_b):
  """(a [A, 2], b [A, 2] reordered to a's matches, IoU [A]) of the one-to-one matching of
  two anchor sets that maximises the summed shape IoU."""
  a = np.asarray(anchors_a, dtype=np.float64)   # [A, 2] (w, h)
  b = np.asarray(anchors_b, dtype=np.float64)   # [A, 2]
  if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2:
    raise ValueError(f"anchor sets must both be [A, 2]; got {a.shape} and {b.shape}")
  iou = np.asarray(box_ops.shape_iou(a[:, None, :], b[None, :, :]))   # [A, A]
  rows, cols = optimize.linear_sum_assignment(iou, maximize=True)
  return a[rows], b[cols], iou[rows, cols]


def matched_iou(anchors_a, anchors_b) -> float:
  """Mean shape IoU of the best one-to-one matching of two [A, 2] anchor sets."""
  return float(_matching(anchors_a, anchors_b)[2].mean())


def matched_side_diff(anchors_a, anchors_b) -> float:
  """The worst side of the best matching: max over matched anchors and over (w, h) of
  ``max(x, y) / min(x, y) - 1`` (0.05: the sides agree within 5 %)."""
  a, b, _ = _matching(anchors_a, anchors_b)
  return float((np.maximum(a, b) / np.minimum(a, b)).max() - 1.0)


def last_train_metric(workdir: str, key: str) -> float | None:
  """``key`` of the last metrics.jsonl record that has it (None if none)."""
  for record in reversed(workdir_lib.read_metrics(workdir)):
    if key in record:
      return float(record[key])
  return None


def class_nats_per_box(workdir: str) -> float | None:
  """Class cross-entropy per assigned GT box over the last logged window: ``cls`` (per
  image, times loss.class_scale) x batch / class_scale / assignment mass per step
  (anchors.jsonl ``counts`` summed over the window). Compare with ln(num_classes), a
  uniform guess. None if the logs lack it or the class term is off."""
  cls = last_train_metric(workdir, "cls")
  records = workdir_lib.read_anchors(workdir)
  batch = wd.config_value(workdir, "train", "batch_size")
  scale = wd.config_value(workdir, "loss", "class_scale")
  if cls is None or batch is None or not scale or len(records) < 2:
    return None
  cls /= scale
  window = records[-1]["step"] - records[-2]["step"]
  mass_per_step = sum(records[-1].get("counts", ())) / window if window > 0 else 0.0
  return cls * batch / mass_per_step if mass_per_step > 0 else None


def _by_cell(records) -> dict:
  """(row, col) -> {seed: Record} over finished runs."""
  cells = {}
  for r in records:
    if r.status == wd.STATUS_DONE:
      cells.setdefault((r.row, r.col), {})[r.seed] = r
  return cells


def _pct_values(cell: dict) -> dict:
  return {s: 100 * r.metrics["AP50"] for s, r in cell.items() if "AP50" in r.metrics}


def check(sweep: dict, records, *, seeds, min_gain: float, max_spread: float,
          max_side_diff: float, kmeans_px: dict | None = None) -> dict:
  """The three claims as numbers and verdicts (``None`` = not decidable yet).

  ``kmeans_px``: seed -> the k-means anchor set of that seed's data, for the distance of
  the learned anchors to k-means.
  """
  seeds = sorted(seeds)
  has = {(r["row"], r["col"]) for r in sweep["runs"] if "row" in r}
  rows = sweep["table"]["rows"]
  inits = [row for row in rows if (row, BASELINE) in has and (row, OPT) in has]
  tools = [row for row in rows if (row, BASELINE) in has and (row, OPT) not in has]
  cells = _by_cell(records)
  ap = {(row, col): _pct_values(cells.get((row, col), {})) for row in rows
        for col in (BASELINE, OPT)}

  def complete(values):   # a verdict needs every seed, and a std needs two
    return len(seeds) >= 2 and all(s in values for s in seeds)

  gains = {}
  for init in inits:
    base, opt = ap[(init, BASELINE)], ap[(init, OPT)]
    diffs = [opt[s] - base[s] for s in seeds if s in opt and s in base]
    verdict = None
    if complete(base) and complete(opt):
      verdict = statistics.fmean(diffs) >= min_gain
    gains[init] = {"diffs": diffs, "holds": verdict}

  def spread(col):
    means = {i: statistics.fmean(ap[(i, col)].values()) for i in inits if ap[(i, col)]}
    decided = len(means) == len(inits) >= 2 and all(complete(ap[(i, col)]) for i in inits)
    value = max(means.values()) - min(means.values()) if len(means) >= 2 else None
    return {"means": means, "spread": value, "decided": decided}
  spreads = {col: spread(col) for col in (BASELINE, OPT)}
  opt_spread = spreads[OPT]
  robust = (opt_spread["spread"] <= max_spread) if opt_spread["decided"] else None

  learned = {i: {s: r.anchors_px for s, r in cells.get((i, OPT), {}).items()
                 if r.anchors_px} for i in inits}
  pairs, sides = {}, {}
  for a, b in itertools.combinations(inits, 2):
    both = [s for s in seeds if s in learned[a] and s in learned[b]]
    pairs[(a, b)] = [matched_iou(learned[a][s], learned[b][s]) for s in both]
    sides[(a, b)] = [matched_side_diff(learned[a][s], learned[b][s]) for s in both]
  agree = None
  if len(seeds) >= 2 and sides and all(len(v) == len(seeds) for v in sides.values()):
    agree = all(statistics.fmean(v) <= max_side_diff for v in sides.values())
  to_kmeans, to_kmeans_sides = {}, {}
  if kmeans_px:
    for i in inits:
      both = [s for s in seeds if s in learned[i] and s in kmeans_px]
      to_kmeans[i] = [matched_iou(learned[i][s], kmeans_px[s]) for s in both]
      to_kmeans_sides[i] = [matched_side_diff(learned[i][s], kmeans_px[s]) for s in both]
  readers = {key: functools.partial(last_train_metric, key=key) for key in TRAIN_KEYS}
  readers["cls_per_box"] = class_nats_per_box
  train = {key: {cell: {s: v for s, r in per_seed.items() if (v := read(r.workdir)) is not None}
                 for cell, per_seed in cells.items()} for key, read in readers.items()}
  # Opt from each init vs the Baseline of each other tool's anchors, paired by seed.
  versus = {(init, tool): [ap[(init, OPT)][s] - ap[(tool, BASELINE)][s] for s in seeds
                           if s in ap[(init, OPT)] and s in ap[(tool, BASELINE)]]
            for init in inits for tool in tools}
  return {"seeds": seeds, "inits": inits, "tools": tools, "versus": versus,
          "gains": gains, "spreads": spreads,
          "robust": robust, "pairs": pairs, "sides": sides, "agree": agree,
          "to_kmeans": to_kmeans, "to_kmeans_sides": to_kmeans_sides, "train": train,
          "learned": learned, "thresholds": {"min_gain": min_gain, "max_spread": max_spread,
                                             "max_side_diff": max_side_diff}}


def _verdict(value) -> str:
  return {True: "holds", False: "does not hold", None: "undecided (seeds missing)"}[value]


def report_blocks(out: dict, *, command: str, title: str) -> list:
  """The claims as ``report_text`` blocks: rendered as Markdown for claims.md and as
  aligned text for the terminal, from one description."""
  t = out["thresholds"]
  Heading, Table = report_text.Heading, report_text.Table
  blocks = [Heading(f"Claims check: {title}", level=1), f"Produced by: `{command}`",
            (f"Seeds {', '.join(map(str, out['seeds']))}; AP50 in points (%), "
             "mean ± std over seeds (ddof=1), differences paired by seed."),
            Heading(f"1. Opt beats Baseline by >= {t['min_gain']:g} AP50"),
            Table(["Init", "Opt − Baseline", "95 % CI", "verdict"],
                  [[init, fmt_stats(g["diffs"], signed=True), results.fmt_ci(g["diffs"]),
                    _verdict(g["holds"])] for init, g in out["gains"].items()], align="<>><")]
  rows = []
  for col in (BASELINE, OPT):
    s = out["spreads"][col]
    means = [f"{s['means'][i]:.2f}" if i in s["means"] else results.MISSING
             for i in out["inits"]]
    spread = results.MISSING if s["spread"] is None else f"{s['spread']:.2f}"
    rows.append([col, *means, spread])
  blocks += [Heading(f"2. Opt is robust to the init (spread <= {t['max_spread']:g} AP50)"),
             Table(["Method", *out["inits"], "spread (max − min)"], rows),
             f"Verdict (Opt): {_verdict(out['robust'])}.",
             Heading(f"3. Learned anchors agree across inits (every side within "
                     f"{100 * t['max_side_diff']:g} %)"),
             ("Opt's learned sets from two inits, matched one to one by shape IoU; worst "
              "side = the largest relative difference of a matched width or height (%)."),
             Table(["Opt from", "Opt from", "worst side (%)", "matched IoU"],
                   [[a, b, fmt_stats([100 * v for v in out["sides"][(a, b)]]),
                     fmt_stats(scores, digits=3)]
                    for (a, b), scores in out["pairs"].items()], align="<<>>"),
             f"Verdict: {_verdict(out['agree'])}."]
  if out["tools"]:
    blocks += [Heading("Learned anchors vs the anchors other tools give (not in the paper)"),
               ("Opt from each init minus the Baseline with the anchors of YOLOv5's AutoAnchor "
                "or darknet's calc_anchors (frozen), AP50 points, paired by seed."),
               Table(["Opt from", "vs Baseline with", "Opt − Baseline", "95 % CI"],
                     [[init, tool, fmt_stats(diffs, signed=True), results.fmt_ci(diffs)]
                      for (init, tool), diffs in out["versus"].items()], align="<<>>")]
  if out["to_kmeans"]:
    blocks += ["Learned (Opt) vs the k-means anchors of the training boxes, same scores:",
               Table(["Opt from", "worst side to k-means (%)", "matched IoU to k-means"],
                     [[i, fmt_stats([100 * x for x in out["to_kmeans_sides"][i]]),
                       fmt_stats(v, digits=3)] for i, v in out["to_kmeans"].items()])]
  iou, cls = out["train"]["avg_iou"], out["train"]["cls_per_box"]
  rows = []
  for init in out["inits"]:
    base, opt = iou.get((init, BASELINE), {}), iou.get((init, OPT), {})
    diffs = [opt[s] - base[s] for s in out["seeds"] if s in opt and s in base]
    rows.append([init, fmt_stats(list(base.values()), digits=3),
                 fmt_stats(list(opt.values()), digits=3),
                 fmt_stats(diffs, signed=True, digits=3),
                 fmt_stats(list(cls.get((init, BASELINE), {}).values()), digits=3),
                 fmt_stats(list(cls.get((init, OPT), {}).values()), digits=3)])
  blocks += [Heading("Where AP comes from: localisation vs classification"),
             ("Last logged training window: `avg_iou` = mean IoU of the responsible predictions "
              "with their GT boxes (localisation); `cls` = class cross-entropy per assigned GT "
              "box in nats (ln C for a uniform guess over C classes)."),
             Table(["Init", "avg IoU Baseline", "avg IoU Opt", "Opt − Baseline", "cls Baseline",
                    "cls Opt"], rows)]
  learned = []
  for init, per_seed in out["learned"].items():
    for seed, anchors in sorted(per_seed.items()):
      ordered = sorted(anchors, key=lambda wh: wh[0] * wh[1])
      learned.append(f"- {init}, seed {seed}: "
                     + " ".join(f"{w:.1f}×{h:.1f}" for w, h in ordered))
  if learned:
    blocks += ["Learned anchors (px, w×h, sorted by area; last logged step):",
               "\n".join(learned)]
  return blocks


def render(out: dict, *, command: str, title: str) -> str:
  """claims.md: the report as Markdown."""
  return report_text.to_markdown(report_blocks(out, command=command, title=title)) + "\n"


def _key(pair) -> str:
  return " / ".join(map(str, pair))


def to_json(out: dict, *, path: str) -> dict:
  """``check``'s numbers JSON-ready: tuple keys (init pairs, cells) become 'a / b'."""
  return {
      "claims_md": path, "seeds": out["seeds"], "inits": out["inits"], "tools": out["tools"],
      "thresholds": out["thresholds"], "gains": out["gains"], "spreads": out["spreads"],
      "robust": out["robust"], "agree": out["agree"],
      "pairs": {_key(k): v for k, v in out["pairs"].items()},
      "sides": {_key(k): v for k, v in out["sides"].items()},
      "versus": {_key(k): v for k, v in out["versus"].items()},
      "to_kmeans": out["to_kmeans"], "to_kmeans_sides": out["to_kmeans_sides"],
      "train": {key: {_key(cell): values for cell, values in per_cell.items()}
                for key, per_cell in out["train"].items()},
      "learned": out["learned"],
  }


def kmeans_of(records) -> dict:
  """seed -> the k-means anchors (px) that seed's k-means Baseline used (its logged, frozen
  set): the data, hence the k-means set, depend on the seed."""
  return {r.seed: r.anchors_px for r in records
          if r.row == "k-means" and r.col == BASELINE and r.anchors_px}


def define_flags(fv: flags.FlagValues, argv) -> None:
  del argv
  flags.DEFINE_string("workdir_root", None, "DIR the sweep ran in.", flag_values=fv)
  flags.DEFINE_integer("seeds", None, "Seeds 0..K-1 to expect (default: those found on disk).",
                       lower_bound=1, flag_values=fv)
  flags.DEFINE_float("min_gain", 1.0, "Claim 1 threshold, AP50 points.", flag_values=fv)
  flags.DEFINE_float("max_spread", 0.5, "Claim 2 threshold, points.", flag_values=fv)
  flags.DEFINE_float("max_side_diff", 0.05, "Claim 3 threshold: relative side difference.",
                     flag_values=fv)
  cli.define_json(fv)
  flags.mark_flag_as_required("workdir_root", flag_values=fv)


def main(fv: flags.FlagValues, args) -> int:
  if len(args) != 1:
    raise cli.UsageError("give one Table 1 sweep, e.g. experiments/sweeps/table1.py:cpu")
  spec = args[0]
  sweep = sweep_lib.load(spec)
  rows, cols = sweep["table"]["rows"], sweep["table"]["cols"]
  if BASELINE not in cols or OPT not in cols or len(rows) < 2:
    raise sweep_lib.SweepError(
        f"{spec} is not a Table 1 sweep (needs columns {BASELINE}/{OPT} and two or more "
        f"init rows; has {cols} x {rows})")
  seeds = (range(fv.seeds) if fv.seeds is not None
           else results.seeds_on_disk(sweep, fv.workdir_root))
  if not seeds:
    raise sweep_lib.SweepError(f"no run of {spec} found under {fv.workdir_root}")
  records = results.collect(sweep, fv.workdir_root, seeds)
  out = check(sweep, records, seeds=seeds, min_gain=fv.min_gain,
              max_spread=fv.max_spread, max_side_diff=fv.max_side_diff,
              kmeans_px=kmeans_of(records))
  command = "python -m experiments.claims " + " ".join([spec] + cli.given_flags(fv))
  title = sweep.get("title", spec)
  path = os.path.join(fv.workdir_root, "claims.md")
  with open(path, "w") as f:
    f.write(render(out, command=command, title=title))
  cli.report(fv, to_json(out, path=path), lambda _: report_text.to_text(
      report_blocks(out, command=command, title=title)) + f"\n\nwrote {path}")
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)


if __name__ == "__main__":
  sys.exit(run())
