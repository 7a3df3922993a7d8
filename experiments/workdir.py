"""What the runner reads and writes in one run's workdir (``DIR/<run>/seed<k>/``).

Written by the training CLI: ``config.json``, ``eval.jsonl``, ``anchors.jsonl``,
checkpoints. Written by the runner: ``train.log`` (the trainer's stdout and stderr,
appended per launch), ``attempts.jsonl`` (one line per launch: ``end``, ``wall_s``,
``rc``, ``interrupted``, ``failed``, ``command``) and ``DONE`` (the final eval line, once the
trainer exited 0 after evaluating at its last step).
"""
from __future__ import annotations

import collections
import json
import os

DONE = "DONE"
ATTEMPTS = "attempts.jsonl"
LOG = "train.log"

# A run's status, as the tables show it.
STATUS_DONE, STATUS_FAILED = "done", "failed"
STATUS_INCOMPLETE, STATUS_MISSING = "incomplete", "missing"


def read_jsonl(path: str) -> list[dict]:
  """The JSON objects of a jsonl file; [] when missing; a torn last line is skipped."""
  if not os.path.exists(path):
    return []
  out = []
  with open(path) as f:
    for line in f:
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return out


def append_jsonl(path: str, record: dict) -> None:
  """Appends one line; after a torn last line (no newline) it starts a new line, so the
  new record is not glued to the broken one."""
  with open(path, "a+b") as f:
    torn = False
    if f.seek(0, os.SEEK_END) > 0:
      f.seek(-1, os.SEEK_END)
      torn = f.read(1) != b"\n"
    f.write((("\n" if torn else "") + json.dumps(record) + "\n").encode())


def config_value(workdir: str, section: str, key: str):
  """``config.json[section][key]`` of a workdir, or None if it cannot be read."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      return json.load(f)[section][key]
  except (OSError, ValueError, KeyError, TypeError):
    return None


def final_eval(workdir: str) -> dict | None:
  """The last eval.jsonl line at (or after) the config's ``train.steps``, else None."""
  steps = config_value(workdir, "train", "steps")
  if steps is None:
    return None
  final = [e for e in read_jsonl(os.path.join(workdir, "eval.jsonl"))
           if e.get("step", -1) >= steps]
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
  if tries or os.path.exists(os.path.join(workdir, "config.json")):
    return STATUS_INCOMPLETE
  return STATUS_MISSING


def wall_seconds(workdir: str) -> float | None:
  """Total wall time of all launches (a resumed run counts every attempt)."""
  tries = attempts(workdir)
  return sum(t.get("wall_s", 0.0) for t in tries) if tries else None


def last_anchors(workdir: str) -> dict | None:
  lines = read_jsonl(os.path.join(workdir, "anchors.jsonl"))
  return lines[-1] if lines else None


def log_tail(workdir: str, lines: int) -> list[str]:
  path = os.path.join(workdir, LOG)
  if not os.path.exists(path):
    return []
  with open(path, errors="replace") as f:
    return [line.rstrip("\n") for line in collections.deque(f, maxlen=lines)]
