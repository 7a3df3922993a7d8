"""anchor_jax.tools.train's end-of-run output: the lines scripts parse, unchanged, then the
run summary; --json; the throughput read back from metrics.jsonl."""
import json

import numpy as np
import pytest

from anchor_jax import workdir as workdir_lib
from anchor_jax.tools import train as train_tool

SUMMARY = {"step": 1200, "total_steps": 1200, "steps_run": 800, "wall_s": 201.26,
           "train_s": 180.04, "images_per_sec": 71.1, "steady_images_per_sec": 88.25,
           "initial_anchors": np.full((2, 2), 5.0), "learned_anchors": np.ones((2, 2)),
           "initial_anchors_px": np.full((2, 2), 160.0),
           "learned_anchors_px": np.array([[13.66, 16.04], [51.9, 33.6]]),
           "eval": {"AP50": 0.1113, "AP50_agnostic": 0.2049, "per_class": {"a": 0.1113}},
           "plot": "runs/d/anchors.png", "checkpoint": "runs/d/checkpoints/1200",
           "workdir": "runs/d", "stopped_early": False, "signal": None}


def test_render_keeps_the_parsed_lines_then_summarises():
  lines = train_tool.render(SUMMARY).splitlines()
  assert lines[:4] == ["initial anchors (px): (160.0, 160.0) (160.0, 160.0)",
                       "learned anchors (px): (13.7, 16.0) (51.9, 33.6)",
                       "AP50 at step 1200: 11.13",
                       "figure: runs/d/anchors.png"]
  assert lines[4:8] == [
      "run summary",
      "  steps      1200 of 1200 (800 this run)",
      "  wall time  201.3 s (training loop 180.0 s, compile and evals included)",
      "  images/s   71.1 over the loop, 88.2 median of the logged windows after the first"]
  assert "  0       160.0 x 160.0  ->   13.7 x 16.0" in lines
  assert "  AP50 at step 1200 (%)    11.13" in lines
  assert "  class-agnostic AP50 (%)  20.49" in lines
  assert "  checkpoint    runs/d/checkpoints/1200" in lines


def test_render_of_a_stopped_run_is_the_resume_hint():
  stopped = dict(SUMMARY, stopped_early=True, signal="SIGTERM", step=300)
  assert train_tool.render(stopped) == (
      "stopped by SIGTERM at step 300 of 1200 (checkpoint runs/d/checkpoints/1200); run the "
      "same command again to resume")


def test_json_summary_is_json():
  out = json.loads(json.dumps(train_tool.json_summary(SUMMARY)))
  assert out["learned_anchors_px"] == [[13.66, 16.04], [51.9, 33.6]]
  for key in ("step", "total_steps", "steps_run", "wall_s", "train_s", "images_per_sec",
              "eval", "plot", "checkpoint", "initial_anchors_px"):
    assert key in out, key


def test_steady_rate_is_the_median_after_the_first_window_of_this_session(tmp_path):
  workdir = str(tmp_path)
  # Steps 2, 4 from an earlier session (resumed from step 2); step 4 re-logged now.
  for step, rate in ((2, 1.0), (4, 500.0), (4, 10.0), (6, 30.0), (8, 20.0), (10, 40.0)):
    workdir_lib.append_metrics(workdir, {"step": step, "images_per_sec": rate})
  # This session: steps 4 (10, holds the compile), 6, 8, 10 -> median of 30, 20, 40.
  assert train_tool.steady_images_per_sec(workdir, 2, 10) == 30.0
  assert train_tool.steady_images_per_sec(workdir, 8, 10) is None   # one window only
  assert train_tool.steady_images_per_sec(workdir, 2, 8) == pytest.approx(25.0)
