"""Writes boxes.csv: an example set of box shapes for the anchor tools.

Box sizes are pixels at a 416 x 416 input, drawn from a mixture of three
log-normal clusters (below), clipped to [MIN_PX, IMAGE_SIZE] and rounded to
0.1 px. Deterministic for a given --seed. Regenerate with:

  python experiments/examples/make_boxes.py   # -> experiments/examples/boxes.csv
  python -m anchor_jax.anchors --boxes=experiments/examples/boxes.csv --k=5

Other sets: ``--out=FILE.csv --num=2000 --seed=0``.
"""
import csv
import os

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", os.path.join(os.path.dirname(os.path.abspath(__file__)), "boxes.csv"),
                    "CSV to write (columns w,h).")
flags.DEFINE_integer("num", 2000, "Number of boxes.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")

IMAGE_SIZE = 416
MIN_PX = 2.0
# (name, mixture weight, median w px, median h px, log-space std): small
# roughly square objects, tall ones (people), large wide ones (cars, sofas).
CLUSTERS = (
    ("small", 0.45, 28.0, 32.0, 0.35),
    ("tall", 0.35, 70.0, 160.0, 0.30),
    ("large_wide", 0.20, 230.0, 170.0, 0.25),
)


def sample_boxes(num, *, seed):
  """[num, 2] (w, h) pixels from the CLUSTERS mixture."""
  rng = np.random.default_rng(seed)
  weights = np.array([c[1] for c in CLUSTERS])
  which = rng.choice(len(CLUSTERS), size=num, p=weights / weights.sum())  # [num]
  log_median = np.log([[c[2], c[3]] for c in CLUSTERS])  # [C, 2]
  sigma = np.array([c[4] for c in CLUSTERS])  # [C]
  log_wh = log_median[which] + sigma[which, None] * rng.standard_normal((num, 2))
  return np.clip(np.round(np.exp(log_wh), 1), MIN_PX, IMAGE_SIZE)


def main(argv):
  """Samples the boxes and writes them to ``--out``."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  wh = sample_boxes(FLAGS.num, seed=FLAGS.seed)
  with open(FLAGS.out, "w", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(["w", "h"])
    writer.writerows([f"{w:.1f}", f"{h:.1f}"] for w, h in wh)
  print(f"wrote {len(wh)} boxes to {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
