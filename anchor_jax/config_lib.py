"""Config checks, the resolved config in the workdir, and resume compatibility.

``validate`` runs before anything expensive, so a typo or an impossible value
fails in the first second with a message that names the key and the fix.
"""
from __future__ import annotations

import hashlib
import json
import os

import ml_collections

from anchor_jax import anchors as anchors_lib

CHOICES = {
    "dataset.name": ("synthetic", "voc", "coco", "brainwash", "voc_folder", "coco_json"),
    "dataset.preset": ("tiny", "wide", "mixed"),
    "model.name": ("darknet19", "tiny"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "anchors.assign_metric": ("iou", "l2"),
    "eval.metric": ("voc07", "voc12", "coco", "brainwash"),
}
POSITIVE_INTS = ("anchors.num", "train.steps", "train.batch_size", "train.log_every",
                 "train.checkpoint_every", "train.keep_checkpoints", "dataset.max_boxes",
                 "eval.batch_size", "eval.max_dets", "input.multiscale_every")
NON_NEGATIVE = ("anchors.soft_assign_steps", "anchors.temperature", "anchors.cluster_steps",
                "anchors.cluster_weight", "anchors.lr_mult", "train.burn_in_steps",
                "train.weight_decay", "train.momentum", "eval.every_steps",
                "dataset.prefetch", "dataset.workers",
                "loss.coord_scale", "loss.object_scale", "loss.noobject_scale",
                "loss.class_scale", "loss.prior_scale", "loss.prior_images")
# Keys that change the shapes or meaning of a checkpoint: resuming across a
# change of any of them is refused.
STRUCTURAL = ("model.name", "model.width", "anchors.num", "anchors.bn_no_shift",
              "dataset.name", "dataset.num_classes", "train.batch_size", "seed")


class ConfigError(ValueError):
  pass


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
  size = config.input.image_size
  if not isinstance(size, int) or size < 32 or size % 32:
    errors.append(f"--config.input.image_size={size!r}: must be a positive multiple of 32 "
                  "(the network's stride)")
  for ms in config.input.multiscale_sizes:
    if not isinstance(ms, int) or ms < 32 or ms % 32:
      errors.append(f"--config.input.multiscale_sizes: {ms!r} is not a multiple of 32")
  if config.dataset.name == "synthetic" and config.input.multiscale_sizes:
    errors.append("--config.input.multiscale_sizes: synthetic images exist at one size; "
                  "leave it empty (multi-scale is for real datasets)")
  if config.dataset.name in ("voc_folder", "coco_json") and not config.dataset.path:
    errors.append(f"--config.dataset.path is required for dataset.name={config.dataset.name}")
  try:
    from anchor_jax.data import augment as augment_lib
    augment_lib.AugmentConfig.from_config(config.augment)
  except ValueError as e:
    errors.append(f"--config.augment: {e}")
  eval_size = config.input.eval_image_size
  if not isinstance(eval_size, int) or eval_size < 0 or eval_size % 32:
    errors.append(f"--config.input.eval_image_size={eval_size!r}: 0 or a multiple of 32")
  init = config.anchors.init
  if init not in anchors_lib.INIT_CHOICES:
    try:
      anchors_lib.init_anchors(init, config.anchors.num)
    except ValueError as e:
      errors.append(f"--config.anchors.init={init!r}: {e}")
  elif init in ("voc", "coco") and config.anchors.num != 5:
    errors.append(f"--config.anchors.init={init} is a set of 5 anchors; anchors.num is "
                  f"{config.anchors.num}. Use identical/uniform/kmeans for other counts.")
  try:
    steps = [int(s) for s, _ in config.train.lr_schedule]
    if not steps or steps[0] != 0 or steps != sorted(steps):
      raise ValueError
  except (TypeError, ValueError):
    errors.append(f"--config.train.lr_schedule={config.train.lr_schedule!r}: must be "
                  "((0, lr0), (step1, lr1), ...) with increasing steps starting at 0")
  if not 0 <= config.loss.ignore_thresh <= 1:
    errors.append("--config.loss.ignore_thresh must be in [0, 1]")
  if errors:
    raise ConfigError("Invalid config:\n  " + "\n  ".join(errors))


def load(spec: str, overrides=()) -> ml_collections.ConfigDict:
  """Loads ``path/to/config.py[:arg]`` and applies ``--config.a.b=value`` strings.

  For tools that take a config outside absl flags (e.g. ``anchors --config``);
  values are parsed as the type of the existing key.
  """
  import importlib.util
  import sys

  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise ConfigError(f"Config file {path!r} not found.")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  if repo not in sys.path:   # configs import their siblings as `configs.common`
    sys.path.insert(0, repo)
  module_spec = importlib.util.spec_from_file_location("_anchor_jax_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  for item in overrides:
    key, eq, value = item.removeprefix("--config.").partition("=")
    if not eq:
      raise ConfigError(f"Override {item!r} must look like --config.key=value.")
    *parents, leaf = key.split(".")
    node = config
    try:
      for part in parents:
        node = node[part]
      old = node[leaf]
    except KeyError:
      raise ConfigError(f"Unknown config key {key!r} in override {item!r}.") from None
    node[leaf] = _parse_like(old, value)
  return config


def _parse_like(old, text: str):
  if isinstance(old, bool):
    if text.lower() not in ("true", "false", "1", "0"):
      raise ConfigError(f"Expected a boolean, got {text!r}.")
    return text.lower() in ("true", "1")
  if isinstance(old, (int, float)) and not isinstance(old, bool):
    try:
      return type(old)(text) if not (isinstance(old, int) and "." in text) else float(text)
    except ValueError:
      raise ConfigError(f"Expected a {type(old).__name__}, got {text!r}.") from None
  if isinstance(old, (tuple, list)):
    import ast
    return ast.literal_eval(text)
  return text


def write_resolved(config, workdir: str) -> str:
  path = os.path.join(workdir, "config.json")
  with open(path, "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  return path


def fingerprint(config) -> dict:
  return {key: _get(config, key) for key in STRUCTURAL}


def check_resume(meta: dict, config) -> None:
  """Refuses to resume a checkpoint written under an incompatible config."""
  saved = meta.get("config_hash", {})
  now = fingerprint(config)
  diff = {k: (saved.get(k), now[k]) for k in now if k in saved and saved[k] != now[k]}
  if diff:
    lines = "\n  ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
    raise ConfigError(
        "The workdir's checkpoint was written with a different config:\n  " + lines +
        "\nUse a new --workdir, or restore these values to resume.")


def digest(config) -> str:
  return hashlib.sha1(json.dumps(fingerprint(config), sort_keys=True).encode()).hexdigest()[:12]
