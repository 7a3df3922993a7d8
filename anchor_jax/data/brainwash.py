"""Brainwash's files (Stewart, Andriluka & Ng, CVPR 2016): IDL annotations and the manual download.

Annotations are IDL files, one image per line::

  "brainwash_11_13_2014_images/00001000_640x480.png": (170.0, 101.0, 214.0, 142.0), (...);
  "brainwash_11_13_2014_images/00001500_640x480.png";

``"path"``, then optionally ``:`` and comma-separated ``(x1, y1, x2, y2)`` rectangles in
pixels (each may carry a ``:score`` and/or ``/id`` suffix, ignored), then ``;`` (``.`` ends
the last line). A line without rectangles is an image without heads. The TFDS builder
(``brainwash_builder.py``) reads them; this module needs no TensorFlow.
"""
from __future__ import annotations

import os
import re

import numpy as np

SPLIT_FILES = {"train": "brainwash_train.idl", "validation": "brainwash_val.idl",
               "test": "brainwash_test.idl"}
CLASS_NAMES = ("head",)
MANUAL_SUBDIR = "brainwash"

_LINE = re.compile(r'^\s*"(?P<path>[^"]+)"\s*:?(?P<rest>.*)$')
_RECT = re.compile(r"\(([^()]*)\)")

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the Brainwash dataset archive (brainwash.tar) from its public page in
the Stanford Digital Repository, https://purl.stanford.edu/sx925dc9385 (linked from the
paper "End-to-end people detection in crowded scenes", Stewart, Andriluka & Ng, CVPR 2016),
and extract it into <manual_dir>/{MANUAL_SUBDIR}/ so that this folder holds
  brainwash_train.idl  brainwash_val.idl  brainwash_test.idl
  brainwash_10_27_2014_images/  brainwash_11_13_2014_images/  brainwash_11_24_2014_images/
<manual_dir> defaults to <data_dir>/downloads/manual, <data_dir> being dataset.path."""


def parse_idl_line(line: str):
  """``(image path, boxes [n, 4] float64 x1y1x2y2 as written)`` of one IDL line, or None for
  a blank line. ValueError for a line that is not IDL."""
  if not line.strip():
    return None
  match = _LINE.match(line)
  if not match:
    raise ValueError(f"not an IDL line: {line.strip()[:80]!r}")
  boxes = []
  for rect in _RECT.findall(match["rest"]):
    values = [float(v) for v in rect.split(",")]
    if len(values) != 4:
      raise ValueError(f"rectangle needs 4 numbers, got ({rect})")
    boxes.append(values)
  return match["path"], np.array(boxes, np.float64).reshape(-1, 4)


def parse_idl(path):
  """List of ``(image path, boxes [n, 4])`` of an IDL file, in file order."""
  with open(path, encoding="utf-8") as f:
    parsed = []
    for number, line in enumerate(f, 1):
      try:
        record = parse_idl_line(line)
      except ValueError as e:
        raise ValueError(f"{path}:{number}: {e}") from e
      if record is not None:
        parsed.append(record)
  return parsed


def find_root(manual_dir) -> str | None:
  """The folder holding the IDL files: ``<manual_dir>/brainwash`` or ``<manual_dir>``."""
  for root in (os.path.join(os.fspath(manual_dir), MANUAL_SUBDIR), os.fspath(manual_dir)):
    if all(os.path.isfile(os.path.join(root, f)) for f in SPLIT_FILES.values()):
      return root
  return None
