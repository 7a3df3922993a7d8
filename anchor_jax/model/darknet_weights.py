"""darknet ``.weights`` files into our YOLOv2 params: DarkNet-19 backbones and whole detectors.

A darknet weights file (``src/parser.c``, ``load_weights_upto``) is a header and then, for
every convolutional layer in network order, float32 arrays (little-endian):

  header   int32 major, minor, revision; then ``seen`` (images trained on): a 64-bit
           ``size_t`` when ``major * 10 + minor >= 2`` and ``major < 1000`` and
           ``minor < 1000``, else an int32 (16 or 20 bytes in all);
  conv+BN  biases [n], scales [n], rolling mean [n], rolling variance [n],
           weights [n, c, k, k]   (``load_convolutional_weights``);
  conv     biases [n], weights [n, c, k, k]   (no BatchNorm: the prediction conv).

Max-pool, route, reorg and region layers hold nothing. Our model's convs in darknet's
order (``yolov2-voc.cfg``): the backbone convs, ``detect_conv1``, ``detect_conv2``,
``passthrough_conv`` (after ``route 16``), ``detect_conv3`` (after the reorg and
``route 27,24``), ``head/pred``. The reader is general over ``yolov2.ARCHS`` and widths:
the layer list comes from the shapes of the param tree it fills.

BatchNorm at inference: darknet computes ``scale * (x - mean) / (sqrt(var) + 1e-6) + bias``,
flax ``scale * (x - mean) / sqrt(var' + eps) + bias``. We keep darknet's scale, bias and mean
and set ``var' = (sqrt(var) + 1e-6)² - eps``, the same output. When that is negative
(``var`` below ~1e-5) ``var'`` is 0 and the scale absorbs the rest,
``scale' = scale * sqrt(eps) / (sqrt(var) + 1e-6)`` (equal at inference; only the trainable
scale of such a near-dead channel differs from darknet's).

darknet's region layer has no BatchNorm on ``t_w, t_h``: a model with ``bn_no_shift``
gets an identity one (scale 1, mean 0, ``var' = 1 - eps``) from a whole detector.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
from flax import traverse_util

from anchor_jax.errors import UserError

PARTS = ("backbone", "all")   # model.init_parts
HEAD_CONVS = ("detect_conv1", "detect_conv2", "passthrough_conv", "detect_conv3")
DARKNET_BN_EPS = 1e-6   # darknet's normalize_cpu: (x - mean) / (sqrt(var) + .000001)
FLOAT = np.dtype("<f4")


class DarknetFileError(UserError):
  """A darknet weights file that does not fit the model (size, layout or values)."""


@dataclasses.dataclass(frozen=True)
class Header:
  major: int
  minor: int
  revision: int
  seen: int
  nbytes: int   # 16 or 20


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """One darknet convolutional layer: our module name, kernel size, channels, BatchNorm."""
  name: str
  size: int
  channels_in: int
  filters: int
  batch_norm: bool

  @property
  def num_floats(self) -> int:
    """Floats in the file: biases (+ scales, mean, variance) and weights."""
    return self.filters * (4 if self.batch_norm else 1) + \
        self.filters * self.channels_in * self.size * self.size


def read_header(path: str) -> Header:
  """The header of ``path`` by darknet's rule (see the module docstring)."""
  with open(path, "rb") as f:
    head = f.read(20)
  if len(head) < 16:
    raise DarknetFileError(f"{path}: {len(head)} bytes, shorter than a darknet weights "
                           "header (16 or 20 bytes): truncated, or not a .weights file")
  major, minor, revision = (int(v) for v in np.frombuffer(head[:12], "<i4"))
  if major * 10 + minor >= 2 and major < 1000 and minor < 1000:
    if len(head) < 20:
      raise DarknetFileError(f"{path}: header version {major}.{minor} has a 64-bit 'seen' "
                             f"(20 bytes) but the file has {len(head)} bytes: truncated")
    return Header(major, minor, revision, int(np.frombuffer(head[12:20], "<u8")[0]), 20)
  return Header(major, minor, revision, int(np.frombuffer(head[12:16], "<i4")[0]), 16)


