"""VOC-layout folder dataset: boxes as written, cleaning and skipping counted, batches."""
import os

import numpy as np
import pytest

from anchor_jax.data import detection, image_io, pipeline, voc_folder
from tests import data_fixtures, train_util

# id -> (height, width, objects (name, difficult, (xmin, ymin, xmax, ymax)) as in the XML).
IMAGES = {
    "000001": dict(height=60, width=80, objects=[
        ("dog", False, (10, 12, 40, 50)), ("cat", True, (45, 5, 75, 30))]),
    "000002": dict(height=50, width=70, objects=[
        ("person", False, (40, 10, 20, 30)),     # xmin > xmax: dropped
        ("person", False, (60, 20, 90, 45)),     # past the right edge: clipped to x1 = 70
        ("dog", False, (100, 60, 120, 80)),      # wholly outside: dropped
        ("cat", False, (5, 5, 25, 45))]),
    "000003": dict(height=40, width=40, objects=[("dog", False, (1, 1, 20, 20))], corrupt=True),
    "000004": dict(height=32, width=48, objects=[]),
    "000005": dict(height=40, width=40, objects=[], bad_xml=True),
    "000006": dict(height=64, width=64, objects=[
        ("person", True, (2, 2, 10, 10)), ("person", False, (12, 2, 20, 10)),
        ("dog", False, (22, 2, 30, 10)), ("cat", False, (32, 2, 40, 10)),
        ("person", False, (42, 2, 50, 10))]),
}
SPLITS = {"train": ["000001", "000002", "000003", "000004", "000005", "000006"],
          "val": ["000004", "000001"]}


@pytest.fixture
def root(tmp_path):
  return data_fixtures.write_voc(str(tmp_path / "voc"), IMAGES, SPLITS)


def make(root, split="train", **kw):
  return voc_folder.VocFolderDataset(path=root, split=split, max_boxes=kw.pop("max_boxes", 3),
                                     **kw)


def test_scan_counts_skips_and_fixes(root):
  ds = make(root)
  assert ds.class_names == ["cat", "dog", "person"]
  assert ds.category_ids == [0, 1, 2]
  # 000005's XML does not parse; 000003's image is only found corrupt at batch time.
  assert len(ds) == ds.num_examples == 5
  assert ds.stats == dict(skipped_images=1, dropped_boxes=2, fixed_boxes=1, truncated=0)


def test_ground_truth_is_xml_pixels(root):
  ds = make(root)
  boxes, labels, difficult = ds.ground_truth(0)  # 000001
  np.testing.assert_array_equal(boxes, [[10, 12, 40, 50], [45, 5, 75, 30]])
  np.testing.assert_array_equal(labels, [1, 0])
  np.testing.assert_array_equal(difficult, [False, True])
  boxes, labels, _ = ds.ground_truth(1)  # 000002: two dropped, one clipped
  np.testing.assert_array_equal(boxes, [[60, 20, 70, 45], [5, 5, 25, 45]])
  np.testing.assert_array_equal(labels, [2, 0])
  boxes, _, difficult = ds.ground_truth(4)  # 000006: untruncated
  assert boxes.shape == (5, 4) and difficult.tolist() == [True] + [False] * 4
  assert ds.image_name(0) == "000001.jpg"


