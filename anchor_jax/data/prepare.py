"""Prepare a TFDS dataset once, in array_record format, for ``dataset.name=voc|coco|brainwash``.

  python -m anchor_jax.data.prepare --dataset=voc --data_dir=/data/tfds
  python -m anchor_jax.data.prepare --dataset=coco --data_dir=/data/tfds
  python -m anchor_jax.data.prepare --dataset=brainwash --data_dir=/data/tfds [--manual_dir=DIR]

then train with ``--config.dataset.path=/data/tfds``. VOC (voc/2007 + voc/2012, ~4.5 GB of
archives) and COCO (coco/2017, ~25 GB) are downloaded by TFDS, so run those on a machine
with internet access and copy ``data_dir`` over if needed. Brainwash is built offline from
its manual download (see ``brainwash_builder.MANUAL_DOWNLOAD_INSTRUCTIONS``); the manual
folder defaults to ``<data_dir>/downloads/manual``. A dataset already prepared there is
left as it is. Array_record (not TFDS's default tfrecord) is what random access needs.
"""
from __future__ import annotations

import argparse
import os
import sys

from anchor_jax.data import detection, tfds_datasets

TFDS_NAMES = {"voc": ("voc/2007", "voc/2012"), "coco": ("coco/2017",), "brainwash": ("brainwash",)}
FILE_FORMAT = "array_record"


def _builder(tfds_name: str, data_dir: str):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  if tfds_name == "brainwash":
    from anchor_jax.data import brainwash_builder  # pylint: disable=import-outside-toplevel
    return brainwash_builder.Brainwash(data_dir=data_dir)
  return tfds.builder(tfds_name, data_dir=data_dir)


def prepare(dataset: str, data_dir, manual_dir=None, download_dir=None) -> list[str]:
  """Downloads (VOC, COCO) or reads the manual download (Brainwash) and writes array_record
  files under ``data_dir``. Returns the prepared folders."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  if dataset not in TFDS_NAMES:
    raise ValueError(f"dataset must be one of {sorted(TFDS_NAMES)}, got {dataset!r}")
  data_dir = tfds_datasets.resolve_data_dir(data_dir)
  manual_dir = os.path.abspath(os.path.expanduser(
      manual_dir or os.path.join(data_dir, "downloads", "manual")))
  if dataset == "brainwash":
    from anchor_jax.data import brainwash_builder  # pylint: disable=import-outside-toplevel
    if brainwash_builder.find_root(manual_dir) is None:
      raise detection.DataNotFoundError(
          f"Brainwash files not found in {manual_dir}.\n"
          + brainwash_builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
  config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  prepared = []
  for name in TFDS_NAMES[dataset]:
    builder = _builder(name, data_dir)
    builder.download_and_prepare(download_dir=download_dir, download_config=config,
                                 file_format=FILE_FORMAT)
    prepared.append(os.fspath(builder.data_dir))
  return prepared


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", required=True, choices=sorted(TFDS_NAMES))
  parser.add_argument("--data_dir", default="", help="TFDS data_dir (= dataset.path).")
  parser.add_argument("--manual_dir", default="", help="Manual downloads (Brainwash).")
  parser.add_argument("--download_dir", default="", help="Where archives are downloaded.")
  args = parser.parse_args(argv)
  try:
    folders = prepare(args.dataset, args.data_dir, args.manual_dir or None,
                      args.download_dir or None)
  except detection.DatasetError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for folder in folders:
    print(f"prepared {folder}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
