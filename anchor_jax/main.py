"""Train YOLOv2 with learnable anchors.

  python -m anchor_jax.main --config=configs/synthetic.py --workdir=runs/demo \
      [--config.anchors.init=kmeans ...]

Resumes from ``--workdir`` when it holds checkpoints. Several hosts: start one
process per host with ``--coordinator=HOST:PORT --num_processes=N --process_id=i``
(or the ANCHOR_JAX_* environment variables, see ``parallel.py``).
"""
from __future__ import annotations

import logging as py_logging
import sys

import numpy as np

from absl import app, flags, logging
from absl import logging as absl_logging
from ml_collections import config_flags

from anchor_jax import config_lib, parallel
from anchor_jax.data.detection import DatasetError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
_COORDINATOR = flags.DEFINE_string("coordinator", "", "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index (multi-host).")
flags.mark_flags_as_required(["config", "workdir"])


def _fmt(anchors) -> str:
  return " ".join(f"({w:.1f}, {h:.1f})" for w, h in np.asarray(anchors))


class _QuietLibraries(py_logging.Filter):
  """Keeps the console to our own progress lines: drops INFO chatter of orbax
  (every checkpoint write) and clu (every scalar dict, already in metrics.jsonl)."""

  def filter(self, record):
    noisy = any(part in record.pathname for part in ("/orbax/", "/clu/", "/jax/_src/"))
    return record.levelno >= py_logging.WARNING or not noisy


def main(argv):
  del argv
  absl_logging.get_absl_handler().addFilter(_QuietLibraries())
  parallel.initialize_distributed(coordinator=_COORDINATOR.value,
                                  num_processes=_NUM_PROCESSES.value,
                                  process_id=_PROCESS_ID.value)
  from anchor_jax import checkpoint as ckpt_lib, train  # after distributed start-up
  try:
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_lib.ConfigError, train.NonFiniteLossError, DatasetError,
          ckpt_lib.CheckpointError) as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  import jax
  if jax.process_index() != 0:
    return
  print(f"initial anchors (px): {_fmt(summary['initial_anchors_px'])}")
  print(f"learned anchors (px): {_fmt(summary['learned_anchors_px'])}")
  if summary["eval"] is not None:
    ap = summary["eval"]["AP50"]
    print(f"AP50 at step {summary['step']}: {ap if ap is None else round(100 * ap, 2)}")
  if summary.get("plot"):
    print(f"figure: {summary['plot']}")


if __name__ == "__main__":
  app.run(main)
