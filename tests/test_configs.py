"""The experiment configs: every variant loads and validates; the paper configs are the
paper's recipes (schedule with no burn-in on top, one input size, Brainwash's native crops)."""
import os
import re

import pytest

from anchor_jax import config_lib
from anchor_jax.training import train
from tests import REPO

PAPER = ("voc_yolov2.py", "voc_yolov2.py:544", "coco_yolov2.py", "brainwash_yolov2.py")
RUNLOCAL = ("voc_yolov2.py:runlocal", "coco_yolov2.py:runlocal", "brainwash_yolov2.py:runlocal")
RCNN = ("rcnn_synthetic.py", "rcnn_synthetic.py:tiny", "voc_faster_rcnn.py:07",
        "voc_faster_rcnn.py:0712", "voc_faster_rcnn.py", "voc_faster_rcnn.py:runlocal",
        "coco_faster_rcnn.py", "coco_faster_rcnn.py:runlocal")
VARIANTS = ("synthetic.py", "synthetic.py:tiny", "synthetic.py:study", "synthetic.py:full",
            *PAPER, *RUNLOCAL, *RCNN)


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


@pytest.mark.parametrize("key, value, message", [
    ("lr_decay_at", (0.95, 0.75), "lr_decay_at=(0.95, 0.75): must be increasing fractions"),
    ("lr_decay_at", (0.5, 1.0), "lr_decay_at=(0.5, 1.0): must be increasing fractions"),
    ("lr_decay_factor", 0.0, "lr_decay_factor=0.0: must be in (0, 1]"),
    ("lr_shape", "linear", "lr_shape='linear': choose one of ('piecewise', 'step', 'cosine')"),
    # The step recipe does not read lr_schedule: setting it alone would silently do nothing.
    ("lr_schedule", ((0, 1e-3),), "is only read with train.lr_shape=piecewise"),
])
def test_bad_lr_keys_are_named(key, value, message):
  c = _load("synthetic.py")
  c.train[key] = value
  with pytest.raises(config_lib.ConfigError) as info:
    config_lib.validate(c)
  assert message in str(info.value)


def test_a_schedule_from_the_command_line_applies_with_the_piecewise_shape():
  c = config_lib.load(os.path.join(REPO, "configs", "synthetic.py"), [
      "--config.train.lr_shape=piecewise", "--config.train.lr_schedule=((0,1e-2),(10,1e-3))"])
  assert train.make_lr_schedule(c)(200) == pytest.approx(1e-3)   # after the 100-step burn-in
  kept = config_lib.load(os.path.join(REPO, "configs", "synthetic.py"), ["--config.train.lr_schedule=()"])
  assert kept.train.lr_shape == "step" and kept.train.lr_schedule == ()


@pytest.mark.parametrize("spec", RUNLOCAL)
def test_runlocal_keeps_the_data_anchors_method_and_metric_at_laptop_size(spec):
  """runlocal = the paper config's dataset, anchors, warm-ups and metric; the CPU recipe's
  model, lr and length; the test size scaled with the train size; 500 test images."""
  paper, local = _load(spec.split(":")[0]), _load(spec)
  for key in ("dataset.name", "dataset.num_classes", "dataset.max_boxes", "anchors.init",
              "anchors.num", "anchors.temperature", "anchors.cluster_weight",
              "anchors.bn_no_shift", "eval.metric", "loss.class_scale", "augment.jitter"):
    section, name = key.split(".")
    assert local[section][name] == paper[section][name], key
  assert (local.model.name, local.model.width, local.train.batch_size) == ("tiny_s2d", 0.5, 16)
  assert (local.train.lr_shape, local.train.peak_lr, local.train.steps) == ("step", 1e-2, 2000)
  assert local.input.image_size == 320 and local.dataset.eval_examples == 500
  scale = 320 / paper.input.image_size
  assert local.input.eval_image_size == round(paper.input.eval_image_size * scale / 32) * 32
  assert local.augment.crop_px == paper.augment.crop_px * scale
  # Shares of the run follow train.steps, also when overridden.
  assert local.anchors.soft_assign_steps == 500 and local.eval.every_steps == 1000
  longer = config_lib.load(os.path.join(REPO, "configs", spec), ["--config.train.steps=4000"])
  assert (longer.anchors.soft_assign_steps, longer.anchors.cluster_steps,
          longer.train.checkpoint_every) == (1000, 1000, 2000)


@pytest.mark.parametrize("spec, dataset, fpn, schedule, steps", [
    ("voc_faster_rcnn.py:07", "voc07", False, ((0, 0.02), (12000, 0.002), (16000, 0.0002)),
     18000),
    ("voc_faster_rcnn.py:0712", "voc", False, ((0, 0.02), (12000, 0.002), (16000, 0.0002)),
     18000),
    ("voc_faster_rcnn.py:0712_fpn", "voc", True, ((0, 0.02), (12000, 0.002), (16000, 0.0002)),
     18000),
    ("coco_faster_rcnn.py", "coco", True, ((0, 0.02), (60000, 0.002), (80000, 0.0002)), 90000),
])
def test_table7_configs_are_detectron2_recipes_with_the_papers_method(spec, dataset, fpn,
                                                                       schedule, steps):
  c = _load(spec)
  assert (c.model.detector, c.dataset.name, c.rcnn.fpn, c.rcnn.depth) == (
      "faster_rcnn", dataset, fpn, 50)
  assert tuple(map(tuple, c.train.lr_schedule)) == schedule and c.train.steps == steps
  assert (c.train.batch_size, c.train.burn_in_steps, c.train.burn_in_power) == (16, 1000, 1.0)
  assert (c.rcnn.norm, c.rcnn.freeze_at) == ("frozen_bn", 2)
  # "without BN or soft assignment trick": T = 0, the ordinary head, clustering on.
  assert (c.anchors.temperature, c.anchors.bn_no_shift, c.anchors.cluster_weight) == (
      0.0, False, 1.0)
  assert (c.eval.nms_iou, c.eval.score_thresh, c.eval.max_dets) == (0.5, 0.05, 100)


@pytest.mark.parametrize("key, value, message", [
    ("anchors.temperature", 2.0, "no soft (Eq. 10) warm-up"),
    ("anchors.bn_no_shift", True, "no BN-without-shift head"),
    ("rcnn.rpn_neg_iou", 0.8, "must be <= rpn_pos_iou"),
    ("rcnn.anchor_sizes", (32, 64), "one size per level P2-P6"),
    ("rcnn.depth", 42, "choose one of"),
    ("model.init_from", "/no/such/resnet.npz", "no such .npz file"),
])
def test_bad_rcnn_keys_are_named(key, value, message):
  c = _load("rcnn_synthetic.py")
  section, leaf = key.split(".")
  c[section][leaf] = value
  with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
    config_lib.validate(c)
