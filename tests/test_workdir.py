"""The workdir format: one JSONL policy for torn lines, eval records, config.json."""
import json
import math

import ml_collections
import numpy as np
import pytest

from anchor_jax import workdir as wd
from anchor_jax.evaluation import accumulator


def test_torn_line_is_skipped_with_a_warning_and_the_next_append_starts_a_new_line(
    tmp_path, caplog):
  path = str(tmp_path / "metrics.jsonl")
  wd.append_jsonl(path, {"step": 1, "loss": 2.0})
  with open(path, "a") as f:
    f.write('{"step": 2, "lo')                    # a run killed mid-write
  wd.append_jsonl(path, {"step": 3, "loss": 1.0})
  with open(path) as f:
    lines = f.read().splitlines()
  assert lines == ['{"step": 1, "loss": 2.0}', '{"step": 2, "lo', '{"step": 3, "loss": 1.0}']
  with caplog.at_level("WARNING"):
    records = wd.read_jsonl(path)
  assert records == [{"step": 1, "loss": 2.0}, {"step": 3, "loss": 1.0}]
  assert "line 2" in caplog.text and "metrics.jsonl" in caplog.text


def test_non_objects_and_blank_lines(tmp_path):
  path = tmp_path / "x.jsonl"
  path.write_text('[1, 2]\n\n{"a": 1}\n"text"\n')
  assert wd.read_jsonl(str(path)) == [{"a": 1}]
  assert wd.read_jsonl(str(tmp_path / "absent.jsonl")) == []
  path.write_bytes(b"\xff\xfe\x00")
  with pytest.raises(wd.WorkdirError, match="not a text file"):
    wd.read_jsonl(str(path))


def test_jsonable_values():
  record = {"a": np.float32(1.5), "b": np.arange(3), "nan": math.nan, "inf": -math.inf,
            "nested": [math.inf, {"x": np.int64(2)}]}
  out = json.loads(json.dumps({k: wd.jsonable(v) for k, v in record.items()}))
  assert out == {"a": 1.5, "b": [0, 1, 2], "nan": None, "inf": -1e308,
                 "nested": [1e308, {"x": 2}]}


def test_by_step_keeps_the_later_line_of_a_step():
  records = [{"step": 1, "v": "a"}, {"step": 2, "v": "b"}, {"step": 1, "v": "c"},
             {"v": "no step"}]
  assert wd.by_step(records) == [{"step": 1, "v": "c"}, {"step": 2, "v": "b"}]


@pytest.mark.parametrize("metric", ["voc07", "coco"])
def test_eval_lines(tmp_path, metric):
  ev = accumulator.DetectionEvaluator(metric=metric, class_names=["cat", "dog"])
  ev.add_ground_truth(0, [[10, 10, 50, 50]], [0], image_hw=(100, 100))
  ev.add_ground_truth(1, [[0, 0, 30, 30]], [1], image_hw=(100, 100))
  ev.add_detections([0, 1], [[10, 10, 50, 50], [0, 0, 30, 30]], [0.9, 0.8], [0, 1])
  result = ev.compute()
  wd.append_eval(str(tmp_path), 100, "test", result)
  wd.append_eval(str(tmp_path), 200, "test", result)
  lines = wd.read_evals(str(tmp_path))
  assert [line["step"] for line in lines] == [100, 200]
  assert lines[0]["split"] == "test" and lines[0]["AP50"] == pytest.approx(1.0, abs=1e-6)
  assert lines[0]["per_class"]["cat"] == pytest.approx(1.0, abs=1e-6)
  assert ("AP" in lines[0]) == (metric == "coco")
  assert lines[0]["num_gt"] == 2 and lines[0]["num_detections"] == 2


def test_anchor_lines_are_in_grid_units_and_pixels(tmp_path):
  wd.append_anchors(str(tmp_path), 5, [[1.0, 2.0], [0.5, 0.25]], stride=32, counts=[3, 0.5])
  (line,) = wd.read_anchors(str(tmp_path))
  assert line == {"step": 5, "anchors": [[1.0, 2.0], [0.5, 0.25]],
                  "anchors_px": [[32.0, 64.0], [16.0, 8.0]], "counts": [3.0, 0.5]}


def test_config_round_trip_and_errors(tmp_path):
  config = ml_collections.ConfigDict({"seed": 3, "train": {"steps": 7}})
  wd.write_config(str(tmp_path), config)
  assert wd.read_config(str(tmp_path)).train.steps == 7
  with pytest.raises(wd.WorkdirError, match="no such directory"):
    wd.read_config(str(tmp_path / "nope"))
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(wd.WorkdirError, match="not a training workdir"):
    wd.read_config(str(empty))
  (empty / wd.CONFIG).write_text("{not json")
  with pytest.raises(wd.WorkdirError, match="not valid JSON"):
    wd.read_config(str(empty))
  (empty / wd.CONFIG).write_text('{"a.b": 1}')
  with pytest.raises(wd.WorkdirError, match="not a resolved training config"):
    wd.read_config(str(empty))
