"""Writers of small on-disk dataset fixtures in the real layouts (VOC, COCO, Brainwash IDL).

Images are flat grey with each object box filled in its own colour, so a test can check
that pixels and boxes line up after loading. Nothing here is downloaded.
"""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

BACKGROUND = 128


def object_colour(k: int) -> tuple[int, int, int]:
  """A distinct saturated colour per object k."""
  palette = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
  return palette[k % len(palette)]


def write_image(path, height, width, boxes=(), fmt=None):
  """Saves an RGB image [height, width] with each xyxy pixel box (integer corners) painted."""
  image = np.full((height, width, 3), BACKGROUND, np.uint8)
  for k, (x0, y0, x1, y1) in enumerate(boxes):
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1), width), min(int(y1), height)
    if x1 > x0 and y1 > y0:
      image[y0:y1, x0:x1] = object_colour(k)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path, format=fmt, quality=95)
  return image


def write_garbage(path):
  """A file with an image extension that holds no image."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(b"\x00not an image\xff" * 20)


def voc_xml(filename, height, width, objects) -> str:
  """Pascal VOC annotation XML; objects: (name, difficult, (xmin, ymin, xmax, ymax))."""
  parts = [f"<annotation><folder>VOC</folder><filename>{filename}</filename>",
           f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
  for name, difficult, (x0, y0, x1, y1) in objects:
    parts.append(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{int(difficult)}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
  return "\n".join(parts + ["</annotation>"])


def write_voc(root, images, splits):
  """A VOC-layout folder. ``images``: id -> dict(height, width, objects, [corrupt],
  [bad_xml]); ``splits``: split name -> ids. Returns ``root``."""
  for image_id, spec in images.items():
    jpg = os.path.join(root, "JPEGImages", image_id + ".jpg")
    if spec.get("corrupt"):
      write_garbage(jpg)
    else:
      write_image(jpg, spec["height"], spec["width"], [o[2] for o in spec["objects"]])
    xml = os.path.join(root, "Annotations", image_id + ".xml")
    os.makedirs(os.path.dirname(xml), exist_ok=True)
    with open(xml, "w") as f:
      f.write("<annotation><size>" if spec.get("bad_xml") else
              voc_xml(image_id + ".jpg", spec["height"], spec["width"], spec["objects"]))
  main = os.path.join(root, "ImageSets", "Main")
  os.makedirs(main, exist_ok=True)
  for split, ids in splits.items():
    with open(os.path.join(main, split + ".txt"), "w") as f:
      f.write("".join(i + "\n" for i in ids))
  return root


def write_json(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(data, f)
  return path