def conv_specs(params) -> tuple[list[ConvSpec], list[ConvSpec]]:
  """(backbone convs, head convs incl. ``head/pred``) of a YOLOv2 param tree, in darknet's
  order, with the shapes the tree holds."""
  def spec(name, kernel, batch_norm):
    k, _, cin, cout = np.shape(kernel)   # [k, k, Cin, Cout]
    return ConvSpec(name, int(k), int(cin), int(cout), batch_norm)

  backbone = sorted((n for n in params if n.startswith("backbone_conv")),
                    key=lambda n: int(n.removeprefix("backbone_conv")))
  convs = [spec(n, params[n]["conv"]["kernel"], True) for n in backbone]
  head = [spec(n, params[n]["conv"]["kernel"], True) for n in HEAD_CONVS]
  head.append(spec("head/pred", params["head"]["pred"]["kernel"], False))
  return convs, head


def total_floats(specs) -> int:
  return sum(s.num_floats for s in specs)


def describe(network: str, *, parts: str, num_anchors: int, num_classes: int) -> str:
  """What the file should hold, for messages: 'darknet19 + 20-class head (5 anchors)'."""
  if parts == "backbone":
    return f"the {network} backbone"
  return f"{network} + {num_classes}-class head ({num_anchors} anchors)"


def _detector_outputs(found: int, backbone, head) -> int | None:
  """The prediction conv's outputs per cell if ``found`` floats are a whole detector of
  this network with another head width; else None."""
  pred_in = head[-1].channels_in
  rest = found - total_floats(backbone) - total_floats(head[:-1])
  if rest > 0 and rest % (pred_in + 1) == 0:
    return rest // (pred_in + 1)
  return None


def _size_message(path, found, header, *, parts, backbone, head, network,
                  num_anchors) -> str | None:
  """None when ``found`` floats fit ``parts``; else one line naming what was expected."""
  expected = total_floats(backbone if parts == "backbone" else backbone + head)
  if found == expected:
    return None
  outputs = _detector_outputs(found, backbone, head)
  if parts == "backbone" and outputs is not None:
    return None   # a whole detector: darknet reads its first layers (``partial``)
  num_classes = head[-1].filters // num_anchors - 5
  what = describe(network, parts=parts, num_anchors=num_anchors, num_classes=num_classes)
  line = (f"{os.path.basename(path)}: expected {expected:,} floats for {what}, file has "
          f"{found:,} (after its {header.nbytes}-byte header)")
  if parts == "all" and found == total_floats(backbone):
    return line + (f": that is the {network} backbone alone (as darknet19_448.conv.23); use "
                   "--config.model.init_parts=backbone to train a new head on it")
  if outputs is not None:
    found_head = f"{outputs} outputs per cell"
    if outputs % num_anchors == 0 and outputs // num_anchors > 5:
      found_head += f" = {num_anchors} anchors x (5 + {outputs // num_anchors - 5} classes)"
    return line + (f": that is a {network} detector with {found_head}, the model has "
                   f"{num_anchors} x (5 + {num_classes}) = {head[-1].filters}; match "
                   "--config.dataset.num_classes / anchors.num to it, or use "
                   "--config.model.init_parts=backbone to train a new head")
  if found < expected:
    return line + ": the file is truncated, or of another network"
  return line + (": the file is of another network (another model.name or model.width?), "
                 "or not a darknet weights file")


