"""Datasets by config name, and the host-side batch streams for training and eval.

A dataset is any object with the interface of ``data.detection.DetectionDataset``:
``batch(indices, *, image_size, augment_seeds)`` -> dict of NumPy arrays
(``image`` uint8 [B, S, S, 3], ``boxes`` float32 [B, M, 4] xyxy in [0, 1],
``labels`` int32 [B, M], ``mask``/``difficult`` bool [B, M], ``image_id`` [B],
``orig_hw`` [B, 2], ``replaced`` [B]), ``ground_truth(index)`` in original pixels,
``class_names``, ``category_ids``, ``num_examples`` (None: unbounded),
``boxes_wh(n, image_size= | scale=)`` and ``stats`` (skip/drop/truncation counters).

The training stream is a pure function of (seed, step): the global batch of
step s holds stream positions ``[s * B, (s + 1) * B)``, mapped to dataset
indices through a per-epoch permutation for finite datasets; process p takes
its contiguous slice, and each example's augmentation and the order of its GT
slots (``shuffle_gt_slots``) are seeded by (seed, position). Resuming at step s
therefore reproduces exactly the batches an uninterrupted run would have seen, on
any number of processes.
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import queue
import threading
from typing import Iterator

import grain.python as grain
import numpy as np
from absl import flags

from anchor_jax.data import augment as augment_lib
from anchor_jax.data import coco_json, synthetic, tfds_datasets, voc_folder

DATASETS = ("synthetic", "voc", "voc07", "coco", "brainwash", "voc_folder", "coco_json")
LOADERS = ("thread", "grain")   # dataset.loader: who prepares batches when dataset.workers > 0
_ENDLESS = 10 ** 12             # steps a stream can serve (the loop stops it at train.steps)


def build_dataset(config, split: str):
  """The dataset named by ``config.dataset.name`` for ``split`` ('train' | 'eval')."""
  d = config.dataset
  name = d.name
  if name == "synthetic":
    size = (config.input.eval_image_size or config.input.image_size) if split == "eval" \
        else config.input.image_size
    return synthetic.SyntheticDataset(
        preset=d.preset, image_size=size, max_boxes=d.max_boxes, seed=config.seed, split=split,
        num_classes=d.num_classes or None,
        num_examples=((d.eval_examples or 256) if split == "eval"
                      else (d.train_examples or None)))
  augment_config = augment_lib.AugmentConfig.from_config(config.augment) \
      if split == "train" else None
  limit = d.train_examples if split == "train" else d.eval_examples
  common = dict(path=d.path, max_boxes=d.max_boxes, augment_config=augment_config)
  if name == "voc_folder":
    class_names = list(d.class_names) or None
    if split == "eval" and class_names is None:  # number classes as the train split does
      class_names = voc_folder.VocFolderDataset(
          split=d.train_split, **{**common, "augment_config": None}).class_names
    return _first(voc_folder.VocFolderDataset(
        split=d.train_split if split == "train" else d.eval_split, class_names=class_names,
        **common), limit)
  if name == "coco_json":
    return _first(coco_json.CocoJsonDataset(
        split=d.train_split if split == "train" else d.eval_split,
        image_dir=d.image_dir or None, **common), limit)
  if name in ("voc", "voc07", "coco", "brainwash"):
    cls = {"voc": tfds_datasets.VocDataset, "voc07": tfds_datasets.Voc07Dataset,
           "coco": tfds_datasets.CocoDataset,
           "brainwash": tfds_datasets.BrainwashDataset}[name]
    return _first(cls(split=split, **common), limit)
  raise ValueError(f"Unknown dataset.name={name!r}; choose one of {DATASETS}.")


def _first(dataset, limit: int):
  """``dataset`` cut to its first ``limit`` examples (0: all): the ``runlocal`` configs'
  quick look at a real dataset."""
  if limit:
    dataset.num_examples = min(dataset.num_examples, int(limit))
  return dataset


def train_box_shapes(dataset, config, num_images: int | None = None) -> np.ndarray:
  """float32 [N, 2] (w, h) in training-input pixels of the GT boxes of the first
  ``num_images`` training images (default ``anchors.kmeans_images``): what k-means fits and
  the figures show. A plain resize of the whole image to ``input.image_size`` maps them,
  which is also the mean of darknet's jittered crops; native-scale crops
  (``augment.crop_px``) scale every box by ``image_size / crop_px`` instead."""
  num_images = num_images or config.anchors.kmeans_images
  crop = config.augment.get("crop_px", 0.0) if config.dataset.name != "synthetic" else 0.0
  if crop:
    return dataset.boxes_wh(num_images, scale=config.input.image_size / crop)
  return dataset.boxes_wh(num_images, image_size=config.input.image_size)


def train_image_size(step: int, config) -> int:
  """The training input size at ``step``: ``input.image_size``, or with multi-scale one
  of ``input.multiscale_sizes``, switched every ``input.multiscale_every`` steps."""
  sizes = tuple(config.input.multiscale_sizes)
  if not sizes:
    return config.input.image_size
  return augment_lib.multiscale_size(step, sizes=sizes, every=config.input.multiscale_every,
                                     seed=config.seed)


def augment_seed(seed: int, position: int) -> int:
  """A per-example augmentation seed from (run seed, stream position): a fresh
  random draw for every epoch, reproducible on resume."""
  return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


GT_SLOT_KEYS = ("boxes", "labels", "mask", "difficult")   # per-GT-slot arrays of a batch
_SHUFFLE_STREAM = 1   # keeps the slot shuffle's draws apart from augment_seed's


def shuffle_gt_slots(batch: dict, *, seed: int, positions) -> dict:
  """Each example's GT slots in a random order drawn from (seed, stream position).

  Under hard assignment, when two GTs of an image pick the same cell and anchor the later
  slot wins (darknet's rule); darknet shuffles each image's boxes at load time
  (``data.c: randomize_boxes``) so that the winner is random. Datasets write boxes in a
  fixed order (the synthetic data largest first, files as annotated), which would always
  favour one kind of box. Only the masked-in slots move (padding stays where it is); the
  order is a pure function of (seed, position), so a resumed run sees the same batches.
  ``batch``: [B, M, ...] arrays under ``GT_SLOT_KEYS``; ``positions``: [B] stream positions.
  """
  out = dict(batch)
  for key in GT_SLOT_KEYS:
    out[key] = np.array(batch[key])
  for row, position in enumerate(positions):
    slots = np.flatnonzero(out["mask"][row])
    order = np.random.default_rng([seed, int(position), _SHUFFLE_STREAM]).permutation(slots)
    for key in GT_SLOT_KEYS:
      out[key][row, slots] = batch[key][row, order]
  return out


def position_to_index(position: int, *, num_examples: int | None, seed: int) -> int:
  """Maps a stream position to a dataset index: identity for unbounded data,
  otherwise a fresh permutation per epoch (deterministic by seed and epoch)."""
  if num_examples is None:
    return position
  epoch, offset = divmod(position, num_examples)
  return int(_epoch_permutation(num_examples, seed, epoch)[offset])


@functools.lru_cache(maxsize=4)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def local_positions(step: int, *, global_batch: int, process_index: int,
                    process_count: int) -> np.ndarray:
  """Stream positions of this process's contiguous share of the global batch of ``step``."""
  per_process = global_batch // process_count
  start = step * global_batch + process_index * per_process
  return np.arange(start, start + per_process)


def train_stream(dataset, config, *, start_step: int, process_index: int,
                 process_count: int) -> Iterator[tuple[int, dict]]:
  """Yields ``(step, local batch)`` from ``start_step`` on, prepared ahead of the loop.

  The batch of a step depends only on (seed, step, process), so a resumed run sees
  exactly the batches the uninterrupted run would have seen, whoever prepares them:
  ``dataset.loader=thread`` (default) with ``dataset.workers`` > 1 threads preparing
  consecutive steps at once (decode and augmentation release the GIL only in part), or
  ``dataset.loader=grain`` with ``dataset.workers`` worker processes (grain), which scales
  with cores. The batches and their order are the same in every case.
  """
  global_batch = config.train.batch_size
  if global_batch % process_count:
    raise ValueError(f"train.batch_size={global_batch} must divide by the "
                     f"{process_count} processes.")
  make = _BatchMaker(dataset, config, process_index=process_index,
                     process_count=process_count)
  workers, loader = config.dataset.workers, config.dataset.get("loader", "thread")
  if loader == "grain" and workers > 0:
    return _prefetch(_grain_batches(make, dataset, start_step, workers), config.dataset.prefetch)
  steps = _count(start_step)
  batches = _ordered_map(make, steps, workers) if workers > 1 else map(make, steps)
  return _prefetch(((step, batch) for step, batch, _ in batches), config.dataset.prefetch)


class _BatchMaker:
  """``step -> (step, local batch, counter deltas)``: a pure function of (seed, step,
  process). A plain object, so that grain can send it to its worker processes."""

  def __init__(self, dataset, config, *, process_index: int, process_count: int):
    self.dataset, self.config = dataset, config
    self.seed, self.global_batch = config.seed, config.train.batch_size
    self.process_index, self.process_count = process_index, process_count
    self.num_examples = getattr(dataset, "num_examples", None)

  def __call__(self, step: int):
    positions = local_positions(step, global_batch=self.global_batch,
                                process_index=self.process_index,
                                process_count=self.process_count)
    indices = [position_to_index(int(p), num_examples=self.num_examples, seed=self.seed)
               for p in positions]
    before = dict(getattr(self.dataset, "stats", {}))
    batch = self.dataset.batch(indices, image_size=train_image_size(step, self.config),
                               augment_seeds=[augment_seed(self.seed, int(p)) for p in positions])
    deltas = {k: v - before.get(k, 0) for k, v in getattr(self.dataset, "stats", {}).items()}
    return step, shuffle_gt_slots(batch, seed=self.seed, positions=positions), deltas


def _grain_batches(make: _BatchMaker, dataset, start_step: int, workers: int):
  """The steps from ``start_step`` on, prepared by ``workers`` grain worker processes in
  step order (grain's MapDataset + mp_prefetch: deterministic, element order kept). Each
  worker holds its own copy of the dataset, so the counters of the main process's dataset
  are kept up to date by adding each batch's deltas (an image counted once per process:
  a bad image met by several workers is counted by each)."""
  if not flags.FLAGS.is_parsed():   # grain reads its own absl flags (defaults suffice)
    flags.FLAGS.mark_as_parsed()
  # One thread per worker process: the processes are the parallelism, and a batch's
  # counter deltas are then its own (grain's default 16 reader threads share a dataset).
  stream = (grain.MapDataset.range(start_step, start_step + _ENDLESS).map(make)
            .to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
            .mp_prefetch(grain.MultiprocessingOptions(num_workers=workers)))
  iterator = iter(stream)
  try:
    for step, batch, deltas in iterator:
      batch = {k: np.array(v) for k, v in batch.items()}   # out of grain's shared memory
      if hasattr(dataset, "stats"):
        for key, delta in deltas.items():
          dataset.stats[key] = dataset.stats.get(key, 0) + delta
      yield step, batch
  finally:
    iterator.close()   # stops the workers and frees their shared memory now


def eval_batches(dataset, *, batch_size: int, image_size: int) -> Iterator[dict]:
  """The whole eval split in order, resized to ``image_size``; the last batch is padded
  by repeating its final example. ``valid`` [B] marks real rows (not padding, and not a
  stand-in for an unreadable image); ``index`` [B] is the dataset index."""
  n = len(dataset)
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    valid = np.ones(batch_size, bool)
    valid[len(idx):] = False
    idx = np.concatenate([idx, np.full(batch_size - len(idx), idx[-1])])
    batch = dataset.batch(idx, image_size=image_size)
    batch["valid"] = valid & ~batch["replaced"]
    batch["index"] = idx
    yield batch


def _count(start):
  while True:
    yield start
    start += 1


def _ordered_map(fn, items, workers: int):
  """``map(fn, items)`` computed by ``workers`` threads, at most ``workers`` items ahead
  of the consumer, in input order. ``items`` may be endless; closing the generator
  lets the calls in flight finish and starts no more."""
  with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="batch") as pool:
    pending: collections.deque = collections.deque()
    try:
      for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= workers:
          yield pending.popleft().result()
      while pending:
        yield pending.popleft().result()
    finally:
      for future in pending:
        future.cancel()


def _prefetch(iterator, size: int):
  """Runs ``iterator`` in a daemon thread, ``size`` items ahead. Errors re-raise here."""
  if size <= 0:
    yield from iterator
    return
  q: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()
  done = object()

  def work():
    try:
      for item in iterator:
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if stop.is_set():
          return
    except BaseException as e:  # surfaced in the consumer
      q.put(e)
    q.put(done)

  thread = threading.Thread(target=work, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is done:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
