"""What a training run learned: figures and fit tables of a (finished or interrupted) run.

  python -m anchor_jax.inspect --workdir=DIR [--out=DIR/inspect] [--num_images=N]

Writes four PNGs to ``--out`` (``anchors_density.png``: GT box shapes with the initial,
IoU k-means and learned anchors, the paper's Figures 2-3; ``anchor_trajectories.png``;
``anchor_counts.png``; ``training_curves.png``) and prints one JSON object: the initial /
k-means / learned anchors (input pixels), their fit on the boxes (mean best IoU, BPR,
usage) and the last eval. The boxes are those of the first N training images (default
``anchors.kmeans_images``), read through the run's own config.json. Only reads the
workdir (the figures go to ``--out``).
"""
from __future__ import annotations

import json

from absl import flags

from anchor_jax.analysis import inspection
from anchor_jax.tools import cli


def define_flags(fv: flags.FlagValues, argv) -> None:
  del argv
  flags.DEFINE_string("workdir", None, "Training workdir (python -m anchor_jax.main).",
                      flag_values=fv)
  flags.DEFINE_string("out", None, "Folder for the PNGs (default WORKDIR/inspect).",
                      flag_values=fv)
  flags.DEFINE_integer("num_images", None, "Training images whose GT boxes form the density "
                       "and k-means (default: anchors.kmeans_images of the run).",
                       lower_bound=1, flag_values=fv)
  flags.mark_flag_as_required("workdir", flag_values=fv)


def main(fv: flags.FlagValues, args) -> int:
  if args:
    raise cli.UsageError(f"unexpected arguments {args}")
  summary = inspection.summarize(fv.workdir, out_dir=fv.out, num_images=fv.num_images)
  print(json.dumps(summary))
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)
