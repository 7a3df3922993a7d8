"""TFDS builder for Brainwash (Stewart, Andriluka & Ng, CVPR 2016): heads in a cafe, one class.

Brainwash is not in the TFDS catalogue and its archive is not downloadable by script, so
this is a manual-download builder: ``MANUAL_DOWNLOAD_INSTRUCTIONS`` says what to fetch and
where to put it. Prepare it once (offline) with
``python -m anchor_jax.prepare --dataset=brainwash --data_dir=DIR``; read it with
``anchor_jax.data.tfds_datasets.BrainwashDataset``.

The IDL files are parsed by ``brainwash.py``. A line without rectangles is an image
without heads: kept. Rectangles are
two opposite corners: they are put in min/max order, clipped to the image and dropped if
no area is left (counts are logged; the builder has no ``stats``).
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from anchor_jax.data import detection, image_io
from anchor_jax.data.brainwash import (
  CLASS_NAMES,
  MANUAL_DOWNLOAD_INSTRUCTIONS,
  SPLIT_FILES,
  find_root,
  parse_idl,
)


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
