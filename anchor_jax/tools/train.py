"""Train YOLOv2 with learnable anchors.

  python -m anchor_jax.main --config=configs/synthetic.py --workdir=runs/demo \
      [--config.anchors.init=kmeans ...]

Resumes from ``--workdir`` when it holds checkpoints. Several hosts: start one
process per host with ``--coordinator=HOST:PORT --num_processes=N --process_id=i``
(or the ANCHOR_JAX_* environment variables, see ``training/parallel.py``).
"""
from __future__ import annotations

import logging as py_logging

import jax
import numpy as np
from absl import flags, logging

from anchor_jax import config_lib
from anchor_jax.tools import cli
from anchor_jax.training import parallel, train


def define_flags(fv: flags.FlagValues, argv) -> None:
  cli.define_config(fv, argv, required=True)
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.", flag_values=fv)
  flags.DEFINE_string("coordinator", "", "host:port of process 0 (multi-host).",
                      flag_values=fv)
  flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-host).", flag_values=fv)
  flags.DEFINE_integer("process_id", -1, "This process's index (multi-host).", flag_values=fv)
  flags.mark_flag_as_required("workdir", flag_values=fv)


def _fmt(anchors) -> str:
  return " ".join(f"({w:.1f}, {h:.1f})" for w, h in np.asarray(anchors))


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
  summary = train.train_and_evaluate(config, fv.workdir)
  status = 130 if summary["signal"] == "SIGINT" else 0   # the shell's status for Ctrl-C
  if jax.process_index() != 0:
    return status
  if summary["stopped_early"]:
    print(f"stopped by {summary['signal']} at step {summary['step']} of "
          f"{summary['total_steps']} (checkpoint {summary['checkpoint']}); run the same "
          "command again to resume")
    return status
  print(f"initial anchors (px): {_fmt(summary['initial_anchors_px'])}")
  print(f"learned anchors (px): {_fmt(summary['learned_anchors_px'])}")
  if summary["eval"] is not None:
    ap = summary["eval"]["AP50"]
    print(f"AP50 at step {summary['step']}: {ap if ap is None else round(100 * ap, 2)}")
  if summary.get("plot"):
    print(f"figure: {summary['plot']}")
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)
