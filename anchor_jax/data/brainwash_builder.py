"""TFDS builder for Brainwash (Stewart, Andriluka & Ng, CVPR 2016): heads in a cafe, one class.

Brainwash is not in the TFDS catalogue and its archive is not downloadable by script, so
this is a manual-download builder: ``MANUAL_DOWNLOAD_INSTRUCTIONS`` says what to fetch and
where to put it. Prepare it once (offline) with
``python -m anchor_jax.data.prepare --dataset=brainwash --data_dir=DIR``; read it with
``anchor_jax.data.tfds_datasets.BrainwashDataset``.

Annotations are IDL files, one image per line::

  "brainwash_11_13_2014_images/00001000_640x480.png": (170.0, 101.0, 214.0, 142.0), (...);
  "brainwash_11_13_2014_images/00001500_640x480.png";

``"path"``, then optionally ``:`` and comma-separated ``(x1, y1, x2, y2)`` rectangles in
pixels (each may carry a ``:score`` and/or ``/id`` suffix, ignored), then ``;`` (``.`` ends
the last line). A line without rectangles is an image without heads: kept. Rectangles are
two opposite corners: they are put in min/max order, clipped to the image and dropped if
no area is left (counts are logged; the builder has no ``stats``).
"""
from __future__ import annotations

import os
import re

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from anchor_jax.data import detection, image_io

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


class Brainwash(tfds.core.GeneratorBasedBuilder):
  """Brainwash head detection: train / validation / test from the IDL files."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self):
    return self.dataset_info_from_configs(
        description="Brainwash: heads of people in a cafe, 640x480 webcam frames.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(),
            "image/filename": tfds.features.Text(),
            "objects": tfds.features.Sequence({
                "bbox": tfds.features.BBoxFeature(),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            }),
        }),
        homepage="https://purl.stanford.edu/sx925dc9385",
    )

  def _split_generators(self, dl_manager):
    root = find_root(dl_manager.manual_dir)
    if root is None:
      raise detection.DataNotFoundError(
          f"Brainwash files not found in {dl_manager.manual_dir}.\n"
          + MANUAL_DOWNLOAD_INSTRUCTIONS)
    return {split: self._generate_examples(root, os.path.join(root, name))
            for split, name in SPLIT_FILES.items()}

  def _generate_examples(self, root, idl_path):
    fixed = dropped = skipped = 0
    seen = set()
    for image_path, boxes in parse_idl(idl_path):
      full_path = os.path.join(root, image_path)
      try:
        if image_path in seen:
          raise image_io.ImageError("listed twice; the first line is kept")
        height, width = image_io.image_hw(full_path)
      except image_io.ImageError as e:
        skipped += 1
        logging.warning("%s: skipping %s: %s", idl_path, image_path, e)
        continue
      seen.add(image_path)
      ordered = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]),
                                np.maximum(boxes[:, :2], boxes[:, 2:])], 1)  # [n, 4]
      clean, keep, _, num_dropped = detection.clean_boxes(ordered, height, width)
      fixed += int((clean != boxes[keep]).any(1).sum())  # reordered and/or clipped
      dropped += num_dropped
      scale = np.array([height, width, height, width], np.float64)
      yield image_path, {
          "image": full_path,
          "image/filename": image_path,
          "objects": {
              "bbox": [np.clip(b[[1, 0, 3, 2]] / scale, 0.0, 1.0) for b in clean],
              "label": [0] * len(clean),
          },
      }
    if fixed or dropped or skipped:
      logging.warning("%s: %d boxes reordered or clipped, %d dropped; %d images skipped",
                      idl_path, fixed, dropped, skipped)
