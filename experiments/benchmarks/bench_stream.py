"""Throughput of the whole training stream (read + decode + augment + batch) vs ``dataset.workers``.

Writes a VOC-layout folder of ``--images`` JPEGs (500 x 375, ~3 boxes each) to a temp dir,
builds the ``voc_folder`` dataset and times ``input_pipeline.train_stream`` at
``--size`` px with batches of ``--batch`` images, for each ``--workers`` value (0 = the
prefetch thread alone). Prints the median images/s over ``--repeats`` timed windows of
``--steps`` batches each, and the ratio to workers=0 measured in the same run.

  python experiments/benchmarks/bench_stream.py
  python experiments/benchmarks/bench_stream.py --size 416 --workers 0 2 4 8
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from anchor_jax import input_pipeline  # noqa: E402
from configs import synthetic  # noqa: E402
from tests import data_fixtures  # noqa: E402  (writes the same on-disk format as the tests)


def write_folder(root: str, count: int, rng) -> None:
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
                repeats: int) -> float:
  config = synthetic.get_config("demo")
  config.dataset.name, config.dataset.path = "voc_folder", root
  config.dataset.workers, config.input.image_size = workers, size
  config.train.batch_size = batch
  dataset = input_pipeline.build_dataset(config, "train")
  stream = input_pipeline.train_stream(dataset, config, start_step=0, process_index=0,
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


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--images", type=int, default=64)
  p.add_argument("--size", type=int, default=416)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--steps", type=int, default=4, help="batches per timed window")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
  args = p.parse_args()
  with tempfile.TemporaryDirectory() as root:
    write_folder(root, args.images, np.random.default_rng(0))
    print(f"voc_folder, {args.images} JPEGs 500x375, train stream at {args.size} px, "
          f"batch {args.batch}; median of {args.repeats} windows of {args.steps} batches; "
          f"{os.cpu_count()} CPUs")
    base = None
    for workers in args.workers:
      rate = stream_rate(root, workers=workers, size=args.size, batch=args.batch,
                         steps=args.steps, repeats=args.repeats)
      base = base or rate
      print(f"  dataset.workers={workers:2d}: {rate:7.1f} images/s  ({rate / base:.2f}x workers="
            f"{args.workers[0]})")


if __name__ == "__main__":
  main()
