"""Throughput of the training input path: JPEG decode + darknet augmentation.

Writes ``--files`` random 500x375 JPEGs (smooth colour fields plus noise, ~3 boxes each)
to a temp dir, then times batches of ``--batch`` images per output size: decode only
(``image_io.decode_rgb``), the stages of ``augment`` (crop+resize, HSV), augment from
decoded arrays, the full path (decode, then ``augment``) on 1 thread (also as CPU time)
and on ``--workers`` threads (a ``ThreadPoolExecutor`` map), and the eval resize
(``image_io.resize_square`` of decoded arrays). Median over ``--repeats`` batches.

  python experiments/benchmarks/bench_input.py
  python experiments/benchmarks/bench_input.py --sizes=416 --workers=2,4 --repeats=9

``--step_rate`` is the training rate to compare with (images/s, two values: low,high;
default: the tiny model on this 2-core CPU at up to ``--step_size`` = 128 px, 16 images
per 0.12-0.27 s step). For larger sizes it is scaled by (step_size / size)^2, the model's
FLOPs (measured here under load: 48 images/s at 128 px, 3.5 at 416, i.e. 13.7x for 10.6x
the pixels).
"""
import concurrent.futures
import os
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image

from anchor_jax.data import augment as aug
from anchor_jax.data import image_io

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["128", "320", "416", "608"], "Output sizes (px), comma-separated.")
flags.DEFINE_integer("batch", 16, "Images per timed batch.")
flags.DEFINE_integer("files", 16, "Distinct JPEGs written (the batch cycles through them).")
flags.DEFINE_integer("repeats", 7, "Timed batches per figure (median).")
flags.DEFINE_list("workers", ["2"], "Thread counts of the threaded column, comma-separated.")
flags.DEFINE_integer("quality", 90, "JPEG quality of the written files.")
flags.DEFINE_list("step_rate", [str(16 / 0.27), str(16 / 0.12)],
                  "Training rate to compare with, images/s: low,high.")
flags.DEFINE_integer("step_size", 128, "Input size (px) at which --step_rate holds.")


def write_jpegs(directory, count, width, height, quality, rng):
  """``count`` JPEGs of plausible size and entropy; returns their paths and boxes."""
  items = []
  for i in range(count):
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    noisy = np.clip(field + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8)
    path = os.path.join(directory, f"{i:03d}.jpg")
    Image.fromarray(noisy).save(path, "JPEG", quality=quality)
    n = int(rng.integers(1, 6))                                    # ~3 boxes
    xy = rng.uniform(0, [width, height], (n, 2))
    wh = rng.uniform(0.05, 0.6, (n, 2)) * [width, height]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], -1)
    items.append((path, boxes, rng.integers(0, 20, n)))
  return items


def median_rate(fn, batch, repeats, clock=time.perf_counter):
  """Images per second of ``fn()`` over a batch, median of ``repeats`` (after a warm-up)."""
  fn()
  times = []
  for _ in range(repeats):
    t0 = clock()
    fn()
    times.append(clock() - t0)
  return batch / float(np.median(times))


def decode_augment(item, seed, *, size, cfg):
  """The full training path of one file: decode, then ``augment``."""
  path, boxes, labels = item
  return aug.augment(image_io.decode_rgb(path), boxes, labels, out_size=size, seed=seed,
                     cfg=cfg)


def main(argv):
  """Writes the JPEGs and prints the images/s table."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  sizes = [int(x) for x in FLAGS.sizes]
  workers = [int(x) for x in FLAGS.workers]
  step_rate = [float(x) for x in FLAGS.step_rate]
  if len(step_rate) != 2:
    raise app.UsageError(f"--step_rate needs two values (low,high), got {FLAGS.step_rate}")
  batch, repeats, step_size = FLAGS.batch, FLAGS.repeats, FLAGS.step_size
  rng = np.random.default_rng(0)
  cfg = aug.AugmentConfig()
  with tempfile.TemporaryDirectory() as tmp:
    files = write_jpegs(tmp, FLAGS.files, 500, 375, FLAGS.quality, rng)
    items = [files[i % len(files)] for i in range(batch)]
    kb = np.mean([os.path.getsize(p) for p, _, _ in files]) / 1024
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; batch {batch} of "
          f"500x375 JPEGs (~{kb:.0f} KiB, q{FLAGS.quality}); images/s, median of {repeats}")
    decoded = [(image_io.decode_rgb(p), b, labels) for p, b, labels in items]
    seeds = [[0, i] for i in range(batch)]
    decode = median_rate(lambda: [image_io.decode_rgb(p) for p, _, _ in items], batch, repeats)
    print(f"decode only: {decode:.0f}")
    header = (f"{'size':>5} {'crop+rsz':>9} {'hsv':>7} {'augment':>8} {'dec+aug':>8} "
              f"{'(cpu)':>7} " + " ".join(f"{f'{w} thr':>7}" for w in workers)
              + f" {'eval':>7} {'x step':>10}")
    print(header)
    for size in sizes:
      params = [aug.sample_params(np.random.default_rng(s), 500, 375, cfg) for s in seeds]
      pils = [Image.fromarray(x) for x, _, _ in decoded]
      crop = median_rate(lambda: [aug.crop_resize(im, p.window, size, cfg)
                                  for im, p in zip(pils, params)], batch, repeats)
      resized = [aug.crop_resize(im, p.window, size, cfg) for im, p in zip(pils, params)]
      hsv = median_rate(lambda: [aug.distort_hsv(x, hue=p.hue, saturation=p.saturation,
                                                 exposure=p.exposure)
                                 for x, p in zip(resized, params)], batch, repeats)
      arrays = median_rate(lambda: [aug.augment(x, b, labels, out_size=size, seed=s, cfg=cfg)
                                    for (x, b, labels), s in zip(decoded, seeds)], batch, repeats)

      def serial_batch():
        """The full path of the batch on this thread."""
        return [decode_augment(item, s, size=size, cfg=cfg) for item, s in zip(items, seeds)]

      def threaded_batch(pool):
        """The full path of the batch mapped over ``pool``'s threads."""
        return list(pool.map(lambda item, s: decode_augment(item, s, size=size, cfg=cfg),
                             items, seeds))
      serial = median_rate(serial_batch, batch, repeats)
      cpu = median_rate(serial_batch, batch, repeats, clock=time.process_time)
      threaded = []
      for w in workers:
        with concurrent.futures.ThreadPoolExecutor(max_workers=w) as pool:
          threaded.append(median_rate(lambda: threaded_batch(pool), batch, repeats))
      evals = median_rate(lambda: [image_io.resize_square(x, size) for x, _, _ in decoded],
                          batch, repeats)
      flops = max(1.0, (size / step_size) ** 2)
      lo, hi = serial * flops / step_rate[1], serial * flops / step_rate[0]
      print(f"{size:>5} {crop:>9.0f} {hsv:>7.0f} {arrays:>8.0f} {serial:>8.0f} {cpu:>7.0f} "
            + " ".join(f"{t:>7.0f}" for t in threaded)
            + f" {evals:>7.0f} {lo:>4.1f}-{hi:<4.1f}")
    print(f"x step: 1-thread dec+aug rate / training rate ({step_rate[0]:.0f}-"
          f"{step_rate[1]:.0f} images/s at <= {step_size} px, scaled by pixels "
          f"above); target >= 2")


if __name__ == "__main__":
  app.run(main)
