"""Preparing TFDS datasets once, in array_record format (``python -m anchor_jax.prepare``).

VOC and COCO are downloaded by TFDS's own builders; Brainwash is built offline from its
manual download by ``brainwash_builder.Brainwash``. Imports TensorFlow (through TFDS): only
preparing needs it, reading a prepared dataset does not (``tfds_datasets.py``).
"""
from __future__ import annotations

import os

import tensorflow_datasets as tfds

from anchor_jax.data import brainwash, brainwash_builder, detection, tfds_datasets

TFDS_NAMES = {"voc": ("voc/2007", "voc/2012"), "voc07": ("voc/2007",), "coco": ("coco/2017",),
              "brainwash": ("brainwash",)}
FILE_FORMAT = "array_record"


def _builder(tfds_name: str, data_dir: str):
  if tfds_name == "brainwash":
    return brainwash_builder.Brainwash(data_dir=data_dir)
  return tfds.builder(tfds_name, data_dir=data_dir)


def prepare(dataset: str, data_dir, manual_dir=None, download_dir=None) -> list[str]:
  """Downloads (VOC, COCO) or reads the manual download (Brainwash) and writes array_record
  files under ``data_dir``. Returns the prepared folders."""
  if dataset not in TFDS_NAMES:
    raise ValueError(f"dataset must be one of {sorted(TFDS_NAMES)}, got {dataset!r}")
  data_dir = tfds_datasets.resolve_data_dir(data_dir)
  manual_dir = os.path.abspath(os.path.expanduser(
      manual_dir or os.path.join(data_dir, "downloads", "manual")))
  if dataset == "brainwash":
    if brainwash.find_root(manual_dir) is None:
      raise detection.DataNotFoundError(
          f"Brainwash files not found in {manual_dir}.\n"
          + brainwash.MANUAL_DOWNLOAD_INSTRUCTIONS)
  config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  prepared = []
  for name in TFDS_NAMES[dataset]:
    builder = _builder(name, data_dir)
    builder.download_and_prepare(download_dir=download_dir, download_config=config,
                                 file_format=FILE_FORMAT)
    prepared.append(os.fspath(builder.data_dir))
  return prepared
