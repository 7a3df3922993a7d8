"""experiments/benchmarks/gpu_check.sh --smoke: runs anywhere and prints its JSON lines."""
import json
import subprocess

import pytest

from tests import REPO, train_util

pytestmark = pytest.mark.slow


def test_gpu_check_smoke_prints_one_json_line_per_check():
  res = subprocess.run(["bash", "experiments/benchmarks/gpu_check.sh", "--smoke"], cwd=REPO,
                       env=train_util.subprocess_env(1), capture_output=True, text=True,
                       timeout=600)
  assert res.returncode == 0, res.stderr[-3000:]
  lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
  by_check = {}
  for line in lines:
    by_check.setdefault(line["check"], []).append(line)
  assert [line["dtype"] for line in by_check["train"]] == ["float32", "bfloat16"]
  for line in by_check["train"]:
    assert line["batch"] == 4 and line["images_per_s"] > 0 and line["gflop_per_image"] > 0
    assert line["mfu"] is None                           # a CPU has no peak in the table
  (ratio,) = by_check["opt_ratio"]
  assert ratio["ratio"] == pytest.approx(ratio["opt_step_s"] / ratio["baseline_step_s"],
                                         rel=1e-2)
  (stream,) = by_check["input"]
  assert stream["images_per_s"] > 0 and stream["covers_step"] == (
      stream["images_per_s"] >= stream["step_images_per_s"])
  (evaluation,) = by_check["eval"]
  assert evaluation["images"] == 8 and evaluation["images_per_s"] > 0
