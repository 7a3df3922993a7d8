"""Experiment configs: loading them, checking them, and resume compatibility.

``load`` parses ``path/to/config.py[:arg]`` and ``--config.key=value`` overrides with
ml_collections' ``config_flags`` (the parser of every CLI), for code that is not a CLI.
``validate`` runs before anything expensive, so a typo or an impossible value fails in the
first second with a message that names the key and the fix. Every choice list it checks
is read from the module that owns it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import ml_collections
from absl import flags
from ml_collections import config_flags

from anchor_jax import workdir as workdir_lib
from anchor_jax.core import anchors as anchors_lib
from anchor_jax.core import assign as assign_lib
from anchor_jax.core import region
from anchor_jax.data import augment as augment_lib
from anchor_jax.data import pipeline, synthetic
from anchor_jax.errors import UserError
from anchor_jax.evaluation import accumulator
from anchor_jax.model import darknet_weights, resnet, yolov2

# Values of train.optimizer (training/optim.py builds them; kept here, below training in
# the import order, so that validation reads the one list).
OPTIMIZERS = ("sgd", "adamw")
LR_SHAPES = ("piecewise", "step", "cosine")   # train.lr_shape (training/optim.py)

DETECTORS = ("yolov2", "faster_rcnn")   # model.detector (training/train.py builds them)

CHOICES = {
    "model.detector": DETECTORS,
    "rcnn.depth": tuple(resnet.DEPTHS),
    "rcnn.norm": resnet.NORMS,
    "dataset.name": pipeline.DATASETS,
    "dataset.loader": pipeline.LOADERS,
    "dataset.preset": tuple(synthetic.PRESETS),
    "model.name": tuple(yolov2.ARCHS),
    "model.dtype": yolov2.DTYPES,
    "model.reorg": yolov2.REORGS,
    "model.init_parts": darknet_weights.PARTS,
    "anchors.assign_metric": assign_lib.METRICS,
    "eval.metric": accumulator.METRICS,
    "eval.pixel_convention": ("auto",) + accumulator.PIXEL_CONVENTIONS,
    "train.optimizer": OPTIMIZERS,
    "train.lr_shape": LR_SHAPES,
    "model.max_pool": yolov2.MAX_POOLS,
    "model.conv_grad": yolov2.CONV_GRADS,
}
POSITIVE_INTS = ("anchors.num", "train.steps", "train.batch_size", "train.log_every",
                 "train.checkpoint_every", "train.keep_checkpoints", "dataset.max_boxes",
                 "eval.batch_size", "eval.max_dets", "input.multiscale_every")
NON_NEGATIVE = ("anchors.soft_assign_steps", "anchors.temperature", "anchors.cluster_steps",
                "anchors.cluster_weight", "anchors.lr_mult", "train.burn_in_steps",
                "train.weight_decay", "train.momentum", "train.adam_eps",
                "train.peak_lr", "train.warmup_steps", "train.final_lr_frac", "eval.every_steps",
                "dataset.prefetch", "dataset.workers",
                "loss.coord_scale", "loss.object_scale", "loss.noobject_scale",
                "loss.class_scale", "loss.prior_scale", "loss.prior_images")
# Keys that change the shapes or meaning of a checkpoint: resuming across a
# change of any of them is refused.
STRUCTURAL = ("model.detector", "model.name", "model.width", "model.reorg", "anchors.num",
              "anchors.bn_no_shift", "rcnn.depth", "rcnn.fpn", "rcnn.norm", "rcnn.anchor_sizes",
              "rcnn.aspect_ratios", "dataset.name", "dataset.num_classes", "train.batch_size",
              "train.optimizer", "seed")
RCNN_POSITIVE_INTS = ("rcnn.fpn_channels", "rcnn.fc_dim", "rcnn.roi_size",
                      "rcnn.rpn_batch_per_image", "rcnn.rpn_pre_nms_train",
                      "rcnn.rpn_post_nms_train", "rcnn.rpn_pre_nms_test",
                      "rcnn.rpn_post_nms_test", "rcnn.roi_batch_per_image", "rcnn.test_pre_nms")
RCNN_FRACTIONS = ("rcnn.rpn_pos_iou", "rcnn.rpn_neg_iou", "rcnn.rpn_pos_fraction",
                  "rcnn.rpn_nms_iou", "rcnn.roi_pos_fraction", "rcnn.roi_fg_iou")


class ConfigError(UserError, ValueError):
  """A config that cannot run: the message names each bad key and what it must be."""


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError listing every bad key (not just the first)."""
  errors = []
  for key, choices in CHOICES.items():
    if _get(config, key) not in choices:
      errors.append(f"--config.{key}={_get(config, key)!r}: choose one of {choices}")
  for key in POSITIVE_INTS:
    value = _get(config, key)
    if not isinstance(value, int) or value < 1:
      errors.append(f"--config.{key}={value!r}: must be a positive integer")
  for key in NON_NEGATIVE:
    if not _get(config, key) >= 0:
      errors.append(f"--config.{key}={_get(config, key)!r}: must be >= 0")
  size, stride = config.input.image_size, region.STRIDE
  if not isinstance(size, int) or size < stride or size % stride:
    errors.append(f"--config.input.image_size={size!r}: must be a positive multiple of "
                  f"{stride} (the network's stride)")
  for ms in config.input.multiscale_sizes:
    if not isinstance(ms, int) or ms < stride or ms % stride:
      errors.append(f"--config.input.multiscale_sizes: {ms!r} is not a multiple of {stride}")
  if config.dataset.name == "synthetic" and config.input.multiscale_sizes:
    errors.append("--config.input.multiscale_sizes: synthetic images exist at one size; "
                  "leave it empty (multi-scale is for real datasets)")
  if config.dataset.name == "synthetic" and config.dataset.path:
    errors.append(f"--config.dataset.path={config.dataset.path!r} is not read by "
                  "dataset.name=synthetic (generated data); set dataset.name to the reader "
                  "of that data (voc_folder, coco_json, voc, coco, brainwash)")
  if config.dataset.name in ("voc_folder", "coco_json") and not config.dataset.path:
    errors.append(f"--config.dataset.path is required for dataset.name={config.dataset.name}")
  try:
    augment_lib.AugmentConfig.from_config(config.augment)
  except ValueError as e:
    errors.append(f"--config.augment: {e}")
  eval_size = config.input.eval_image_size
  if not isinstance(eval_size, int) or eval_size < 0 or eval_size % stride:
    errors.append(f"--config.input.eval_image_size={eval_size!r}: 0 or a multiple of "
                  f"{stride}")
  init = config.anchors.init
  if init not in anchors_lib.INIT_CHOICES:
    try:
      anchors_lib.init_anchors(init, config.anchors.num)
    except ValueError as e:
      errors.append(f"--config.anchors.init={init!r}: {e}")
  elif init in ("voc", "coco") and config.anchors.num != 5:
    errors.append(f"--config.anchors.init={init} is a set of 5 anchors; anchors.num is "
                  f"{config.anchors.num}. Use identical/uniform/kmeans for other counts.")
  if config.train.lr_shape == "piecewise":
    try:
      steps = [int(s) for s, _ in config.train.lr_schedule]
      if not steps or steps[0] != 0 or steps != sorted(steps):
        raise ValueError
    except (TypeError, ValueError):
      errors.append(f"--config.train.lr_schedule={config.train.lr_schedule!r}: must be "
                    "((0, lr0), (step1, lr1), ...) with increasing steps starting at 0")
  elif config.train.lr_schedule:   # set but unread: the user meant it to apply
    errors.append(f"--config.train.lr_schedule={config.train.lr_schedule!r} is only read with "
                  f"train.lr_shape=piecewise, and this config has lr_shape="
                  f"{config.train.lr_shape!r} (peak_lr, lr_decay_at, ...). Add "
                  "--config.train.lr_shape=piecewise to use the schedule, or "
                  "--config.train.lr_schedule='()' to keep the shape.")
  decay_at = config.train.lr_decay_at
  try:
    fractions = [float(f) for f in decay_at]
    if any(not 0 < f < 1 for f in fractions) or fractions != sorted(fractions):
      raise ValueError
  except (TypeError, ValueError):
    errors.append(f"--config.train.lr_decay_at={decay_at!r}: must be increasing fractions of "
                  "train.steps in (0, 1), e.g. '(0.75, 0.95)'")
  if not 0 < config.train.lr_decay_factor <= 1:
    errors.append(f"--config.train.lr_decay_factor={config.train.lr_decay_factor!r}: must be "
                  "in (0, 1]")
  if config.train.lr_shape == "cosine" and not config.train.warmup_steps < config.train.steps:
    errors.append(f"--config.train.warmup_steps={config.train.warmup_steps!r}: must be < "
                  f"train.steps={config.train.steps}")
  if not 0 <= config.model.obj_bias_prior < 1:
    errors.append(f"--config.model.obj_bias_prior={config.model.obj_bias_prior!r}: must be in "
                  "[0, 1) (0: zero bias)")
  if config.model.detector == "faster_rcnn":
    errors += _rcnn_errors(config)
  else:
    errors += _init_from_errors(config.model)
  if not 0 <= config.train.adam_b2 < 1:
    errors.append(f"--config.train.adam_b2={config.train.adam_b2!r}: must be in [0, 1)")
  if not 0 <= config.loss.ignore_thresh <= 1:
    errors.append("--config.loss.ignore_thresh must be in [0, 1]")
  if errors:
    raise ConfigError("invalid config: " + "; ".join(errors))


