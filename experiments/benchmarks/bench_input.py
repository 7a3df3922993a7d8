"""Throughput of the training input path: JPEG decode + darknet augmentation.

Writes ``--files`` random 500x375 JPEGs (smooth colour fields plus noise, ~3 boxes each)
to a temp dir, then times batches of ``--batch`` images per output size: decode only,
the stages of ``augment`` (crop+resize, HSV), augment from decoded arrays, the full
path (decode inside ``augment``) on 1 thread (also as CPU time, and without JPEG
draft decoding) and on ``--workers`` threads (``augment_batch``), and ``eval_resize``. Median over ``--repeats`` batches.

  python experiments/benchmarks/bench_input.py
  python experiments/benchmarks/bench_input.py --sizes 416 --workers 2 4 --repeats 9

``--step-rate`` is the training rate to compare with (images/s; default: the tiny model
on this 2-core CPU at up to ``--step-size`` = 128 px, 16 images per 0.12-0.27 s step).
For larger sizes it is scaled by (step-size / size)^2, the model's FLOPs (measured
here under load: 48 images/s at 128 px, 3.5 at 416, i.e. 13.7x for 10.6x the pixels).
"""
import argparse
import dataclasses
import os
import tempfile
import time

import numpy as np
from PIL import Image

from anchor_jax.data import augment as aug


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


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--sizes", type=int, nargs="+", default=[128, 320, 416, 608])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--files", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--workers", type=int, nargs="+", default=[2])
  parser.add_argument("--quality", type=int, default=90)
  parser.add_argument("--step-rate", type=float, nargs=2, default=[16 / 0.27, 16 / 0.12])
  parser.add_argument("--step-size", type=int, default=128)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  cfg = aug.AugmentConfig()
  with tempfile.TemporaryDirectory() as tmp:
    files = write_jpegs(tmp, args.files, 500, 375, args.quality, rng)
    items = [files[i % len(files)] for i in range(args.batch)]
    kb = np.mean([os.path.getsize(p) for p, _, _ in files]) / 1024
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; batch {args.batch} of "
          f"500x375 JPEGs (~{kb:.0f} KiB, q{args.quality}); images/s, median of {args.repeats}")
    decoded = [(np.asarray(aug.to_rgb_image(p)), b, l) for p, b, l in items]
    seeds = [[0, i] for i in range(args.batch)]
    decode = median_rate(lambda: [np.asarray(aug.to_rgb_image(p)) for p, _, _ in items],
                         args.batch, args.repeats)
    print(f"decode only: {decode:.0f}")
    header = (f"{'size':>5} {'crop+rsz':>9} {'hsv':>7} {'augment':>8} {'dec+aug':>8} "
              f"{'(cpu)':>7} {'nodraft':>7} " + " ".join(f"{f'{w} thr':>7}" for w in args.workers)
              + f" {'eval':>7} {'x step':>10}")
    print(header)
    for size in args.sizes:
      params = [aug.sample_params(np.random.default_rng(s), 500, 375, cfg) for s in seeds]
      pils = [aug.to_rgb_image(x) for x, _, _ in decoded]
      crop = median_rate(lambda: [aug.crop_resize(im, p.window, size, cfg)
                                  for im, p in zip(pils, params)], args.batch, args.repeats)
      resized = [aug.crop_resize(im, p.window, size, cfg) for im, p in zip(pils, params)]
      hsv = median_rate(lambda: [aug.distort_hsv(x, hue=p.hue, saturation=p.saturation,
                                                 exposure=p.exposure)
                                 for x, p in zip(resized, params)], args.batch, args.repeats)
      arrays = median_rate(lambda: aug.augment_batch(decoded, seeds, out_size=size, cfg=cfg),
                           args.batch, args.repeats)

      def full(workers=0):
        return aug.augment_batch(items, seeds, out_size=size, cfg=cfg, num_workers=workers)
      serial = median_rate(full, args.batch, args.repeats)
      no_draft = median_rate(lambda: aug.augment_batch(
          items, seeds, out_size=size, cfg=dataclasses.replace(cfg, jpeg_draft=False)),
          args.batch, args.repeats)
      cpu = median_rate(full, args.batch, args.repeats, clock=time.process_time)
      threaded = [median_rate(lambda w=w: full(w), args.batch, args.repeats)
                  for w in args.workers]
      evals = median_rate(lambda: [aug.eval_resize(p, size) for p, _, _ in items],
                          args.batch, args.repeats)
      flops = max(1.0, (size / args.step_size) ** 2)
      lo, hi = serial * flops / args.step_rate[1], serial * flops / args.step_rate[0]
      print(f"{size:>5} {crop:>9.0f} {hsv:>7.0f} {arrays:>8.0f} {serial:>8.0f} {cpu:>7.0f} {no_draft:>7.0f} "
            + " ".join(f"{t:>7.0f}" for t in threaded)
            + f" {evals:>7.0f} {lo:>4.1f}-{hi:<4.1f}")
    print(f"x step: 1-thread dec+aug rate / training rate ({args.step_rate[0]:.0f}-"
          f"{args.step_rate[1]:.0f} images/s at <= {args.step_size} px, scaled by pixels "
          f"above); target >= 2")


if __name__ == "__main__":
  main()
