"""The training workdir's format: every file name, and one JSON-lines reader and appender.

A workdir (``--workdir=DIR`` of ``python -m anchor_jax.main``) holds:

  config.json          the resolved config of the run
  checkpoints/         orbax checkpoints (``training/checkpoint.py``)
  metrics.jsonl        one object per logged step: step, loss, each loss term, lr, T, lambda...
  anchors.jsonl        step, anchors [[w, h], ...] in grid units, anchors_px, counts
  eval.jsonl           step, split, AP50 (AP for COCO), per_class, counts...
  anchors.png          Figure 2 of the paper, written at the end of training
  inspect/             the figures of ``python -m anchor_jax.inspect``
  anchors_darknet.txt  the learned anchors as a darknet ``anchors=`` line (anchors CLI)
  anchors.yaml         the same as YAML (anchors CLI)
  events.out.tfevents.*  TensorBoard scalars (written by clu)
  lock.json            held by the training run using the workdir (process id, host)

JSON lines: a line that does not parse (a torn last line of a killed run, or a damaged
one) is skipped with a warning naming the file and line; the next append starts on a new
line, so a new record is never glued to a broken one. Every reader of these files
(training, evaluation, inspect, the anchors CLI, experiments/) goes through this module.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import math
import os
import socket

import ml_collections
import numpy as np
from absl import logging

from anchor_jax.errors import UserError

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
ANCHORS = "anchors.jsonl"
EVAL = "eval.jsonl"
ANCHORS_PNG = "anchors.png"
INSPECT = "inspect"
DARKNET_EXPORT = "anchors_darknet.txt"
YAML_EXPORT = "anchors.yaml"
LOCK = "lock.json"


class WorkdirError(UserError):
  """A workdir (or one of its files) that is missing, unreadable or not a run's."""


def path(workdir: str, name: str) -> str:
  """``workdir/name`` for one of the names above."""
  return os.path.join(workdir, name)


# ------------------------------------------------------------------ JSON lines


def jsonable(value):
  """NumPy arrays and scalars -> lists and numbers; NaN -> None, inf -> +-1e308 (JSON has
  neither)."""
  if isinstance(value, (np.ndarray, np.generic)):
    value = value.tolist()
  if isinstance(value, float) and not math.isfinite(value):
    return None if math.isnan(value) else math.copysign(1e308, value)
  if isinstance(value, list):
    return [jsonable(v) for v in value]
  if isinstance(value, dict):
    return {k: jsonable(v) for k, v in value.items()}
  return value


def read_jsonl(file: str) -> list[dict]:
  """The JSON objects of a jsonl file, in file order; [] when it does not exist.

  Blank lines are ignored; a line that is not a JSON object is skipped with a warning.
  Raises WorkdirError when the file exists but cannot be read as text.
  """
  if not os.path.exists(file):
    return []
  try:
    with open(file, encoding="utf-8") as f:
      lines = f.readlines()
  except OSError as e:
    raise WorkdirError(f"{file}: cannot read ({e.strerror})") from None
  except UnicodeDecodeError:
    raise WorkdirError(f"{file}: not a text file") from None
  records = []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      record = None
    if not isinstance(record, dict):
      logging.warning("%s: skipping line %d, not a JSON object (torn or damaged)", file, number)
      continue
    records.append(record)
  return records


def append_jsonl(file: str, record: dict) -> None:
  """Appends ``record`` as one line (values through ``jsonable``). After a torn last line
  (no final newline) it starts a new line first."""
  text = json.dumps({k: jsonable(v) for k, v in record.items()}) + "\n"
  with open(file, "a+b") as f:
    if f.seek(0, os.SEEK_END) > 0:
      f.seek(-1, os.SEEK_END)
      if f.read(1) != b"\n":
        text = "\n" + text
    f.write(text.encode())


def by_step(records: list[dict]) -> list[dict]:
  """One record per ``step`` (a resumed run re-logs the steps after its checkpoint: the
  later line wins), sorted by step. Records without an integer step are dropped."""
  latest = {r["step"]: r for r in records if isinstance(r.get("step"), int)}
  return [latest[s] for s in sorted(latest)]


# ------------------------------------------------------------------ the run's files


