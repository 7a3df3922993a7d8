"""Train YOLOv2 with learnable anchors.

  python -m anchor_jax.main --config=configs/synthetic.py --workdir=runs/demo \
      [--config.anchors.init=kmeans ...]

Resumes from ``--workdir`` when it holds checkpoints. Several hosts: start one
process per host with ``--coordinator=HOST:PORT --num_processes=N --process_id=i``
(or the ANCHOR_JAX_* environment variables, see ``training/parallel.py``).

At the end it prints the lines ``initial anchors (px): ...``, ``learned anchors (px):
...``, ``AP50 at step N: X`` (and ``figure: PATH``) that scripts parse, then a summary
of the run (steps, wall time, images/s, initial -> learned anchors, AP50 and
class-agnostic AP50, where the checkpoint and figures are). ``--json`` prints the
summary as one JSON object instead.
"""
from __future__ import annotations

import logging as py_logging
import time

import jax
import numpy as np
from absl import flags, logging

from anchor_jax import config_lib
from anchor_jax import workdir as workdir_lib
from anchor_jax.analysis import report_text
from anchor_jax.tools import cli
from anchor_jax.training import parallel, train


def define_flags(fv: flags.FlagValues, argv) -> None:
  cli.define_config(fv, argv, required=True)
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.", flag_values=fv)
  flags.DEFINE_string("coordinator", "", "host:port of process 0 (multi-host).",
                      flag_values=fv)
  flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-host).", flag_values=fv)
  flags.DEFINE_integer("process_id", -1, "This process's index (multi-host).", flag_values=fv)
  cli.define_json(fv)
  flags.mark_flag_as_required("workdir", flag_values=fv)


def _fmt(anchors) -> str:
  return " ".join(f"({w:.1f}, {h:.1f})" for w, h in np.asarray(anchors))


def steady_images_per_sec(workdir: str, start_step: int, step: int) -> float | None:
  """Median ``images_per_sec`` of this session's metrics.jsonl windows after its first
  (which holds the compile): the throughput of training itself; None with fewer than two
  windows."""
  rates = [r["images_per_sec"] for r in workdir_lib.by_step(workdir_lib.read_metrics(workdir))
           if start_step < r["step"] <= step and "images_per_sec" in r]
  return float(np.median(rates[1:])) if len(rates) >= 2 else None


def json_summary(summary: dict) -> dict:
  """``train_and_evaluate``'s summary, JSON-ready (arrays as lists)."""
  return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in summary.items()}


def render(summary: dict) -> str:
  """The end-of-run text: the lines scripts parse, unchanged, then the run summary."""
  if summary["stopped_early"]:
    return (f"stopped by {summary['signal']} at step {summary['step']} of "
            f"{summary['total_steps']} (checkpoint {summary['checkpoint']}); run the same "
            "command again to resume")
  lines = [f"initial anchors (px): {_fmt(summary['initial_anchors_px'])}",
           f"learned anchors (px): {_fmt(summary['learned_anchors_px'])}"]
  if summary["eval"] is not None:
    ap = summary["eval"]["AP50"]
    lines.append(f"AP50 at step {summary['step']}: {ap if ap is None else round(100 * ap, 2)}")
  if summary.get("plot"):
    lines.append(f"figure: {summary['plot']}")
  return "\n".join(lines) + "\n" + report_text.to_text(report_text.train_blocks(summary))


class _QuietLibraries(py_logging.Filter):
  """Keeps the console to our own progress lines: drops INFO chatter of orbax
  (every checkpoint write) and clu (every scalar dict, already in metrics.jsonl)."""

  def filter(self, record):
    noisy = any(part in record.pathname for part in ("/orbax/", "/clu/", "/jax/_src/"))
    return record.levelno >= py_logging.WARNING or not noisy


def main(fv: flags.FlagValues, args) -> int:
  if args:
    raise cli.UsageError(f"unexpected arguments {args}")
  config = cli.config_value(fv)
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  try:
    parallel.initialize_distributed(coordinator=fv.coordinator,
                                    num_processes=fv.num_processes, process_id=fv.process_id)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  start = time.monotonic()
  summary = train.train_and_evaluate(config, fv.workdir)
  summary = {**summary, "workdir": fv.workdir, "wall_s": time.monotonic() - start}
  status = 130 if summary["signal"] == "SIGINT" else 0   # the shell's status for Ctrl-C
  if jax.process_index() != 0:
    return status
  summary["steady_images_per_sec"] = steady_images_per_sec(
      fv.workdir, summary["step"] - summary["steps_run"], summary["step"])
  cli.report(fv, json_summary(summary), render)
  return status if summary["stopped_early"] else 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)
