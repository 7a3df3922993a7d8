"""The experiment configs: every variant loads and validates; the paper configs are the
paper's recipes (schedule with no burn-in on top, one input size, Brainwash's native crops)."""
import os

import pytest

from anchor_jax import config_lib
from tests import REPO

VARIANTS = ("synthetic.py", "synthetic.py:tiny", "synthetic.py:study", "synthetic.py:full",
            "voc_yolov2.py", "voc_yolov2.py:544", "coco_yolov2.py", "brainwash_yolov2.py")


def _load(spec):
  return config_lib.load(os.path.join(REPO, "configs", spec))


@pytest.mark.parametrize("spec", VARIANTS)
def test_every_variant_validates(spec):
  config_lib.validate(_load(spec))


@pytest.mark.parametrize("spec, size, schedule", [
    ("voc_yolov2.py", 416, ((0, 1e-4), (100, 1e-3), (15000, 1e-4), (27000, 1e-5))),
    ("voc_yolov2.py:544", 544, ((0, 1e-4), (100, 1e-3), (15000, 1e-4), (27000, 1e-5))),
    ("coco_yolov2.py", 544, ((0, 1e-4), (1000, 1e-3), (80000, 1e-4), (90000, 1e-5))),
    ("synthetic.py:full", 416, ((0, 1e-4), (100, 1e-3), (15000, 1e-4), (27000, 1e-5))),
])
def test_paper_recipes_train_at_the_test_size_without_burn_in(spec, size, schedule):
  c = _load(spec)
  assert tuple(map(tuple, c.train.lr_schedule)) == schedule
  assert c.train.burn_in_steps == 0 and c.input.multiscale_sizes == ()
  assert c.input.image_size == size and (c.input.eval_image_size or size) == size
  assert (c.train.batch_size, c.train.momentum) == (64, 0.9)
  assert (c.augment.jitter, c.augment.hue, c.augment.saturation) == (0.2, 0.1, 1.5)


def test_brainwash_trains_on_native_320_crops_and_tests_at_640():
  c = _load("brainwash_yolov2.py")
  assert (c.input.image_size, c.input.eval_image_size) == (320, 640)
  assert (c.augment.crop_px, c.augment.jitter, c.input.multiscale_sizes) == (320, 0.0, ())
  assert c.loss.class_scale == 0.0 and c.train.steps == 10000 and c.train.burn_in_steps == 0
  assert tuple(map(tuple, c.train.lr_schedule)) == (
      (0, 1e-4), (100, 1e-3), (5000, 1e-4), (9000, 1e-5))
