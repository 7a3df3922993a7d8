"""Starting a run from pretrained weights: ``model.init_from`` into fresh params.

``model.init_from`` names either
  * a darknet ``.weights`` file (``model/darknet_weights.py``): DarkNet-19's
    ``darknet19_448.conv.23`` with ``init_parts=backbone``, or a whole detector
    (``yolov2-voc.weights``, ``yolov2.weights``) with ``init_parts=all``, whose anchors
    come from its cfg's ``[region] anchors=`` line (``model.init_cfg``, else ``NAME.cfg``
    next to ``NAME.weights``; with neither, ``anchors.init``);
  * a workdir of ours: its newest readable checkpoint's params and BatchNorm statistics
    (never its optimiser state or step). ``init_parts=backbone`` takes the backbone convs,
    ``all`` every layer; the head (prediction conv and t_w/t_h BatchNorm) is
    re-initialised when the class count or class names differ from this run's data.

For ``model.detector=faster_rcnn``, ``model.init_from`` is an ImageNet ResNet ``.npz``
(``model/resnet_weights.py``: its key layout; ``experiments/tools/convert_resnet_torchvision.py``
writes one): it fills the backbone, the FPN and heads start fresh, the anchors come from
``rcnn.anchor_sizes`` x ``rcnn.aspect_ratios``.

Anchors (``model.keep_source_anchors``, default True): with ``init_parts=all`` the run
starts from the source's anchors (a workdir's learned ones, a darknet cfg's
``anchors=``); False starts from ``anchors.init`` instead. ``init_parts=backbone`` always
uses ``anchors.init``. The trainer applies this only to a fresh run: a resumed run
continues from its own checkpoint.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
from absl import logging
from flax import traverse_util

from anchor_jax.errors import UserError
from anchor_jax.model import darknet_cfg, darknet_weights, resnet_weights
from anchor_jax.training import checkpoint as ckpt_lib


class InitFromError(UserError):
  """``model.init_from`` names weights that do not fit this run's model."""


@dataclasses.dataclass
class Start:
  """Params and BatchNorm statistics to start from, and where each part came from."""
  params: dict
  batch_stats: dict
  anchors: np.ndarray   # [A, 2] grid units (params['head']['anchor_log_wh']); Faster
                        # R-CNN: [L, A, 2] pixels (params['rpn']['anchor_log_wh'])
  report: str           # one line for the log: what was loaded, what kept fresh


def initialise(config, model, params, batch_stats, *, class_names) -> Start:
  """Fresh (host) ``params``/``batch_stats`` of ``model`` with ``config.model.init_from``'s
  weights put in, as the module docstring says. ``class_names``: this run's classes."""
  source = config.model.init_from
  if config.model.detector == "faster_rcnn":
    params, batch_stats = resnet_weights.load_npz(source, params, batch_stats)
    anchors = np.exp(np.asarray(params["rpn"]["anchor_log_wh"], np.float64))
    report = (f"ImageNet ResNet backbone from {os.path.basename(source)}; FPN, RPN and box "
              "head fresh, anchors from rcnn.anchor_sizes x aspect_ratios")
    logging.info("init_from %s: %s", source, report)
    return Start(params, batch_stats, anchors, report)
  if os.path.isdir(source):
    params, batch_stats, report = _from_workdir(config, params, batch_stats,
                                                class_names=list(class_names))
  else:
    params, batch_stats, report = _from_darknet(config, model, params, batch_stats)
  anchors = np.exp(np.asarray(params["head"]["anchor_log_wh"], np.float64))
  logging.info("init_from %s: %s", source, report)
  return Start(params, batch_stats, anchors, report)


def _network(config) -> str:
  """The model's name for messages, e.g. 'darknet19' or 'tiny (width 0.125)'."""
  width = config.model.width
  return config.model.name + ("" if width == 1 else f" (width {width})")


# ------------------------------------------------------------------ darknet files


def _from_darknet(config, model, params, batch_stats):
  """A darknet weights file; with init_parts=all its cfg checked and its anchors taken."""
  path, parts = config.model.init_from, config.model.init_parts
  anchors, report = None, f"darknet {parts} from {os.path.basename(path)}"
  if parts == "all":
    cfg_path = config.model.init_cfg or darknet_cfg.beside(path)
    if cfg_path:
      sections = darknet_cfg.read(cfg_path)
      darknet_cfg.check(sections, darknet_cfg.model_layers(model), name=cfg_path)
      if config.model.keep_source_anchors:
        anchors = darknet_cfg.anchors(sections, name=cfg_path)
        report += f", anchors from {os.path.basename(cfg_path)}"
    else:
      logging.warning("init_from %s: no model.init_cfg and no .cfg next to it: the anchors "
                      "come from anchors.init=%s; give the detector's cfg "
                      "(--config.model.init_cfg=...) to use its anchors= line.",
                      path, config.anchors.init)
  params, batch_stats, header = darknet_weights.load(
      path, params, batch_stats, parts=parts, network=_network(config),
      bn_epsilon=model.bn_epsilon)
  if anchors is not None:
    params["head"]["anchor_log_wh"] = np.log(anchors).astype(np.float32)
  report += f" (darknet {header.major}.{header.minor}.{header.revision}, seen {header.seen:,})"
  if parts == "backbone":
    report += "; head fresh, anchors from anchors.init"
  return params, batch_stats, report