def load(path: str, params, batch_stats, *, parts: str, network: str,
         bn_epsilon: float = 1e-5):
  """-> (params, batch_stats, header): copies of the trees with the layers of ``parts``
  ('backbone': the backbone convs; 'all': every conv incl. the prediction conv) read from
  the darknet weights file ``path``. Anchors are not in the file (see ``darknet_cfg``).

  The file's size must fit exactly (a whole detector is also accepted for 'backbone', as
  darknet reads the first layers of it); otherwise DarknetFileError says what was expected.
  ``network`` names the model in messages (e.g. 'darknet19').
  """
  if parts not in PARTS:
    raise ValueError(f"parts must be one of {PARTS}, got {parts!r}")
  header = read_header(path)
  body = os.path.getsize(path) - header.nbytes
  if body % FLOAT.itemsize:
    raise DarknetFileError(f"{path}: {body:,} bytes after the {header.nbytes}-byte header is "
                           "not a whole number of float32s: truncated, or not a .weights file")
  backbone, head = conv_specs(params)
  message = _size_message(path, body // FLOAT.itemsize, header, parts=parts,
                          backbone=backbone, head=head, network=network,
                          num_anchors=int(np.shape(params["head"]["anchor_log_wh"])[0]))
  if message:
    raise DarknetFileError(message)
  specs = backbone if parts == "backbone" else backbone + head
  floats = np.fromfile(path, dtype=FLOAT, count=total_floats(specs), offset=header.nbytes)

  flat_params = traverse_util.flatten_dict(_plain(params), sep="/")
  flat_stats = traverse_util.flatten_dict(_plain(batch_stats), sep="/")
  offset = 0
  for index, spec in enumerate(specs):
    arrays = {}
    for field, size in _fields(spec):
      arrays[field] = floats[offset:offset + size]
      offset += size
    _put(spec, index, arrays, flat_params, flat_stats, bn_epsilon=bn_epsilon, path=path)
  if parts == "all" and "head/wh_bn/scale" in flat_params:
    flat_params["head/wh_bn/scale"] = np.ones_like(flat_params["head/wh_bn/scale"])
    flat_stats["head/wh_bn/mean"] = np.zeros_like(flat_stats["head/wh_bn/mean"])
    flat_stats["head/wh_bn/var"] = np.full_like(flat_stats["head/wh_bn/var"], 1 - bn_epsilon)
  return (traverse_util.unflatten_dict(flat_params, sep="/"),
          traverse_util.unflatten_dict(flat_stats, sep="/"), header)


def _plain(tree):
  """A (possibly frozen) param tree as nested dicts of NumPy arrays."""
  if hasattr(tree, "unfreeze"):
    tree = tree.unfreeze()
  return {k: _plain(v) if isinstance(v, dict) or hasattr(v, "unfreeze") else np.asarray(v)
          for k, v in tree.items()}


def _fields(spec: ConvSpec):
  """(name, count) of the arrays of one conv layer, in file order."""
  n = spec.filters
  out = [("biases", n)]
  if spec.batch_norm:
    out += [("scales", n), ("mean", n), ("variance", n)]
  return out + [("weights", n * spec.channels_in * spec.size * spec.size)]


def flax_batchnorm(scales, mean, variance, *, epsilon: float):
  """darknet's (scales, rolling mean, rolling variance) -> flax's (scale, mean, var) with
  the same inference output (see the module docstring); float64 inside, float32 out."""
  scales, variance = np.asarray(scales, np.float64), np.asarray(variance, np.float64)
  denominator = np.sqrt(variance) + DARKNET_BN_EPS   # darknet divides by this
  var = np.maximum(denominator ** 2 - epsilon, 0.0)
  scale = scales * np.sqrt(var + epsilon) / denominator   # == scales unless var was clamped
  return scale.astype(np.float32), np.asarray(mean, np.float32), var.astype(np.float32)


def _put(spec, index, arrays, flat_params, flat_stats, *, bn_epsilon, path):
  """Writes one darknet conv layer's arrays into the flat trees (``name/...`` keys)."""
  n, k, c = spec.filters, spec.size, spec.channels_in
  kernel = arrays["weights"].reshape(n, c, k, k).transpose(2, 3, 1, 0)   # -> [k, k, Cin, Cout]
  if not spec.batch_norm:   # the prediction conv: bias and kernel
    flat_params[f"{spec.name}/kernel"] = kernel
    flat_params[f"{spec.name}/bias"] = arrays["biases"].copy()
    return
  if not np.all(arrays["variance"] >= 0):
    raise DarknetFileError(f"{path}: conv layer {index} ({spec.name}) has a negative or NaN "
                           "rolling variance: the file is damaged or not laid out as expected")
  scale, mean, var = flax_batchnorm(arrays["scales"], arrays["mean"], arrays["variance"],
                                    epsilon=bn_epsilon)
  flat_params[f"{spec.name}/conv/kernel"] = kernel
  flat_params[f"{spec.name}/bn/scale"] = scale
  flat_params[f"{spec.name}/bn/bias"] = arrays["biases"].copy()   # darknet's BN beta
  flat_stats[f"{spec.name}/bn/mean"] = mean
  flat_stats[f"{spec.name}/bn/var"] = var
