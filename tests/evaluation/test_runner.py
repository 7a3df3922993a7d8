"""The eval runner: which pixel convention scores each dataset."""
import numpy as np
import pytest

from anchor_jax.data import pipeline, voc_folder
from anchor_jax.evaluation import runner
from anchor_jax.model import yolov2
from tests import data_fixtures, train_util

IMAGES = {"000001": dict(height=30, width=40, objects=[("cat", False, (5, 5, 20, 20))])}


def _evaluator(config, dataset):
  model = yolov2.from_config(config, num_classes=len(dataset.class_names),
                             anchors=np.ones((config.anchors.num, 2)))
  return runner.Evaluator(config, dataset, model=model)


@pytest.mark.parametrize("convention, expected", [("auto", False), ("voc", True),
                                                  ("continuous", False)])
def test_synthetic_data_is_continuous_unless_told(convention, expected):
  config = train_util.tiny_config(**{"eval.pixel_convention": convention})
  assert _evaluator(config, pipeline.build_dataset(config, "eval")).plus_one is expected


@pytest.mark.parametrize("convention, expected", [("auto", True), ("continuous", False)])
def test_voc_layout_data_takes_the_devkits_plus_one(tmp_path, convention, expected):
  root = data_fixtures.write_voc(str(tmp_path / "voc"), IMAGES, {"test": ["000001"]})
  dataset = voc_folder.VocFolderDataset(path=root, split="test", max_boxes=2)
  config = train_util.tiny_config(**{"eval.pixel_convention": convention})
  assert dataset.pixel_convention == "voc"
  assert _evaluator(config, dataset).plus_one is expected
