"""What the runner reads and writes in one run's workdir (``DIR/<run>/seed<k>/``).

Written by the training CLI: a training workdir (its files are named and read through
``anchor_jax.workdir``). Written by the runner beside them: ``train.log`` (the trainer's
stdout and stderr, appended per launch), ``attempts.jsonl`` (one line per launch:
``end``, ``wall_s``, ``rc``, ``interrupted``, ``failed``, ``command``) and ``DONE`` (the
final eval line, once the trainer exited 0 after evaluating at its last step).
"""
from __future__ import annotations

import collections
import json
import os

from anchor_jax import workdir as workdir_lib
from anchor_jax.workdir import append_jsonl, read_jsonl  # noqa: F401 -- the runner's JSONL

DONE = "DONE"
ATTEMPTS = "attempts.jsonl"
LOG = "train.log"

# A run's status, as the tables show it.
STATUS_DONE, STATUS_FAILED = "done", "failed"
STATUS_INCOMPLETE, STATUS_MISSING = "incomplete", "missing"


def config_value(workdir: str, section: str, key: str):
  """``config.json[section][key]`` of a workdir, or None if it cannot be read."""
  try:
    return workdir_lib.read_config(workdir)[section][key]
  except (workdir_lib.WorkdirError, KeyError, TypeError):
    return None


def final_eval(workdir: str) -> dict | None:
  """The last eval.jsonl line at (or after) the config's ``train.steps``, else None."""
  steps = config_value(workdir, "train", "steps")
  if steps is None:
    return None
  final = [e for e in workdir_lib.read_evals(workdir) if e.get("step", -1) >= steps]
  return final[-1] if final else None


def done_eval(workdir: str) -> dict | None:
  """The eval line stored in DONE, or None when the run is not finished."""
  path = os.path.join(workdir, DONE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.loads(f.read())


def mark_done(workdir: str, eval_line: dict) -> None:
  tmp = os.path.join(workdir, DONE + ".tmp")
  with open(tmp, "w") as f:
    f.write(json.dumps(eval_line) + "\n")
  os.replace(tmp, os.path.join(workdir, DONE))


def attempts(workdir: str) -> list[dict]:
  return read_jsonl(os.path.join(workdir, ATTEMPTS))


def status(workdir: str) -> str:
  """done | failed (the last launch failed) | incomplete (started, stopped) | missing."""
  if os.path.exists(os.path.join(workdir, DONE)):
    return STATUS_DONE
  tries = attempts(workdir)
  if tries and not tries[-1].get("interrupted") and tries[-1].get("failed"):
    return STATUS_FAILED
  if tries or os.path.exists(workdir_lib.path(workdir, workdir_lib.CONFIG)):
    return STATUS_INCOMPLETE
  return STATUS_MISSING


def wall_seconds(workdir: str) -> float | None:
  """Total wall time of all launches (a resumed run counts every attempt)."""
  tries = attempts(workdir)
  return sum(t.get("wall_s", 0.0) for t in tries) if tries else None


def last_anchors(workdir: str) -> dict | None:
  lines = workdir_lib.read_anchors(workdir)
  return lines[-1] if lines else None


def log_tail(workdir: str, lines: int) -> list[str]:
  path = os.path.join(workdir, LOG)
  if not os.path.exists(path):
    return []
  with open(path, errors="replace") as f:
    return [line.rstrip("\n") for line in collections.deque(f, maxlen=lines)]
