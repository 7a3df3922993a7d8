"""A user's own data in Pascal VOC layout (``dataset.name=voc_folder``, ``dataset.path``).

Layout (``LAYOUT``): ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml``,
``ImageSets/Main/<split>.txt`` (one id per line; only the first word of a line is read, so
VOC's per-class files work too). An image may also be ``.jpeg``/``.png``/``.bmp`` or named by
the XML's ``<filename>``.

Coordinates follow TFDS's ``voc`` builder, which we read in tensorflow-datasets 4.9.10:
the ``<bndbox>`` corners are taken as written (VOC's 1-based pixel indices, no shift) and
normalised by dividing by ``<size>``. So ``ground_truth`` returns the XML's numbers, a
folder copy of VOC gives the same boxes as TFDS ``voc``, and the evaluator's +1 pixel
IoU on them is the devkit's. Images without ``<size>`` (or a zero size) get it from the
image file's header.

All annotations are parsed at construction (cheap; no pixel decoded): an XML that does not
parse, or whose image file is missing, skips the image (logged, ``stats['skipped_images']``).
An ``<object>`` without a numeric ``<bndbox>``, or of a class outside ``class_names``, is
dropped (``dropped_boxes``). Class names are stripped of surrounding spaces and kept as
written (case matters). Without ``class_names`` the classes are the sorted unique names of
the split. ``image_id`` is the index in the split (ids repeated in the split file are read
once).
"""
from __future__ import annotations

import collections
import os
import xml.etree.ElementTree as ET

import numpy as np
from absl import logging

from anchor_jax.data import detection, image_io

LAYOUT = """  {root}/JPEGImages/<id>.jpg          the images (.jpg, .jpeg, .png or .bmp)
  {root}/Annotations/<id>.xml         one Pascal VOC XML per image
  {root}/ImageSets/Main/{split}.txt   the ids of the split's images, one per line"""
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG")
_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def parse_voc_xml(path):
  """``(size (h, w) or None, filename or None, objects)`` of one VOC XML file; each object is
  ``(name, difficult, box [xmin, ymin, xmax, ymax] or None)``. ValueError if unparsable."""
  try:
    root = ET.parse(path).getroot()
  except (ET.ParseError, OSError) as e:
    raise ValueError(str(e)) from e

  def number(node, tag):
    text = node.findtext(tag) if node is not None else None
    try:
      return float(text)
    except (TypeError, ValueError):
      return None

  size = root.find("size")
  h, w = number(size, "height"), number(size, "width")
  hw = (int(h), int(w)) if h and w and h > 0 and w > 0 else None
  objects = []
  for obj in root.iter("object"):
    name = (obj.findtext("name") or "").strip()
    difficult = (obj.findtext("difficult") or "0").strip().lower() in ("1", "true")
    corners = [number(obj.find("bndbox"), t) for t in _BOX_TAGS]
    objects.append((name, difficult, None if None in corners else corners))
  return hw, (root.findtext("filename") or "").strip() or None, objects


def _read_split_ids(path):
  with open(path, encoding="utf-8") as f:
    ids = [line.split()[0] for line in f if line.strip()]
  return list(dict.fromkeys(ids))  # order kept, repeats read once


def _find_image(root, image_id, xml_filename):
  folder = os.path.join(root, "JPEGImages")
  names = [image_id + ".jpg"] + ([xml_filename] if xml_filename else [])
  names += [image_id + ext for ext in IMAGE_EXTENSIONS[1:]]
  for name in names:
    if os.path.isfile(os.path.join(folder, name)):
      return os.path.join(folder, name)
  return None