def _rcnn_errors(config) -> list[str]:
  """What is wrong with a ``model.detector=faster_rcnn`` config."""
  errors, r, a = [], config.rcnn, config.anchors
  for key in RCNN_POSITIVE_INTS:
    value = _get(config, key)
    if not isinstance(value, int) or value < 1:
      errors.append(f"--config.{key}={value!r}: must be a positive integer")
  for key in RCNN_FRACTIONS:
    if not 0 <= _get(config, key) <= 1:
      errors.append(f"--config.{key}={_get(config, key)!r}: must be in [0, 1]")
  if not r.rpn_neg_iou <= r.rpn_pos_iou:
    errors.append(f"--config.rcnn.rpn_neg_iou={r.rpn_neg_iou} must be <= rpn_pos_iou="
                  f"{r.rpn_pos_iou} (anchors in between are ignored)")
  sizes, ratios = tuple(r.anchor_sizes), tuple(r.aspect_ratios)
  if not sizes or not ratios or min(sizes + ratios) <= 0:
    errors.append(f"--config.rcnn.anchor_sizes={sizes} / aspect_ratios={ratios}: need "
                  "non-empty lists of positive numbers")
  elif r.fpn and len(sizes) != 5:
    errors.append(f"--config.rcnn.anchor_sizes={sizes}: with rcnn.fpn=True give one size per "
                  "level P2-P6 (5 sizes), e.g. '(32, 64, 128, 256, 512)'")
  if len(tuple(r.box_weights)) != 4 or min(r.box_weights) <= 0:
    errors.append(f"--config.rcnn.box_weights={tuple(r.box_weights)}: four positive numbers")
  if r.norm == "frozen_bn" and not 0 <= r.freeze_at <= 5:
    errors.append(f"--config.rcnn.freeze_at={r.freeze_at!r}: 0 (nothing) to 5 (all stages)")
  # The paper's Faster R-CNN (Table 7) learns anchors "without BN or soft assignment trick".
  if a.temperature:
    errors.append(f"--config.anchors.temperature={a.temperature}: Faster R-CNN's IoU "
                  "assignment has no soft (Eq. 10) warm-up; set --config.anchors.temperature=0")
  if a.bn_no_shift:
    errors.append("--config.anchors.bn_no_shift=True: the RPN has no BN-without-shift head "
                  "(paper Table 7); set --config.anchors.bn_no_shift=False")
  if config.input.multiscale_sizes:
    errors.append("--config.input.multiscale_sizes: not supported by model.detector="
                  "faster_rcnn; leave it empty")
  source = config.model.init_from
  if source and not (os.path.isfile(source) and source.endswith(".npz")):
    errors.append(f"--config.model.init_from={source!r}: model.detector=faster_rcnn starts "
                  "from an ImageNet ResNet .npz (experiments/tools/"
                  "convert_resnet_torchvision.py writes one); no such .npz file")
  return errors


