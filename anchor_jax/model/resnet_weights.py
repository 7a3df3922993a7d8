"""ImageNet ResNet weights from an ``.npz`` file into our ResNet's params and batch_stats.

The file (``numpy.savez``; ``experiments/tools/convert_resnet_torchvision.py`` writes it from
a torchvision or timm ``resnet50`` state dict) holds one float array per key. Keys are our
param paths under the backbone, joined by ``/``: torchvision's module names with flax's
leaf names and layouts:

  ============================================  ==========================================
  npz key                                       torchvision state-dict key (and layout)
  ============================================  ==========================================
  ``conv1/kernel`` [7, 7, 3, 64] HWIO           ``conv1.weight`` [64, 3, 7, 7] OIHW
  ``bn1/scale``, ``bn1/bias`` [64]              ``bn1.weight``, ``bn1.bias``
  ``bn1/mean``, ``bn1/var`` [64]                ``bn1.running_mean``, ``bn1.running_var``
  ``layer{k}/{i}/conv{j}/kernel`` HWIO          ``layer{k}.{i}.conv{j}.weight`` OIHW
  ``layer{k}/{i}/bn{j}/{scale,bias,mean,var}``  ``layer{k}.{i}.bn{j}.{weight,bias,running_*}``
  ``layer{k}/0/downsample_conv/kernel``         ``layer{k}.0.downsample.0.weight``
  ``layer{k}/0/downsample_bn/...``              ``layer{k}.0.downsample.1.*``
  ============================================  ==========================================

k = 1..4, i the block, j = 1..3 (1..2 for basic blocks); ``num_batches_tracked`` and the
classifier ``fc`` are not stored. ``scale``/``bias`` go to ``params``, ``mean``/``var`` to
``batch_stats`` (flax's BatchNorm normalises with ``sqrt(var + eps)``, eps 1e-5, as
torchvision's eval mode, so the running variance is copied as is).

The weights expect torchvision's input: RGB in [0, 1] normalised by the ImageNet mean and std
(``faster_rcnn.IMAGENET_MEAN`` / ``IMAGENET_STD``, the model's defaults). Detectron2's MSRA
"caffe" ResNets (BGR, stride in the 1x1 conv) are another layout and are not read.

Every backbone leaf of the model must be in the file with its shape; extra keys are allowed
only for whole stages the model does not build (``layer4`` of the C4 detector).
"""
from __future__ import annotations

import os
import re
import zipfile

import numpy as np
from flax import traverse_util

from anchor_jax.errors import UserError

BN_STATS = ("mean", "var")   # leaves in batch_stats; every other leaf is in params
CONVERTER = "experiments/tools/convert_resnet_torchvision.py"


class ResNetWeightsError(UserError):
  """An ``.npz`` of ResNet weights that does not fit the model (keys, shapes, values)."""


def npz_key(path) -> str:
  """The file key of a param path below the backbone: ``('layer1', '0', 'conv1', 'kernel')``
  -> ``'layer1/0/conv1/kernel'``."""
  return "/".join(str(p) for p in path)


def expected_keys(params, batch_stats) -> dict:
  """``{npz key: (collection, path, shape)}`` of a ResNet's own params / batch_stats trees."""
  out = {}
  for collection, tree in (("params", params), ("batch_stats", batch_stats)):
    for path, leaf in traverse_util.flatten_dict(dict(tree)).items():
      out[npz_key(path)] = (collection, path, tuple(np.shape(leaf)))
  return out


def _read(path: str) -> dict:
  if not os.path.exists(path):
    raise ResNetWeightsError(f"{path}: no such file (an .npz of ResNet weights; {CONVERTER} "
                             "writes one from a torchvision or timm state dict)")
  try:
    with np.load(path, allow_pickle=False) as data:
      return {k: data[k] for k in data.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise ResNetWeightsError(f"{path}: not a readable .npz file ({e}); {CONVERTER} writes "
                             "one from a torchvision or timm state dict") from e


def _stage(key: str) -> str:
  return key.split("/", 1)[0]


def _missing_message(path, missing, found) -> str:
  line = (f"{os.path.basename(path)}: {len(missing)} weight(s) of the model missing from the "
          f"file, e.g. {', '.join(repr(k) for k in missing[:3])}")
  torch_like = [k for k in found if re.search(r"\.(weight|running_mean)$", k)]
  if torch_like:
    return line + (f"; the file has torch-style keys such as {torch_like[0]!r}: convert the "
                   f"state dict with {CONVERTER}")
  stages = sorted({_stage(k) for k in missing})
  return line + (f" (stages {', '.join(stages)}); the file's keys must be the layout in "
                 "anchor_jax/model/resnet_weights.py")


def load_npz(path: str, params, batch_stats, *, prefix: str | None = "backbone"):
  """``(params, batch_stats)`` with the backbone's leaves replaced by the file's.

  ``params`` / ``batch_stats``: the model's trees (a detector's with the ResNet at
  ``[prefix]``, or the ResNet's own with ``prefix=None``); new trees are returned, the
  inputs are not changed. Raises ``ResNetWeightsError`` naming the key on a missing key, a
  shape that differs (both shapes), a non-finite value, or a key the model does not have.
  """
  params, batch_stats = dict(params), dict(batch_stats)
  if prefix is not None and prefix not in params:
    raise ValueError(f"no {prefix!r} in the param tree (top level: {sorted(params)})")
  own_params = params[prefix] if prefix is not None else params
  own_stats = batch_stats.get(prefix, {}) if prefix is not None else batch_stats
  expected = expected_keys(own_params, own_stats)
  found = _read(path)
  name = os.path.basename(path)

  missing = [k for k in expected if k not in found]
  if missing:
    raise ResNetWeightsError(_missing_message(path, missing, found))
  model_stages = {_stage(k) for k in expected}
  extra = [k for k in found if k not in expected and _stage(k) in model_stages]
  if extra:
    raise ResNetWeightsError(
        f"{name}: {len(extra)} key(s) the model does not have, e.g. {extra[0]!r}: a deeper "
        "ResNet than the model's (rcnn.depth), or another layout")

  new = {"params": traverse_util.flatten_dict(dict(own_params)),
         "batch_stats": traverse_util.flatten_dict(dict(own_stats))}
  for key, (collection, leaf_path, shape) in expected.items():
    value = np.asarray(found[key])
    if value.shape != shape:
      raise ResNetWeightsError(
          f"{name}: {key!r} has shape {value.shape} in the file, the model's is {shape}: "
          "ImageNet weights need the full-size model (model.width=1 and the file's "
          "rcnn.depth); a conv kernel must be HWIO (the converter transposes OIHW)")
    if not np.issubdtype(value.dtype, np.floating):
      raise ResNetWeightsError(f"{name}: {key!r} has dtype {value.dtype}, expected floats")
    if not np.isfinite(value).all():
      raise ResNetWeightsError(f"{name}: {key!r} has non-finite values")
    if collection == "batch_stats" and key.endswith("/var") and (value < 0).any():
      raise ResNetWeightsError(f"{name}: {key!r} (a running variance) has negative values")
    old = new[collection][leaf_path]
    new[collection][leaf_path] = np.asarray(value, dtype=old.dtype)

  loaded_params = traverse_util.unflatten_dict(new["params"])
  loaded_stats = traverse_util.unflatten_dict(new["batch_stats"])
  if prefix is None:
    return loaded_params, loaded_stats
  params[prefix] = loaded_params
  batch_stats[prefix] = loaded_stats
  return params, batch_stats
