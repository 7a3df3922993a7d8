"""Run logs in the workdir: metrics.jsonl, anchors.jsonl, TensorBoard, console.

Only process 0 writes files; every process may print.
"""
from __future__ import annotations

import math
import time

from absl import logging
from clu import metric_writers

from anchor_jax import workdir as workdir_lib


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
      self.writer = metric_writers.create_default_writer(workdir, asynchronous=False)

  def scalars(self, step: int, metrics: dict) -> dict:
    """Logs scalars at ``step``; adds steps/s and ETA; returns the record written."""
    now = time.time()
    rate = (step - self.last_step) / max(now - self.last_t, 1e-9)
    self.last_t, self.last_step = now, step
    record = {"step": step, **{k: float(v) for k, v in metrics.items()},
              "steps_per_sec": rate, "images_per_sec": rate * self.images_per_step,
              "elapsed_s": now - self.t0}   # since this launch's loop began (compile included)
    if self.is_primary:
      workdir_lib.append_metrics(self.workdir, record)
      self.writer.write_scalars(step, {k: v for k, v in record.items() if k != "step"})
      self.writer.flush()
    eta = (self.total_steps - step) / max(rate, 1e-9)
    logging.info("step %d/%d  loss %.4f  T %.3f  lambda %.3f  lr %.2e  %.2f steps/s  ETA %s",
                 step, self.total_steps, record.get("loss", float("nan")),
                 record.get("temperature", 0), record.get("cluster_weight", 0),
                 record.get("lr", 0), rate, _hms(eta))
    return record

  def anchors(self, step: int, anchors_grid, *, stride: int, counts) -> None:
    """One anchors.jsonl line: anchors [A, 2] in grid units and their assignment counts."""
    if not self.is_primary:
      return
    workdir_lib.append_anchors(self.workdir, step, anchors_grid, stride=stride, counts=counts)

  def close(self):
    if self.writer is not None:
      self.writer.close()


def _hms(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