def _init_from_errors(model) -> list[str]:
  """What is wrong with ``model.init_from`` / ``init_cfg`` (ml_collections' type check
  already keeps ``keep_source_anchors`` a bool)."""
  errors, source, cfg = [], model.init_from, model.init_cfg
  if cfg and not os.path.isfile(cfg):
    errors.append(f"--config.model.init_cfg={cfg!r}: no such file")
  if not source:
    if cfg:
      errors.append("--config.model.init_cfg is read only with --config.model.init_from")
    return errors
  if os.path.isdir(source):
    if not os.path.isdir(workdir_lib.path(source, workdir_lib.CHECKPOINTS)):
      errors.append(f"--config.model.init_from={source!r} is a folder without "
                    f"{workdir_lib.CHECKPOINTS}/: give a training workdir of ours or a "
                    "darknet .weights file")
    if cfg:
      errors.append("--config.model.init_cfg is for darknet files: a workdir's checkpoint "
                    "carries its own config")
  elif not os.path.isfile(source):
    errors.append(f"--config.model.init_from={source!r}: no such file or workdir")
  elif model.init_parts == "all" and model.reorg != "darknet":
    errors.append(f"--config.model.init_from={source!r} with init_parts=all: a darknet "
                  "detector's passthrough needs --config.model.reorg=darknet (the channel "
                  "order it was trained with)")
  return errors