# ------------------------------------------------------------------ our workdirs


def _read_checkpoint(workdir: str):
  """(state dict, meta, step) of the newest readable checkpoint of ``workdir``; read only
  (an unreadable one is skipped, never moved)."""
  checkpointer = ckpt_lib.Checkpointer(workdir, keep=None, create=False, move_aside=False)
  try:
    restored = checkpointer.newest_readable(
        lambda step: (step, *checkpointer.restore_raw(step)))
  finally:
    checkpointer.close()
  if restored is None:
    raise InitFromError(f"--config.model.init_from={workdir}: no checkpoint in "
                        f"{checkpointer.directory} (train that run first)")
  step, state, meta = restored
  return state, meta, step


def _check_network(saved: dict, config, *, where: str) -> None:
  """Refuses a checkpoint of another network (model.name, model.width; model.reorg when
  the passthrough is taken), naming each key."""
  saved_model = dict(saved.get("model", {}))
  saved_model.setdefault("reorg", "tf")   # runs from before model.reorg had the tf order
  keys = ("name", "width") + (("reorg",) if config.model.init_parts == "all" else ())
  diff = [f"model.{k}: checkpoint {saved_model[k]!r}, now {config.model[k]!r}"
          for k in keys if k in saved_model and saved_model[k] != config.model[k]]
  if diff:
    raise InitFromError(f"{where} is of another network ({'; '.join(diff)}): its weights do "
                        "not fit; set these keys as the checkpoint has them")


def _from_workdir(config, params, batch_stats, *, class_names):
  """A run of ours: its params and BatchNorm statistics by ``init_parts`` (the head only
  when the classes match), its anchors by ``keep_source_anchors``."""
  workdir, parts = config.model.init_from, config.model.init_parts
  state, meta, step = _read_checkpoint(workdir)
  where = f"--config.model.init_from={workdir} (checkpoint {step})"
  _check_network(meta.get("config", {}), config, where=where)
  source = _flat(state["params"]), _flat(state.get("batch_stats", {}))
  fresh = _flat(params), _flat(batch_stats)

  num_anchors = fresh[0]["head/anchor_log_wh"].shape[0]
  saved_anchors = source[0]["head/anchor_log_wh"].shape[0]
  saved_classes = source[0]["head/pred/bias"].shape[0] // saved_anchors - 5
  num_classes = fresh[0]["head/pred/bias"].shape[0] // num_anchors - 5
  saved_names = meta.get("class_names")
  same_classes = saved_classes == num_classes and saved_names in (None, class_names)
  keep_head = parts == "all" and same_classes and saved_anchors == num_anchors
  take_anchors = parts == "all" and config.model.keep_source_anchors
  if take_anchors and saved_anchors != num_anchors:
    raise InitFromError(f"{where} has {saved_anchors} anchors, anchors.num={num_anchors}: set "
                        f"--config.anchors.num={saved_anchors}, or "
                        "--config.model.keep_source_anchors=False to start from anchors.init")

  def wanted(key):
    top = key.split("/")[0]
    if key == "head/anchor_log_wh":
      return take_anchors
    if top == "head":
      return keep_head
    return parts == "all" or top.startswith("backbone_conv")

  for new, old, kind in ((fresh[0], source[0], "params"), (fresh[1], source[1], "batch_stats")):
    for key in new:
      if not wanted(key):
        continue
      if key not in old:
        if key.startswith("head/"):   # e.g. wh_bn of a run without bn_no_shift: stays fresh
          continue
        raise InitFromError(f"{where} has no {kind} {key}: not a checkpoint of this network")
      if np.shape(old[key]) != np.shape(new[key]):
        raise InitFromError(f"{where}: {kind} {key} has shape {np.shape(old[key])}, the model "
                            f"{np.shape(new[key])}: not a checkpoint of this network")
      new[key] = np.asarray(old[key], np.asarray(new[key]).dtype)

  report = f"{parts} from checkpoint {step} of {workdir}"
  if parts == "all" and not keep_head:
    why = (f"{saved_classes} classes there, {num_classes} here" if saved_classes != num_classes
           else "other class names" if not same_classes else
           f"{saved_anchors} anchors there, {num_anchors} here")
    report += f"; head re-initialised ({why})"
    logging.warning("%s: the head is re-initialised (%s).", where, why)
  report += "; anchors from " + ("the checkpoint" if take_anchors else "anchors.init")
  return (traverse_util.unflatten_dict(fresh[0], sep="/"),
          traverse_util.unflatten_dict(fresh[1], sep="/"), report)


def _flat(tree) -> dict:
  """A nested dict of arrays as {'a/b/c': NumPy array}."""
  if hasattr(tree, "unfreeze"):
    tree = tree.unfreeze()
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(dict(tree), sep="/").items()}
