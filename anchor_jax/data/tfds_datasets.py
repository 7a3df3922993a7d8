"""Prepared TFDS datasets read by random access: VOC 07+12 (``voc``), COCO 2017 (``coco``),
Brainwash (``brainwash``).

Data are read from ``array_record`` files through ``builder.as_data_source`` on a
read-only builder made from the prepared folder (``tfds.builder_from_directory``), so
reading imports neither TensorFlow nor the builder code, and any index is one seek away
(training resumes exactly). Images come back as their stored bytes
(``tfds.decode.SkipDecoding``) and are decoded with PIL, like the folder datasets. Data
are prepared once by ``python -m anchor_jax.prepare`` (VOC and COCO need internet,
Brainwash a manual download); an unprepared dataset raises ``DataNotFoundError`` saying
what to run.

Splits (``split`` = 'train' | 'eval', or a name below):
* ``voc``: train = voc/2007 train+validation + voc/2012 train+validation (07+12
  trainval, 16,551 images); eval = voc/2007 test (4,952). Difficult flags kept.
* ``voc07``: train = voc/2007 train+validation alone (07 trainval, 5,011 images); eval =
  voc/2007 test (the paper's "VOC 07" rows, e.g. Table 7's Faster R-CNN).
* ``coco``: train = coco/2017 train; eval = coco/2017 validation. TFDS labels are
  contiguous indices into the category names of the JSON it was built from; TFDS keeps
  only the names, which ``coco_categories`` maps back to the official ids
  (``category_ids``). ``is_crowd`` boxes are *difficult*; ``area`` is kept.
* ``brainwash``: train / validation / test of our builder; eval = test.

Boxes: TFDS stores ``[ymin, xmin, ymax, xmax]`` / image size in float32; pixel boxes are
those times the size read from the image header, rounded to ``PIXEL_DECIMALS`` (undoing
the float32 error: VOC's corners are integers, COCO's have two decimals). Box cleaning
is counted once per example, the first time it is read. ``image_id`` is the original
COCO image id for ``coco`` and the index in the split otherwise.
"""
from __future__ import annotations

import os
import re

import numpy as np

from anchor_jax.data import brainwash, coco_categories, detection, image_io

PIXEL_DECIMALS = 3

_VOC_TRAIN = (("voc/2007", "train"), ("voc/2007", "validation"),
              ("voc/2012", "train"), ("voc/2012", "validation"))
# dataset.name -> split -> (TFDS dataset, TFDS split) parts, concatenated in this order.
PARTS = {
    "voc": {"train": _VOC_TRAIN, "eval": (("voc/2007", "test"),),
            "test": (("voc/2007", "test"),)},
    "voc07": {"train": _VOC_TRAIN[:2], "eval": (("voc/2007", "test"),),
              "test": (("voc/2007", "test"),)},
    "coco": {"train": (("coco/2017", "train"),), "eval": (("coco/2017", "validation"),),
             "validation": (("coco/2017", "validation"),)},
    "brainwash": {"train": (("brainwash", "train"),), "eval": (("brainwash", "test"),),
                  "validation": (("brainwash", "validation"),), "test": (("brainwash", "test"),)},
}


def resolve_data_dir(path) -> str:
  """``dataset.path``, else ``$TFDS_DATA_DIR``, else TFDS's default ``~/tensorflow_datasets``."""
  path = os.fspath(path or "") or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  return os.path.abspath(os.path.expanduser(path))


def prepare_command(dataset: str, data_dir: str) -> str:
  return f"python -m anchor_jax.prepare --dataset={dataset} --data_dir={data_dir}"


def prepared_dir(data_dir: str, tfds_name: str) -> str | None:
  """``<data_dir>/<name>/<config>/<version>`` of the newest complete preparation, or None."""
  parent = os.path.join(data_dir, *tfds_name.split("/"))
  if not os.path.isdir(parent):
    return None
  versions = [v for v in os.listdir(parent) if re.fullmatch(r"\d+\.\d+\.\d+", v)
              and os.path.isfile(os.path.join(parent, v, "dataset_info.json"))]
  if not versions:
    return None
  return os.path.join(parent, max(versions, key=lambda v: tuple(map(int, v.split(".")))))


def _not_prepared(dataset, tfds_name, data_dir, why, *, how_to_get=True):
  """DataNotFoundError: what is wrong, where, and the command (and download) that fixes it."""
  if not how_to_get:
    how = "Run:\n  " + prepare_command(dataset, data_dir)
  elif dataset == "brainwash":
    how = ("It is built offline from the manual download:\n"
           + brainwash.MANUAL_DOWNLOAD_INSTRUCTIONS + "\nthen run:\n  "
           + prepare_command(dataset, data_dir))
  else:
    how = ("Download and prepare it once on a machine with internet access (TFDS fetches "
           f"the archives), then use or copy {data_dir} here:\n  "
           + prepare_command(dataset, data_dir))
  return detection.DataNotFoundError(
      f"TFDS dataset {tfds_name} for dataset.name={dataset} {why} under dataset.path="
      f"{data_dir}. {how}")


