"""Run logs in the workdir: metrics.jsonl, anchors.jsonl, TensorBoard, console.

Only process 0 writes files; every process may print.
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np
from absl import logging


def _jsonable(v):
  if isinstance(v, (np.ndarray, np.generic)):
    v = v.tolist()
  if isinstance(v, float) and not math.isfinite(v):
    return None if math.isnan(v) else (1e308 if v > 0 else -1e308)
  return v


def append_jsonl(path: str, record: dict) -> None:
  with open(path, "a") as f:
    f.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")


def read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class RunLogger:
  """Writes per-step scalars (jsonl + TensorBoard) and anchor snapshots."""

  def __init__(self, workdir: str, *, is_primary: bool, total_steps: int, start_step: int,
               images_per_step: int):
    self.workdir, self.is_primary = workdir, is_primary
    self.images_per_step = images_per_step
    self.total_steps, self.start_step = total_steps, start_step
    self.t0, self.last_t, self.last_step = time.time(), time.time(), start_step
    self.writer = None
    if is_primary:
      from clu import metric_writers  # imports TensorFlow's summary ops
      self.writer = metric_writers.create_default_writer(workdir, asynchronous=False)

  def scalars(self, step: int, metrics: dict) -> dict:
    """Logs scalars at ``step``; adds steps/s and ETA; returns the record written."""
    now = time.time()
    rate = (step - self.last_step) / max(now - self.last_t, 1e-9)
    self.last_t, self.last_step = now, step
    record = {"step": step, **{k: float(v) for k, v in metrics.items()},
              "steps_per_sec": rate, "images_per_sec": rate * self.images_per_step}
    if self.is_primary:
      append_jsonl(os.path.join(self.workdir, "metrics.jsonl"), record)
      self.writer.write_scalars(step, {k: v for k, v in record.items() if k != "step"})
      self.writer.flush()
    eta = (self.total_steps - step) / max(rate, 1e-9)
    logging.info("step %d/%d  loss %.4f  T %.3f  lambda %.3f  lr %.2e  %.2f steps/s  ETA %s",
                 step, self.total_steps, record.get("loss", float("nan")),
                 record.get("temperature", 0), record.get("cluster_weight", 0),
                 record.get("lr", 0), rate, _hms(eta))
    return record

  def anchors(self, step: int, anchors_grid: np.ndarray, *, stride: int, counts) -> None:
    if not self.is_primary:
      return
    append_jsonl(os.path.join(self.workdir, "anchors.jsonl"), {
        "step": step, "anchors": np.round(anchors_grid, 5),
        "anchors_px": np.round(anchors_grid * stride, 3),
        "counts": np.round(np.asarray(counts), 3)})

  def close(self):
    if self.writer is not None:
      self.writer.close()


def _hms(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
