"""Image files and bytes to uint8 RGB arrays, header sizes, and the plain eval resize (PIL).

PIL keeps image work on the host CPU (never on an accelerator) and needs no TensorFlow.
Pixels are read as stored: EXIF orientation tags are not applied, as TFDS
(``tf.image.decode_*``) does not apply them either, so an image reads the same whether it
comes from a folder or from a prepared TFDS dataset.
"""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np
from PIL import Image

Source = Union[str, os.PathLike, bytes]

# Bilinear with PIL's antialiasing when shrinking (PIL widens the filter support).
RESIZE_FILTER = Image.Resampling.BILINEAR


# What PIL raises on bad data: OSError (missing, truncated, unknown format), ValueError,
# SyntaxError (some plugins), and DecompressionBombError for absurd pixel counts.
_PIL_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageError(ValueError):
  """An image that cannot be read or decoded (missing, truncated, not an image)."""


def _open(source: Source) -> Image.Image:
  return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


def image_hw(source: Source) -> tuple[int, int]:
  """(height, width) from the file header only, without decoding pixels."""
  try:
    with _open(source) as im:
      width, height = im.size
  except _PIL_ERRORS as e:
    raise ImageError(str(e)) from e
  if width <= 0 or height <= 0:
    raise ImageError(f"image reports size {width}x{height}")
  return height, width


def decode_image(source: Source) -> Image.Image:
  """A decoded PIL RGB image: grey, palette, CMYK and alpha images are converted to RGB.
  What the training path takes (``augment.augment``): it saves ``decode_rgb``'s copy."""
  try:
    with _open(source) as im:
      im.load()  # decodes fully now: a truncated file fails here, not later
      return im if im.mode == "RGB" else im.convert("RGB")
  except _PIL_ERRORS as e:
    raise ImageError(str(e)) from e


def decode_rgb(source: Source) -> np.ndarray:
  """uint8 [H, W, 3]: grey, palette, CMYK and alpha images are converted to RGB."""
  return np.asarray(decode_image(source), np.uint8)


def resize_square(image, size: int) -> np.ndarray:
  """uint8 [H, W, 3] (or a PIL RGB image) -> uint8 [size, size, 3]: the whole image, aspect
  not kept (no letterbox)."""
  if isinstance(image, Image.Image):
    if image.size == (size, size):
      return np.asarray(image, np.uint8)
    return np.asarray(image.resize((size, size), RESIZE_FILTER), np.uint8)
  if image.shape[:2] == (size, size):
    return image
  return np.asarray(Image.fromarray(image).resize((size, size), RESIZE_FILTER), np.uint8)