def open_source(dataset: str, tfds_name: str, tfds_split: str, data_dir: str):
  """``(random-access source of the split, DatasetInfo)``; DataNotFoundError if the
  dataset is not prepared there in array_record format."""
  import tensorflow_datasets as tfds  # heavy (TensorFlow); readers need only its data source
  directory = prepared_dir(data_dir, tfds_name)
  if directory is None:
    raise _not_prepared(dataset, tfds_name, data_dir, "is not prepared")
  builder = tfds.builder_from_directory(directory)
  if tfds_split not in builder.info.splits:
    raise _not_prepared(dataset, tfds_name, data_dir,
                        f"has no split {tfds_split!r} (prepared: {list(builder.info.splits)})")
  try:
    source = builder.as_data_source(tfds_split,
                                    decoders={"image": tfds.decode.SkipDecoding()})
  except (NotImplementedError, ValueError) as e:
    raise _not_prepared(
        dataset, tfds_name, data_dir,
        f"is prepared as {getattr(builder.info.file_format, 'value', None)}, not "
        f"array_record (random access needs it); delete {directory} and prepare it again",
        how_to_get=False) from e
  return source, builder.info


class TfdsDetectionDataset(detection.DetectionDataset):
  """Base of the readers below: ``PARTS[DATASET]`` read from ``path`` (the TFDS data_dir).
  ``split``: 'train', 'eval' or another key of ``PARTS[DATASET]``."""

  DATASET = ""

  def __init__(self, *, path, split: str, max_boxes: int, augment_config=None):
    dataset = self.DATASET
    if split not in PARTS[dataset]:
      raise ValueError(f"split of {dataset} must be one of {sorted(PARTS[dataset])}, "
                       f"got {split!r}")
    self.data_dir, self.dataset, self.split = resolve_data_dir(path), dataset, split
    opened = [(name,) + open_source(dataset, name, tfds_split, self.data_dir)
              for name, tfds_split in PARTS[dataset][split]]
    names = list(opened[0][2].features["objects"]["label"].names)
    if dataset == "coco":
      try:
        ids = coco_categories.category_ids_for(names)
      except ValueError as e:
        raise detection.DataFormatError(
            f"coco/2017 under {self.data_dir} was built from a JSON whose categories are not "
            f"COCO's, so their original ids are unknown: {e}") from e
    else:
      ids = range(len(names))
    super().__init__(class_names=names, category_ids=ids, max_boxes=max_boxes,
                     augment_config=augment_config)
    self._names = [name for name, _, _ in opened]
    self._sources = [source for _, source, _ in opened]
    self._starts = np.cumsum([0] + [len(s) for s in self._sources])  # [parts + 1]
    self.num_examples = int(self._starts[-1])
    self._counted: set[int] = set()

  def _record(self, index):
    """``(TFDS dataset name, record dict)`` of a global index."""
    part = int(np.searchsorted(self._starts, index, side="right")) - 1
    return self._names[part], self._sources[part][index - int(self._starts[part])]

  def _to_annotation(self, index, tfds_name, record) -> detection.Annotation:
    name = f"{tfds_name}/{_text(record['image/filename'])}"
    image_id = int(record["image/id"]) if self.dataset == "coco" else index
    try:
      height, width = image_io.image_hw(record["image"])
    except image_io.ImageError:
      return detection.empty_annotation(image_id, name)  # batch() then skips the image
    objects = record["objects"]
    yxyx = np.asarray(objects["bbox"], np.float64).reshape(-1, 4)  # [n, 4] normalised
    boxes = np.round(yxyx[:, [1, 0, 3, 2]] * [width, height, width, height], PIXEL_DECIMALS)
    n = len(boxes)
    flag = {"voc": "is_difficult", "voc07": "is_difficult", "coco": "is_crowd"}.get(self.dataset)
    difficult = np.asarray(objects[flag], bool).reshape(n) if flag else np.zeros(n, bool)
    clean, keep, fixed, dropped = detection.clean_boxes(boxes, height, width)
    with self._stats_lock:
      first = index not in self._counted
      self._counted.add(index)
    if first:
      self._add_stats(fixed_boxes=fixed, dropped_boxes=dropped)
    areas = np.asarray(objects["area"], np.float64).reshape(n)[keep] \
        if self.dataset == "coco" else None
    return detection.Annotation(
        boxes=clean, labels=np.asarray(objects["label"], np.int32).reshape(n)[keep],
        difficult=difficult[keep], height=height, width=width, image_id=image_id, name=name,
        areas=areas)

  def _annotation(self, index):
    return self._to_annotation(index, *self._record(index))

  def _read(self, index):
    tfds_name, record = self._record(index)
    ann = self._to_annotation(index, tfds_name, record)
    try:
      return ann, image_io.decode_rgb(record["image"])
    except image_io.ImageError as e:
      raise image_io.ImageError(f"{ann.name}: {e}") from e


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class VocDataset(TfdsDetectionDataset):
  """TFDS VOC 07+12 trainval (train) / 07 test (eval): ``dataset.name=voc``."""
  DATASET = "voc"
  pixel_convention = "voc"   # the devkit's inclusive pixel corners


class Voc07Dataset(VocDataset):
  """TFDS VOC 2007 trainval (train) / 2007 test (eval): ``dataset.name=voc07``."""
  DATASET = "voc07"


class CocoDataset(TfdsDetectionDataset):
  """TFDS coco/2017 train (train) / validation (eval): ``dataset.name=coco``."""
  DATASET = "coco"


class BrainwashDataset(TfdsDetectionDataset):
  """Brainwash through our manual-download builder (train / test): ``dataset.name=brainwash``."""
  DATASET = "brainwash"