class VocFolderDataset(detection.DetectionDataset):
  pixel_convention = "voc"   # the devkit's inclusive pixel corners
  """Pascal-VOC-layout folder at ``path``, split ``split`` (the name of a file in
  ``ImageSets/Main/``). ``class_names``: list (or comma-separated string) fixing the
  classes and their order; None reads them from the split's annotations."""

  def __init__(self, *, path, split: str, max_boxes: int, class_names=None,
               augment_config=None):
    root = os.path.abspath(os.path.expanduser(os.fspath(path)))
    split_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    _check_layout(root, split, split_file)
    records, stats = self._scan(root, _read_split_ids(split_file))
    names = _class_names(class_names, records)
    index_of = {n: i for i, n in enumerate(names)}
    super().__init__(class_names=names, category_ids=range(len(names)),
                     max_boxes=max_boxes, augment_config=augment_config)
    self.root, self.split = root, split
    self.stats.update(stats)
    self._paths, self._annotations = [], []
    unknown = collections.Counter()
    for image_path, hw, objects in records:
      known = [o for o in objects if o[0] in index_of]
      unknown.update(o[0] for o in objects if o[0] not in index_of)
      boxes = np.array([o[2] for o in known], np.float64).reshape(-1, 4)
      boxes, keep, fixed, dropped = detection.clean_boxes(boxes, *hw)
      self.stats["fixed_boxes"] += fixed
      self.stats["dropped_boxes"] += dropped + len(objects) - len(known)
      self._annotations.append(detection.Annotation(
          boxes=boxes, labels=np.array([index_of[known[k][0]] for k in keep], np.int32),
          difficult=np.array([known[k][1] for k in keep], bool), height=hw[0], width=hw[1],
          image_id=len(self._paths), name=os.path.basename(image_path)))
      self._paths.append(image_path)
    if unknown:
      logging.warning("%s: dropped %d boxes of classes not in class_names: %s", root,
                      sum(unknown.values()), dict(unknown))
    self.num_examples = len(self._paths)
    if not self.num_examples:
      raise detection.DataNotFoundError(
          f"No readable image in split {split!r} of {root} (see the warnings above). Expected:\n"
          + LAYOUT.format(root=root, split=split))

  @staticmethod
  def _scan(root, ids):
    """``([(image path, (h, w), objects)], stats)`` of the ids whose XML parses and whose
    image exists; objects without a numeric box are dropped and counted here."""
    records, stats = [], dict(skipped_images=0, dropped_boxes=0)
    for image_id in ids:
      xml_path = os.path.join(root, "Annotations", image_id + ".xml")
      try:
        hw, filename, objects = parse_voc_xml(xml_path)
        image_path = _find_image(root, image_id, filename)
        if image_path is None:
          raise ValueError(f"no image file JPEGImages/{image_id}.* found")
        hw = hw or image_io.image_hw(image_path)
      except (ValueError, image_io.ImageError) as e:
        stats["skipped_images"] += 1
        logging.warning("Skipping %s (%s): %s", image_id, xml_path, e)
        continue
      with_box = [o for o in objects if o[2] is not None]
      stats["dropped_boxes"] += len(objects) - len(with_box)
      records.append((image_path, hw, with_box))
    return records, stats

  def _annotation(self, index):
    return self._annotations[index]

  def _image_path(self, index):
    return self._paths[index]


def _check_layout(root, split, split_file):
  """DataNotFoundError naming the expected layout if the folder, its image or annotation
  folder, or the split file is missing."""
  layout = LAYOUT.format(root=root, split=split)
  if not os.path.isdir(root):
    raise detection.DataNotFoundError(
        f"dataset.path={root} does not exist. dataset.name=voc_folder expects a Pascal VOC "
        f"layout folder:\n{layout}")
  for folder in ("JPEGImages", "Annotations"):
    if not os.path.isdir(os.path.join(root, folder)):
      raise detection.DataNotFoundError(
          f"{os.path.join(root, folder)} not found. dataset.name=voc_folder expects:\n{layout}")
  if os.path.isfile(split_file):
    return
  main = os.path.join(root, "ImageSets", "Main")
  found = sorted(f[:-4] for f in os.listdir(main) if f.endswith(".txt")) \
      if os.path.isdir(main) else []
  raise detection.DataNotFoundError(
      f"Split file {split_file} not found (splits there: {found or 'none'}). "
      f"dataset.name=voc_folder expects:\n{layout}")


def _class_names(class_names, records):
  """The configured class names (list or comma-separated string) or the data's, sorted."""
  if isinstance(class_names, str):
    class_names = class_names.split(",")
  if class_names:
    names = [str(n).strip() for n in class_names]
    if len(set(names)) != len(names) or "" in names:
      raise ValueError(f"class_names must be unique and non-empty, got {names}")
    return names
  names = sorted({o[0] for _, _, objects in records for o in objects if o[0]})
  if not names:
    raise detection.DataFormatError(
        "No object <name> in the split's annotations to take class names from; "
        "set dataset.class_names.")
  return names