def test_eval_batch_boxes_pixels_and_padding(root):
  ds = make(root)
  out = ds.batch([0, 3], image_size=32)
  assert out["image"].shape == (2, 32, 32, 3) and out["image"].dtype == np.uint8
  assert out["boxes"].shape == (2, 3, 4) and out["boxes"].dtype == np.float32
  np.testing.assert_allclose(out["boxes"][0, :2], [[10 / 80, 12 / 60, 40 / 80, 50 / 60],
                                                   [45 / 80, 5 / 60, 75 / 80, 30 / 60]], 1e-6)
  assert out["mask"].tolist() == [[True, True, False], [False, False, False]]  # 000004: none
  assert out["difficult"][0].tolist() == [False, True, False]
  assert out["labels"][0, :2].tolist() == [1, 0]
  assert out["image_id"].tolist() == [0, 3] and out["image_id"].dtype == np.int64
  assert out["orig_hw"].tolist() == [[60, 80], [32, 48]] and out["orig_hw"].dtype == np.int32
  assert not out["replaced"].any()
  # The dog's box (painted red) is red in the resized image, the background grey.
  x0, y0, x1, y1 = np.round(out["boxes"][0, 0] * 32).astype(int)
  red = out["image"][0, y0 + 2:y1 - 2, x0 + 2:x1 - 2].reshape(-1, 3).mean(0)
  assert red[0] > 200 and red[1] < 60 and red[2] < 60
  assert np.abs(out["image"][0, 31, 0].astype(int) - data_fixtures.BACKGROUND).max() < 12


def test_corrupt_image_replaced_by_next_and_counted_once(root):
  ds = make(root)
  for _ in range(2):
    out = ds.batch([2], image_size=16)  # 000003: garbage bytes
    assert out["replaced"].tolist() == [True]
    assert out["image_id"].tolist() == [3]  # the next readable index (000004)
  assert ds.stats["skipped_images"] == 2  # the bad XML at scan + this image, once


def test_truncation_keeps_non_difficult_first_and_counts(root):
  ds = make(root)
  out = ds.batch([4, 4], image_size=64)  # 000006: 5 boxes, max_boxes 3
  assert ds.stats["truncated"] == 4  # 2 per row
  assert out["mask"].all() and not out["difficult"].any()
  np.testing.assert_allclose(out["boxes"][0] * 64, [[12, 2, 20, 10], [22, 2, 30, 10],
                                                    [32, 2, 40, 10]], atol=1e-4)


def test_boxes_wh_are_resized_non_difficult_shapes(root):
  ds = make(root)
  wh = ds.boxes_wh(2, image_size=100)
  expected = [[30 / 80 * 100, 38 / 60 * 100],  # 000001 dog (the cat is difficult)
              [10 / 70 * 100, 25 / 50 * 100], [20 / 70 * 100, 40 / 50 * 100]]  # 000002
  np.testing.assert_allclose(wh, expected, rtol=1e-6)
  assert wh.dtype == np.float32
  assert ds.boxes_wh(100, image_size=64).shape == (1 + 2 + 1 + 0 + 4, 2)  # whole split


def test_training_box_shapes_follow_the_training_geometry(root):
  """A plain resize to input.image_size, or with native-scale crops (augment.crop_px) one
  scale image_size / crop_px on both axes: the boxes k-means and the figures see."""
  ds = make(root)
  config = train_util.tiny_config(**{"dataset.name": "voc_folder", "dataset.path": root,
                                     "input.image_size": 64, "anchors.kmeans_images": 2})
  np.testing.assert_allclose(pipeline.train_box_shapes(ds, config), ds.boxes_wh(2, image_size=64))
  config.augment.jitter, config.augment.crop_px = 0.0, 32.0
  native = [[30, 38], [10, 25], [20, 40]]                       # pixels as annotated
  np.testing.assert_allclose(pipeline.train_box_shapes(ds, config), np.multiply(native, 2.0),
                             rtol=1e-6)
  with pytest.raises(ValueError, match="one of image_size and scale"):
    ds.boxes_wh(2)


def test_configured_class_names_drop_the_others(root):
  ds = make(root, split="val", class_names="dog, person")
  assert ds.class_names == ["dog", "person"] and len(ds) == 2
  assert ds.stats["dropped_boxes"] == 1  # 000001's cat
  np.testing.assert_array_equal(ds.ground_truth(1)[1], [0])
  assert ds.ground_truth(0)[0].shape == (0, 4)


