"""darknet ``.cfg`` files: their layers, the region's anchors, and a check against our model.

A cfg is ``[section]`` headers, each followed by ``key=value`` lines; darknet's ``read_cfg``
drops every whitespace character of a line and skips lines starting with ``#`` or ``;``.
The first section is ``[net]``; the others are the layers, numbered from 0 (the numbers
``[route] layers=`` and darknet's log use). A whole detector's anchors are its
``[region] anchors=`` line, in grid cells (``core.anchors.from_darknet_line``).

``model_layers(model)`` writes our YOLOv2 out as the darknet layers it equals
(``yolov2-voc.cfg`` for DarkNet-19 with 20 classes); ``check`` compares a cfg with it, so
that weights are never read into a network of another shape.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from anchor_jax.core import anchors as anchors_lib
from anchor_jax.errors import UserError
from anchor_jax.model import yolov2

# darknet's defaults for the keys we compare (parser.c: parse_convolutional, parse_maxpool,
# parse_reorg, parse_region); ``padding`` of a conv is derived (pad=1 -> size/2).
DEFAULTS = {
    "convolutional": {"filters": 1, "size": 1, "stride": 1, "batch_normalize": 0,
                      "activation": "logistic"},
    "maxpool": {"stride": 1},
    "reorg": {"stride": 1, "reverse": 0, "flatten": 0, "extra": 0},
    "region": {"classes": 20, "num": 1, "coords": 4},
    "route": {},
}


class DarknetCfgError(UserError):
  """A darknet .cfg that cannot be read or does not describe the model."""


@dataclasses.dataclass(frozen=True)
class Section:
  kind: str        # 'net', 'convolutional', 'maxpool', 'route', 'reorg', 'region', ...
  options: dict    # key -> value string (whitespace removed, as darknet reads it)
  line: int        # line number of the [header] in the file (1-based)


@dataclasses.dataclass(frozen=True)
class Layer:
  """One darknet layer as our model implies it: kind and the option values it needs."""
  kind: str
  options: dict
  note: str = ""   # why, for messages (e.g. '5 anchors x (5 + 20 classes)')


def parse(text: str) -> list[Section]:
  """The sections of cfg text, in order, as darknet's ``read_cfg`` reads them."""
  sections = []
  for number, raw in enumerate(text.splitlines(), start=1):
    line = "".join(raw.split())
    if not line or line[0] in "#;":
      continue
    if line[0] == "[":
      sections.append(Section(line.strip("[]").lower(), {}, number))
    elif sections and "=" in line:
      key, _, value = line.partition("=")
      sections[-1].options[key] = value
    else:
      raise DarknetCfgError(f"line {number} {raw.strip()!r}: expected [section] or key=value")
  return sections


def read(path: str) -> list[Section]:
  """The sections of the cfg file ``path``; DarknetCfgError if it has no layers."""
  with open(path, encoding="utf-8", errors="replace") as f:
    try:
      sections = parse(f.read())
    except DarknetCfgError as e:
      raise DarknetCfgError(f"{path}: {e}") from None
  if not sections or sections[0].kind not in ("net", "network"):
    raise DarknetCfgError(f"{path}: not a darknet cfg (it must start with a [net] section)")
  return sections


def layers(sections: list[Section]) -> list[Section]:
  """The layer sections (without ``[net]``), indexed as darknet numbers them."""
  return sections[1:]


def _value(section: Section, key: str):
  """The option as darknet reads it (int where its default is an int)."""
  default = DEFAULTS.get(section.kind, {}).get(key)
  if section.kind == "maxpool" and key == "size":
    default = _value(section, "stride")
  if section.kind == "convolutional" and key == "padding":   # parse_convolutional
    pad = int(section.options.get("pad", 0))
    return _value(section, "size") // 2 if pad else int(section.options.get("padding", 0))
  if section.kind == "route" and key == "layers":   # negative = relative to this layer
    return tuple(int(v) for v in section.options.get("layers", "").split(",") if v)
  raw = section.options.get(key)
  if raw is None:
    return default
  return raw if isinstance(default, str) else int(float(raw))


def _absolute_route(value: tuple, index: int) -> tuple:
  return tuple(v + index if v < 0 else v for v in value)


def region(sections: list[Section], *, name: str = "cfg") -> Section:
  """The (last) ``[region]`` section."""
  found = [s for s in sections if s.kind == "region"]
  if not found:
    raise DarknetCfgError(f"{name}: no [region] section (not a YOLOv2 detector cfg)")
  return found[-1]


