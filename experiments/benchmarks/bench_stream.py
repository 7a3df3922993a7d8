"""Throughput of the whole training stream (read + decode + augment + batch) vs ``dataset.workers``.

Writes a VOC-layout folder of ``--images`` JPEGs (500 x 375, ~3 boxes each) to a temp dir,
builds the ``voc_folder`` dataset and times ``pipeline.train_stream`` at
``--size`` px with batches of ``--batch`` images, for each ``--workers`` value (0 = the
prefetch thread alone). Prints the median images/s over ``--repeats`` timed windows of
``--steps`` batches each, and the ratio to workers=0 measured in the same run.

  python experiments/benchmarks/bench_stream.py
  python experiments/benchmarks/bench_stream.py --size=416 --workers=0,2,4,8
  python experiments/benchmarks/bench_stream.py --loader=grain --workers=1,2 --sizes=128,416
"""
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # run as a script from anywhere: the repository's packages
from anchor_jax import config_lib  # noqa: E402
from anchor_jax.data import pipeline  # noqa: E402
from tests import data_fixtures  # noqa: E402  (writes the same on-disk format as the tests)

FLAGS = flags.FLAGS
flags.DEFINE_integer("images", 64, "JPEGs in the folder.")
flags.DEFINE_integer("size", 416, "Training input size (px).")
flags.DEFINE_integer("batch", 16, "Images per batch.")
flags.DEFINE_integer("steps", 4, "Batches per timed window.")
flags.DEFINE_integer("repeats", 5, "Timed windows per figure (median).")
flags.DEFINE_list("workers", ["0", "2", "4"], "dataset.workers values, comma-separated.")
flags.DEFINE_enum("loader", "thread", ["thread", "grain"], "dataset.loader: threads or grain "
                  "worker processes.")
flags.DEFINE_list("sizes", [], "Several training sizes in one run (overrides --size).")


def write_folder(root: str, count: int, rng) -> None:
  """A VOC-layout folder of ``count`` 500x375 JPEGs with 1-5 'cat' boxes each."""
  images = {}
  for i in range(count):
    objects = []
    for _ in range(int(rng.integers(1, 6))):
      w, h = rng.integers(40, 300, 2)
      x0, y0 = rng.integers(1, 500 - w), rng.integers(1, 375 - h)
      objects.append(("cat", 0, (int(x0), int(y0), int(x0 + w), int(y0 + h))))
    images[f"{i:06d}"] = {"height": 375, "width": 500, "objects": objects}
  data_fixtures.write_voc(root, images, {"trainval": sorted(images), "test": sorted(images)})


def stream_rate(root: str, *, workers: int, size: int, batch: int, steps: int,
                repeats: int, loader: str = "thread") -> float:
  """Median images/s of the train stream over ``repeats`` windows of ``steps`` batches."""
  config = config_lib.load(os.path.join(REPO, "configs/synthetic.py:demo"))
  config.dataset.name, config.dataset.path = "voc_folder", root
  config.dataset.workers, config.input.image_size = workers, size
  config.dataset.loader = loader
  config.train.batch_size = batch
  dataset = pipeline.build_dataset(config, "train")
  stream = pipeline.train_stream(dataset, config, start_step=0, process_index=0,
                                 process_count=1)
  for _ in range(max(2, workers)):   # fill the pipeline
    next(stream)
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      next(stream)
    rates.append(steps * batch / (time.perf_counter() - start))
  stream.close()
  return statistics.median(rates)


def main(argv) -> None:
  """Writes the folder and prints the stream rate per ``--workers`` value."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  workers_list = [int(w) for w in FLAGS.workers]
  sizes = [int(x) for x in FLAGS.sizes] or [FLAGS.size]
  with tempfile.TemporaryDirectory() as root:
    write_folder(root, FLAGS.images, np.random.default_rng(0))
    print(f"voc_folder, {FLAGS.images} JPEGs 500x375, train stream (loader={FLAGS.loader}), "
          f"batch {FLAGS.batch}; median of {FLAGS.repeats} windows of {FLAGS.steps} batches; "
          f"{os.cpu_count()} CPUs")
    for size in sizes:
      base = None
      for workers in workers_list:
        rate = stream_rate(root, workers=workers, size=size, batch=FLAGS.batch,
                           steps=FLAGS.steps, repeats=FLAGS.repeats, loader=FLAGS.loader)
        base = base or rate
        per_core = rate / max(workers, 1)
        print(f"  {size} px, dataset.workers={workers:2d}: {rate:7.1f} images/s, "
              f"{per_core:6.1f} per worker ({rate / base:.2f}x workers={workers_list[0]})")


if __name__ == "__main__":
  app.run(main)