def test_missing_folder_or_split_says_the_layout(tmp_path, root):
  with pytest.raises(detection.DataNotFoundError, match=r"does not exist(.|\n)*JPEGImages"):
    make(str(tmp_path / "nowhere"))
  with pytest.raises(detection.DataNotFoundError,
                     match=r"test\.txt not found \(splits there: \['train', 'val'\]\)"):
    make(root, split="test")
  os.rename(os.path.join(root, "JPEGImages"), os.path.join(root, "images"))
  with pytest.raises(detection.DataNotFoundError, match=r"JPEGImages not found"):
    make(root)


def test_index_out_of_range(root):
  with pytest.raises(IndexError):
    make(root).batch([5], image_size=16)


def test_parse_voc_xml_reads_size_and_objects(tmp_path):
  path = tmp_path / "a.xml"
  path.write_text(data_fixtures.voc_xml("a.jpg", 10, 20, [(" dog ", True, (1.5, 2, 3, 4))]))
  hw, filename, objects = voc_folder.parse_voc_xml(path)
  assert hw == (10, 20) and filename == "a.jpg"
  assert objects == [("dog", True, [1.5, 2.0, 3.0, 4.0])]
  with pytest.raises(ValueError):
    voc_folder.parse_voc_xml(tmp_path / "missing.xml")


def test_clean_boxes_rules():
  boxes, keep, fixed, dropped = detection.clean_boxes(
      [[1, 1, 5, 5], [-2, 3, 4, 12], [5, 1, 5, 4], [4, 1, 2, 3], [np.nan, 0, 1, 1]], 10, 8)
  np.testing.assert_array_equal(boxes, [[1, 1, 5, 5], [0, 3, 4, 10]])
  assert keep.tolist() == [0, 1] and (fixed, dropped) == (1, 3)


def test_image_io_rejects_garbage(tmp_path):
  path = str(tmp_path / "x.jpg")
  data_fixtures.write_garbage(path)
  with pytest.raises(image_io.ImageError):
    image_io.decode_rgb(path)
  with pytest.raises(image_io.ImageError):
    image_io.image_hw(path)


def test_augment_path_passes_seed_and_maps_flags(root, monkeypatch):
  """batch(augment_seeds=...) hands the augmenter the decoded image and pixel boxes, and
  maps its keep_index back to the difficult flags (a stand-in augmenter: no augment.py)."""
  calls = []

  def augment(image, boxes_px, labels, *, out_size, seed, cfg, out=None):
    calls.append((np.asarray(image).shape, seed, cfg))   # a PIL image or an array
    keep = np.array([1])  # keep only the second box (000001's difficult cat), shifted
    out = np.full((out_size, out_size, 3), 7, np.uint8)
    return out, boxes_px[keep] / 2, labels[keep], keep

  monkeypatch.setattr(detection.augment_lib, "augment", augment)
  ds = make(root, augment_config={"jitter": 0.2})
  out = ds.batch([0], image_size=20, augment_seeds=[123])
  assert calls == [((60, 80, 3), 123, {"jitter": 0.2})]
  assert (out["image"] == 7).all()
  np.testing.assert_allclose(out["boxes"][0, 0], np.array([45, 5, 75, 30]) / 2 / 20, 1e-6)
  assert out["labels"][0, 0] == 0 and out["difficult"][0].tolist() == [True, False, False]
  assert out["mask"][0].tolist() == [True, False, False]
  with pytest.raises(ValueError, match="augment_seeds"):
    ds.batch([0, 1], image_size=20, augment_seeds=[1])


def test_identity_augmentation_equals_the_eval_batch(root):
  """With the real augmenter (when present) and no randomness, train rows = eval rows."""
  augment = pytest.importorskip("anchor_jax.data.augment")
  ds = make(root, augment_config=augment.AugmentConfig.identity())
  train = ds.batch([0, 1, 4], image_size=32, augment_seeds=[1, 2, 3])
  evaluation = ds.batch([0, 1, 4], image_size=32)
  for key in ("boxes", "labels", "mask", "difficult", "image_id", "orig_hw"):
    np.testing.assert_allclose(train[key], evaluation[key], atol=1e-5, err_msg=key)
  np.testing.assert_array_equal(train["image"], evaluation["image"])
