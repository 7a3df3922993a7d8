"""experiments/anchor_centroids.py: per-anchor centroids of the boxes it is responsible for."""
import numpy as np
import pytest

from experiments import anchor_centroids


def test_centroids_by_hand():
  anchors = [[40.0, 20.0], [10.0, 10.0], [99.0, 1.0]]
  # Best shape IoU: (8,8)->(10,10) .64, (12,12)->(10,10) .69, (40,20)->(40,20) 1,
  # (40,40)->(40,20) .5 (vs .0625); nothing for the 99x1 anchor.
  boxes = [[8, 8], [12, 12], [40, 20], [40, 40]]
  rows = anchor_centroids.centroids(anchors, boxes, image_size=100)
  assert [r["count"] for r in rows] == [2, 2, 0]
  assert rows[1]["arith"] == pytest.approx([10.0, 10.0])
  # Weights 2 - wh/100^2: 1.9936 for 8x8, 1.9856 for 12x12.
  g = np.exp((1.9936 * np.log(8) + 1.9856 * np.log(12)) / (1.9936 + 1.9856))
  assert rows[1]["geo"] == pytest.approx([g, g], rel=1e-9)
  assert rows[0]["arith"] == pytest.approx([40.0, 30.0])
  h = np.exp((1.92 * np.log(20) + 1.84 * np.log(40)) / 3.76)
  assert rows[0]["geo"] == pytest.approx([40.0, h], rel=1e-9)
  assert rows[2]["arith"] is None and rows[2]["geo"] is None
  text = "\n".join(anchor_centroids.render("x", rows))
  assert "| 10.0×10.0 | 2 | 10.0×10.0 | 9.8×9.8 |" in text
  assert "| 99.0×1.0 | 0 | — | — |" in text


def test_missing_workdir_is_a_clear_error(tmp_path, capsys):
  assert anchor_centroids.run([f"--workdir={tmp_path / 'nope'}"]) == 2
  assert "error:" in capsys.readouterr().err
