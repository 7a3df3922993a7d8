"""What a training run learned: figures and fit tables of a (finished or interrupted) run.

  python -m anchor_jax.inspect --workdir=DIR [--out=DIR/inspect] [--num_images=N]

Writes four PNGs to ``--out`` (``anchors_density.png``: GT box shapes with the initial,
IoU k-means and learned anchors, the paper's Figures 2-3; ``anchor_trajectories.png``;
``anchor_counts.png``; ``training_curves.png``) and prints a text report: the initial /
k-means / learned anchors (input pixels, each set sorted by area) with their usage, their
fit on the boxes (mean best IoU, BPR at IoU 0.5 and by YOLOv5's ratio-4 rule) side by
side, and the last eval (AP50, class-agnostic AP50, AP per class). ``--json`` prints the
same as one JSON object (keys ``initial_anchors_px``, ``kmeans_anchors_px``,
``learned_anchors_px``, ``fit``, ``eval``, ``plots``, ...). The boxes are those of the
first N training images (default ``anchors.kmeans_images``), read through the run's own
config.json. Only reads the workdir (the figures go to ``--out``).
"""
from __future__ import annotations

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
  cli.define_json(fv)
  flags.mark_flag_as_required("workdir", flag_values=fv)


def main(fv: flags.FlagValues, args) -> int:
  if args:
    raise cli.UsageError(f"unexpected arguments {args}")
  summary = inspection.summarize(fv.workdir, out_dir=fv.out, num_images=fv.num_images)
  cli.report(fv, summary, inspection.report)
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)