def write_config(workdir: str, config) -> str:
  """Writes the resolved config as ``config.json``; returns its path."""
  file = path(workdir, CONFIG)
  with open(file, "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  return file


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """``config.json`` of a workdir as a ConfigDict; WorkdirError if it is not one."""
  file = path(workdir, CONFIG)
  if not os.path.isdir(workdir):
    raise WorkdirError(f"{workdir}: no such directory")
  if not os.path.isfile(file):
    raise WorkdirError(f"{workdir} is not a training workdir: no {CONFIG} "
                       "(written by python -m anchor_jax.main)")
  try:
    with open(file, encoding="utf-8") as f:
      raw = json.load(f)
  except OSError as e:
    raise WorkdirError(f"{file}: cannot read ({e.strerror})") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise WorkdirError(f"{file}: not valid JSON ({e})") from None
  try:
    if not isinstance(raw, dict):
      raise ValueError("not a JSON object")
    return ml_collections.ConfigDict(raw)
  except (TypeError, ValueError) as e:
    raise WorkdirError(f"{file}: not a resolved training config ({e})") from None


def append_metrics(workdir: str, record: dict) -> None:
  append_jsonl(path(workdir, METRICS), record)


def append_anchors(workdir: str, step: int, anchors_grid, *, stride: int, counts) -> None:
  """One anchors.jsonl line: ``anchors`` [A, 2] grid units, ``anchors_px`` (times the
  stride) and ``counts`` [A] (assignment mass since the previous line)."""
  anchors_grid = np.asarray(anchors_grid, np.float64)
  append_jsonl(path(workdir, ANCHORS), {
      "step": int(step), "anchors": np.round(anchors_grid, 5),
      "anchors_px": np.round(anchors_grid * stride, 3),
      "counts": np.round(np.asarray(counts, np.float64), 3)})


def eval_record(step: int, split: str, result: dict) -> dict:
  """The eval.jsonl line of an evaluation ``result``: step, split, every scalar entry
  (AP50, AP, counts...) and the per-class tables."""
  line = {"step": int(step), "split": split}
  line.update({k: v for k, v in result.items()
               if k in ("per_class", "per_class_AP50") or not isinstance(v, (dict, list))})
  return line


def append_eval(workdir: str, step: int, split: str, result: dict) -> None:
  append_jsonl(path(workdir, EVAL), eval_record(step, split, result))


def read_metrics(workdir: str) -> list[dict]:
  return read_jsonl(path(workdir, METRICS))


def read_anchors(workdir: str) -> list[dict]:
  return read_jsonl(path(workdir, ANCHORS))


def read_evals(workdir: str) -> list[dict]:
  return read_jsonl(path(workdir, EVAL))


# ------------------------------------------------------------------ the training lock


def _alive(pid: int) -> bool:
  """Whether a process of this id runs on this host."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:   # it exists, owned by someone else
    return True
  return True


def read_lock(workdir: str) -> dict | None:
  """The holder recorded in ``lock.json`` ({pid, host, started}), or None."""
  try:
    with open(path(workdir, LOCK), encoding="utf-8") as f:
      holder = json.load(f)
  except (OSError, ValueError):
    return None
  return holder if isinstance(holder, dict) else None


@contextlib.contextmanager
def locked(workdir: str):
  """Holds ``workdir/lock.json`` while a training run uses the workdir.

  A second run on the same workdir raises WorkdirError naming the holder (pid and host);
  a lock left by a process that no longer runs on this host is taken over with a
  warning. Acquiring is serialised on this host by an flock on the workdir itself. A
  lock from another host cannot be checked: the error says how to remove it.
  """
  file = path(workdir, LOCK)
  me = {"pid": os.getpid(), "host": socket.gethostname(),
        "started": datetime.datetime.now().isoformat(timespec="seconds")}
  guard = os.open(workdir, os.O_RDONLY)
  try:
    fcntl.flock(guard, fcntl.LOCK_EX)
    try:
      holder = read_lock(workdir)
      if holder is not None:
        pid, host = holder.get("pid"), holder.get("host")
        if host == me["host"] and isinstance(pid, int) and not _alive(pid):
          logging.warning("%s: taking over a stale lock of process %d (no longer running; "
                          "started %s)", workdir, pid, holder.get("started"))
        elif host != me["host"]:
          raise WorkdirError(
              f"{workdir} is in use by process {pid} on host {host} (since "
              f"{holder.get('started')}): one run per workdir. If that run is gone, "
              f"delete {file}.")
        else:
          raise WorkdirError(
              f"{workdir} is in use by process {pid} on this host ({host}, since "
              f"{holder.get('started')}): one run per workdir. Wait for it, stop it, or "
              "use another --workdir.")
      with open(file + ".tmp", "w") as f:
        json.dump(me, f)
      os.replace(file + ".tmp", file)
    finally:
      fcntl.flock(guard, fcntl.LOCK_UN)
  finally:
    os.close(guard)
  try:
    yield me
  finally:
    if (read_lock(workdir) or {}).get("pid") == me["pid"]:
      os.remove(file)
