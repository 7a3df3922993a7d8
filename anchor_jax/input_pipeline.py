"""Datasets by config name, and the host-side batch streams for training and eval.

A dataset here is any object with ``batch(indices) -> dict`` of NumPy arrays
(``image`` uint8 [B, S, S, 3], ``boxes`` float32 [B, M, 4] xyxy in [0, 1],
``labels`` int32 [B, M], ``mask`` bool [B, M], ``image_id`` int32 [B]),
``class_names``, ``num_examples`` (None: unbounded) and ``boxes_wh(n)``.

The training stream is a pure function of (seed, step): the global batch of
step s holds dataset positions ``[s * B, (s + 1) * B)`` (through a per-epoch
permutation for finite datasets) and process p takes its contiguous slice.
Resuming at step s therefore reproduces exactly the batches an uninterrupted
run would have seen, on any number of processes.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np

from anchor_jax.data import synthetic

DATASETS = ("synthetic", "voc", "coco", "brainwash", "voc_folder", "coco_json")


def build_dataset(config, split: str):
  """The dataset named by ``config.dataset.name`` for ``split`` ('train' | 'eval')."""
  name = config.dataset.name
  if name == "synthetic":
    size = (config.input.eval_image_size or config.input.image_size) if split == "eval" \
        else config.input.image_size
    return synthetic.SyntheticDataset(
        preset=config.dataset.preset, image_size=size,
        max_boxes=config.dataset.max_boxes, seed=config.seed, split=split,
        num_classes=config.dataset.num_classes or None,
        num_examples=((config.dataset.eval_examples or 256) if split == "eval"
                      else (config.dataset.train_examples or None)))
  if name in DATASETS:
    raise NotImplementedError(
        f"dataset.name={name!r} has no reader in this version of anchor_jax; "
        "use dataset.name=synthetic (readers for VOC/COCO/Brainwash and your own "
        "VOC-layout or COCO-JSON folders are tracked as the 'Real datasets' issue).")
  raise ValueError(f"Unknown dataset.name={name!r}; choose one of {DATASETS}.")


def position_to_index(position: int, *, num_examples: int | None, seed: int) -> int:
  """Maps a stream position to a dataset index: identity for unbounded data,
  otherwise a fresh permutation per epoch (deterministic by seed and epoch)."""
  if num_examples is None:
    return position
  epoch, offset = divmod(position, num_examples)
  return int(np.random.default_rng([seed, epoch]).permutation(num_examples)[offset])


def local_indices(step: int, *, global_batch: int, process_index: int, process_count: int,
                  num_examples: int | None, seed: int) -> np.ndarray:
  """Dataset indices of this process's share of the global batch of ``step``."""
  per_process = global_batch // process_count
  start = step * global_batch + process_index * per_process
  return np.asarray([position_to_index(p, num_examples=num_examples, seed=seed)
                     for p in range(start, start + per_process)])


def train_stream(dataset, *, start_step: int, global_batch: int, process_index: int,
                 process_count: int, seed: int, prefetch: int = 2) -> Iterator[tuple[int, dict]]:
  """Yields ``(step, local batch)`` from ``start_step`` on, prepared by a thread."""
  if global_batch % process_count:
    raise ValueError(f"train.batch_size={global_batch} must divide by the "
                     f"{process_count} processes.")
  num_examples = getattr(dataset, "num_examples", None)

  def make(step):
    return step, dataset.batch(local_indices(
        step, global_batch=global_batch, process_index=process_index,
        process_count=process_count, num_examples=num_examples, seed=seed))
  return _prefetch(map(make, _count(start_step)), prefetch)


def eval_batches(dataset, *, batch_size: int) -> Iterator[dict]:
  """The whole eval split in order; the last batch is padded by repeating its
  final example, with ``valid`` [B] marking real rows."""
  n = len(dataset)
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    valid = np.ones(batch_size, bool)
    valid[len(idx):] = False
    idx = np.concatenate([idx, np.full(batch_size - len(idx), idx[-1])])
    batch = dataset.batch(idx)
    batch["valid"] = valid
    yield batch


def _count(start):
  while True:
    yield start
    start += 1


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