def load(spec: str, overrides=()) -> ml_collections.ConfigDict:
  """Loads ``path/to/config.py[:arg]`` with ``--config.key=value`` override strings, as
  ``--config=spec`` plus the overrides on a command line would; ConfigError otherwise."""
  argv = ["load", f"--config={spec}", *overrides]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "config", flag_values=fv,
                                  lock_config=True, sys_argv=argv)
  try:
    fv(argv)
  except (flags.Error, AttributeError, KeyError, ValueError) as e:
    raise ConfigError(parse_error_message(e, argv)) from None
  return loaded(fv["config"].value)


def loaded(value):
  """A ``config_flags`` value, or ConfigError: config_flags defers the error of a config
  file that failed to load (e.g. a wrong path) to the first use of the config."""
  if value is None or isinstance(value, ml_collections.ConfigDict):
    return value
  try:
    value.lock  # noqa: B018 -- touching a failed load raises its error
  except OSError as e:
    raise ConfigError(parse_error_message(e.__cause__ or e, [])) from None
  return value


def parse_error_message(error: Exception, argv) -> str:
  """One readable line for an error raised while absl / config_flags parse ``argv``."""
  while error.args and isinstance(error.args[0], Exception):   # KeyError inside AttributeError
    error = error.args[0]
  text = str(error.args[0]) if error.args and isinstance(error.args[0], str) else str(error)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  last = lines[-1] if lines else type(error).__name__
  if isinstance(error, (AttributeError, KeyError)):   # an override names no config key
    key = re.search(r"'([^']+)'", text)
    given = [a.split("=", 1)[0] for a in argv if key and a.startswith("--")
             and re.search(rf"\.{re.escape(key.group(1))}(\.|$)", a.split("=", 1)[0])]
    where = given[0] if given else (key.group(1) if key else text)
    return f"unknown config key {where}" + (f" ({last})" if "Did you mean" in last else "")
  if isinstance(error, OSError):                      # config_flags defers a failed load
    return f"cannot load the config: {last}"
  if "Traceback" in text:                             # an exception inside a config file
    return f"{lines[0].rstrip(':')}: {last}"
  return text


def _plain(value):
  """Tuples as lists, as a checkpoint's JSON metadata stores them."""
  if isinstance(value, (tuple, list)):
    return [_plain(v) for v in value]
  return value


def fingerprint(config) -> dict:
  return {key: _plain(_get(config, key)) for key in STRUCTURAL}


def to_dict(config) -> dict:
  """The resolved config as plain JSON values (what config.json holds)."""
  return json.loads(config.to_json_best_effort())


def check_resume(meta: dict, config) -> None:
  """Refuses to resume a checkpoint written under an incompatible config, naming each key
  that changes the checkpoint's shapes or meaning (``STRUCTURAL``)."""
  saved = meta.get("config_hash", {})
  now = fingerprint(config)
  diff = {k: (saved.get(k), now[k]) for k in now if k in saved and saved[k] != now[k]}
  if diff:
    keys = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
    raise ConfigError(
        f"the workdir's checkpoints were written with another config ({keys}): they are "
        "fine, but do not fit this one. Use a new --workdir, or restore these values to "
        "resume.")


def digest(config) -> str:
  return hashlib.sha1(json.dumps(fingerprint(config), sort_keys=True).encode()).hexdigest()[:12]
