"""Throughput of the training input path: JPEG decode + darknet augmentation.

Writes ``--files`` random 500x375 JPEGs (smooth colour fields plus noise, ~3 boxes each)
to a temp dir, then times batches of ``--batch`` images per output size: decode only
(``image_io.decode_image``), the stages of ``augment`` (crop+resize, HSV), augment from
decoded arrays, the full path (decode, then ``augment``) on 1 thread (also as CPU time)
and on ``--workers`` threads (a ``ThreadPoolExecutor`` map), and the eval resize
(``image_io.resize_square`` of decoded arrays). Median over ``--repeats`` batches.

Then, per output size, where one training example's time goes (median ms per image, each
stage timed alone on the batch): JPEG decode (``image_io.decode_image``), drawing the
parameters, the crop + resize to planes (``augment._bands``), the final write into the
batch row with the flip folded in (``_interleave``: all an example pays when the colour
is left alone), the HSV distortion including that write (``_distort_planes``), the box
transform, the whole ``augment``, and the batch code around it (``DetectionDataset.batch``
minus decode and augment: reading annotations, padding, counters; plus the per-example
seeds and the GT-slot shuffle of ``pipeline._BatchMaker``). Grain's own overhead is what
``bench_stream.py --loader=grain`` adds on top.

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
from anchor_jax.data import detection, image_io, pipeline

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
  return aug.augment(image_io.decode_image(path), boxes, labels, out_size=size, seed=seed,
                     cfg=cfg)


class _Files(detection.DetectionDataset):
  """The written JPEGs as a detection dataset (what ``voc_folder`` gives, minus the XML)."""

  def __init__(self, items, cfg):
    super().__init__(class_names=[str(i) for i in range(20)], category_ids=list(range(20)),
                     max_boxes=8, augment_config=cfg)
    self.items, self.num_examples = items, len(items)

  def _annotation(self, index):
    _, boxes, labels = self.items[index]
    return detection.Annotation(boxes, labels.astype(np.int32), np.zeros(len(labels), bool),
                                375, 500, index, f"{index:03d}.jpg")

  def _image_path(self, index):
    return self.items[index][0]


def median_ms(fn, batch, repeats):
  """Median ms per image of ``fn()`` over a batch of ``batch`` images."""
  return 1e3 / median_rate(fn, batch, repeats)


def stage_table(items, sizes, cfg, repeats):
  """Prints the median ms per image of each stage of a training example, per size."""
  batch = len(items)
  seeds = [pipeline.augment_seed(0, i) for i in range(batch)]
  pils = [image_io.decode_image(p) for p, _, _ in items]
  names = ("decode", "params", "crop+rsz", "flip+wrt", "hsv+wrt", "boxes", "augment",
           "batch", "seed+gt", "total")
  print("ms per image (median):\n" + f"{'size':>5} " + " ".join(f"{n:>8}" for n in names))
  decode = median_ms(lambda: [image_io.decode_image(p) for p, _, _ in items], batch, repeats)
  params = [aug.sample_params(np.random.default_rng(s), 500, 375, cfg) for s in seeds]
  draw = median_ms(lambda: [aug.sample_params(np.random.default_rng(s), 500, 375, cfg)
                            for s in seeds], batch, repeats)
  dataset = _Files(items, cfg)
  for size in sizes:
    out = np.empty((size, size, 3), np.uint8)
    crop = median_ms(lambda: [aug._bands(im, p.window, size, cfg)
                              for im, p in zip(pils, params)], batch, repeats)
    planes = [aug._bands(im, p.window, size, cfg) for im, p in zip(pils, params)]
    flip = median_ms(lambda: [aug._interleave(x, out[:, ::-1]) for x in planes], batch, repeats)
    hsv = median_ms(lambda: [aug._distort_planes(x, out, hue=p.hue, saturation=p.saturation,
                                                 exposure=p.exposure)
                             for x, p in zip(planes, params)], batch, repeats)
    boxes = median_ms(lambda: [aug.flip_boxes(aug.transform_boxes(
        b, p.window, (500, 375), size, min_box_px=cfg.min_box_px,
        min_visible=cfg.min_visible)[0], size) for (_, b, _), p in zip(items, params)],
        batch, repeats)
    whole = median_ms(lambda: [aug.augment(im, b, labels, out_size=size, seed=s, cfg=cfg, out=out)
                               for im, (_, b, labels), s in zip(pils, items, seeds)],
                      batch, repeats)
    indices, positions = list(range(batch)), np.arange(batch)
    rows = dataset.batch(indices, image_size=size, augment_seeds=seeds)
    total = median_ms(lambda: dataset.batch(indices, image_size=size, augment_seeds=seeds),
                      batch, repeats)
    extra = median_ms(lambda: (
        [pipeline.augment_seed(0, int(p)) for p in positions],
        pipeline.shuffle_gt_slots(rows, seed=0, positions=positions)), batch, repeats)
    cells = (decode, draw, crop, flip, hsv, boxes, whole, total - decode - whole, extra,
             total + extra)
    print(f"{size:>5} " + " ".join(f"{c:>8.2f}" for c in cells))
  print("flip+wrt: the batch-row write, mirrored; hsv+wrt includes that write. augment: "
        "params to boxes, from a decoded image.\nbatch: DetectionDataset.batch minus decode "
        "and augment; seed+gt: the step maker's seeds and GT-slot shuffle; total: both.")


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
    decode = median_rate(lambda: [image_io.decode_image(p) for p, _, _ in items], batch, repeats)
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
    stage_table(items, sizes, cfg, repeats)


if __name__ == "__main__":
  app.run(main)
