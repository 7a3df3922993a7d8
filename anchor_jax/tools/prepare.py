"""Prepare a TFDS dataset once, in array_record format, for ``dataset.name=voc|coco|brainwash``.

  python -m anchor_jax.prepare --dataset=voc --data_dir=/data/tfds
  python -m anchor_jax.prepare --dataset=coco --data_dir=/data/tfds
  python -m anchor_jax.prepare --dataset=brainwash --data_dir=/data/tfds [--manual_dir=DIR]

then train with ``--config.dataset.path=/data/tfds``. VOC (voc/2007 + voc/2012, ~4.5 GB of
archives) and COCO (coco/2017, ~25 GB) are downloaded by TFDS, so run those on a machine
with internet access and copy ``data_dir`` over if needed. Brainwash is built offline from
its manual download (see ``data/brainwash.py: MANUAL_DOWNLOAD_INSTRUCTIONS``); the manual
folder defaults to ``<data_dir>/downloads/manual``. A dataset already prepared there is
left as it is. Array_record (not TFDS's default tfrecord) is what random access needs.
"""
from __future__ import annotations

from absl import flags

from anchor_jax.data import tfds_prepare
from anchor_jax.tools import cli


def define_flags(fv: flags.FlagValues, argv) -> None:
  del argv
  flags.DEFINE_enum("dataset", None, sorted(tfds_prepare.TFDS_NAMES), "Dataset to prepare.",
                    flag_values=fv)
  flags.DEFINE_string("data_dir", "", "TFDS data_dir (= dataset.path).", flag_values=fv)
  flags.DEFINE_string("manual_dir", "", "Manual downloads (Brainwash).", flag_values=fv)
  flags.DEFINE_string("download_dir", "", "Where archives are downloaded.", flag_values=fv)
  flags.mark_flag_as_required("dataset", flag_values=fv)


def main(fv: flags.FlagValues, args) -> int:
  if args:
    raise cli.UsageError(f"unexpected arguments {args}")
  for folder in tfds_prepare.prepare(fv.dataset, fv.data_dir, fv.manual_dir or None,
                                      fv.download_dir or None):
    print(f"prepared {folder}")
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)