def anchors(sections: list[Section], *, name: str = "cfg") -> np.ndarray:
  """[A, 2] grid units from the ``[region] anchors=`` line (``num=`` of them)."""
  section = region(sections, name=name)
  if "anchors" not in section.options:
    raise DarknetCfgError(f"{name}: its [region] (line {section.line}) has no anchors= line")
  try:
    values = anchors_lib.from_darknet_line(section.options["anchors"])
  except ValueError as e:
    raise DarknetCfgError(f"{name}: [region] anchors=: {e}") from None
  num = _value(section, "num")
  if len(values) != num:
    raise DarknetCfgError(f"{name}: [region] has num={num} but {len(values)} anchors")
  return values


def model_layers(model: yolov2.YOLOv2) -> list[Layer]:
  """Our YOLOv2 as darknet layers (the layout of ``yolov2-voc.cfg``, generalised to
  ``model.backbone``, ``model.width`` and the head size)."""
  arch = yolov2.ARCHS[model.backbone]
  width = lambda c: yolov2.scale_channels(c, model.width, min_channels=model.min_channels)

  def conv(size, filters, *, bn=True, note=""):
    return Layer("convolutional", {"size": size, "filters": filters, "stride": 1,
                                   "padding": size // 2, "batch_normalize": int(bn),
                                   "activation": "leaky" if bn else "linear"}, note)

  out = []
  for layer in arch.layers:
    if layer == yolov2.MAXPOOL:
      out.append(Layer("maxpool", {"size": 2, "stride": 2}))
    elif layer == yolov2.SPACE_TO_DEPTH:   # darknet's nearest layer; its channel order differs
      out.append(Layer("reorg", {"stride": 2, "reverse": 0, "flatten": 0, "extra": 0},
                       "space-to-depth stem (TensorFlow's channel order)"))
    else:
      out.append(conv(layer[0], width(layer[1])))
  last_pool = max(i for i, layer in enumerate(out) if layer.kind == "maxpool")
  fine = last_pool - 1   # the stride-16 feature entering the last max-pool
  head = width(arch.head_channels)
  num_anchors, num_classes = len(model.anchors), model.num_classes
  out += [conv(3, head), conv(3, head)]
  second = len(out) - 1
  out.append(Layer("route", {"layers": (fine,)}, "the stride-16 feature"))
  out.append(conv(1, width(arch.passthrough_channels)))
  out.append(Layer("reorg", {"stride": 2, "reverse": 0, "flatten": 0, "extra": 0}))
  out.append(Layer("route", {"layers": (len(out) - 1, second)}, "[reorg, head conv]"))
  out.append(conv(3, head))
  out.append(conv(1, num_anchors * (5 + num_classes), bn=False,
                  note=f"{num_anchors} anchors x (5 + {num_classes} classes)"))
  out.append(Layer("region", {"classes": num_classes, "num": num_anchors, "coords": 4},
                   f"{num_classes} classes in the data, anchors.num={num_anchors}"))
  return out


def check(sections: list[Section], expected: list[Layer], *, name: str) -> None:
  """Raises DarknetCfgError at the first layer of the cfg that differs from ``expected``
  (kind or any option), naming the layer, its line and both values."""
  cfg_layers = layers(sections)
  pairs = list(enumerate(zip(cfg_layers, expected)))
  # The region first: a class or anchor count that differs is said as such.
  pairs.sort(key=lambda pair: pair[1][1].kind != "region")
  for index, (section, want) in pairs:
    where = f"{os.path.basename(name)} layer {index} ([{section.kind}], line {section.line})"
    if section.kind != want.kind:
      raise DarknetCfgError(f"{where}: the model has a [{want.kind}] layer there: the cfg is "
                            "of another network (model.name, model.width?)")
    for key, value in want.options.items():
      found = _value(section, key)
      if key == "layers":
        found = _absolute_route(found, index)
      if found != value:
        note = f" ({want.note})" if want.note else ""
        raise DarknetCfgError(f"{where}: {key}={_show(found)}, the model has "
                              f"{key}={_show(value)}{note}")
  if len(cfg_layers) != len(expected):
    raise DarknetCfgError(f"{os.path.basename(name)}: {len(cfg_layers)} layers, the model "
                          f"has {len(expected)} (a {expected[-1].kind} last): the cfg is of "
                          "another network")


def _show(value) -> str:
  return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def beside(weights_path: str) -> str | None:
  """``NAME.cfg`` next to ``NAME.weights`` (darknet's file pairs), if it exists."""
  stem, _ = os.path.splitext(weights_path)
  candidate = stem + ".cfg"
  return candidate if os.path.isfile(candidate) else None
