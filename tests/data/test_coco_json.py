"""COCO-JSON dataset: original ids kept, crowd = difficult, cleaning and skipping counted."""
import os

import numpy as np
import pytest

from anchor_jax.data import coco_json, detection
from tests import data_fixtures

CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
              {"id": 5, "name": "airplane"}]  # file order is not id order
# image id -> (file, height, width, pixel boxes painted in the image)
IMAGES = {
    42: ("a.jpg", 60, 80, [(10, 12, 40, 50), (45, 5, 75, 30)]),
    7: ("b.jpg", 50, 70, [(5, 5, 25, 45)]),
    100: ("broken.jpg", 40, 40, []),
    300: ("empty.jpg", 32, 48, []),
}
ANNOTATIONS = [
    # image 42: a person, an airplane crowd region (area differs from the box, as COCO's)
    {"id": 2, "image_id": 42, "category_id": 5, "bbox": [45, 5, 30, 25], "iscrowd": 1,
     "area": 500.0},
    {"id": 1, "image_id": 42, "category_id": 1, "bbox": [10, 12, 30, 38], "iscrowd": 0,
     "area": 1000.5},
    # image 7: a toothbrush, a reversed box (negative width), a box past the bottom edge
    {"id": 3, "image_id": 7, "category_id": 90, "bbox": [5, 5, 20, 40], "iscrowd": 0, "area": 1},
    {"id": 4, "image_id": 7, "category_id": 1, "bbox": [40, 10, -20, 20], "iscrowd": 0},
    {"id": 5, "image_id": 7, "category_id": 1, "bbox": [30, 40, 20, 30], "iscrowd": 0},
    # unknown category, unknown image, malformed bbox: dropped
    {"id": 6, "image_id": 7, "category_id": 2, "bbox": [1, 1, 5, 5]},
    {"id": 7, "image_id": 999, "category_id": 1, "bbox": [1, 1, 5, 5]},
    {"id": 8, "image_id": 42, "category_id": 1, "bbox": [1, 1, 5]},
]


def write_coco(root, split="train2017"):
  images = []
  for image_id, (name, h, w, boxes) in IMAGES.items():
    path = os.path.join(root, split, name)
    if name == "broken.jpg":
      data_fixtures.write_garbage(path)
    else:
      data_fixtures.write_image(path, h, w, boxes)
    images.append({"id": image_id, "file_name": name, "height": h, "width": w})
  images.append({"file_name": "no_id.jpg"})  # malformed entry: skipped
  return data_fixtures.write_json(
      os.path.join(root, "annotations", f"instances_{split}.json"),
      {"images": images, "annotations": ANNOTATIONS, "categories": CATEGORIES})


@pytest.fixture
def root(tmp_path):
  write_coco(str(tmp_path / "coco"))
  return str(tmp_path / "coco")


def make(path, **kw):
  return coco_json.CocoJsonDataset(path=path, split=kw.pop("split", "train2017"),
                                   max_boxes=kw.pop("max_boxes", 4), **kw)


def test_categories_keep_original_ids_sorted(root):
  ds = make(root)
  assert ds.class_names == ["person", "airplane", "toothbrush"]
  assert ds.category_ids == [1, 5, 90]


def test_images_sorted_by_id_and_counts(root):
  ds = make(root)
  assert len(ds) == 4
  assert [ds.image_name(i) for i in range(4)] == ["b.jpg", "a.jpg", "broken.jpg", "empty.jpg"]
  # dropped: reversed box, unknown category, unknown image, malformed bbox; fixed: one clip
  assert ds.stats == dict(skipped_images=1, dropped_boxes=4, fixed_boxes=1, truncated=0)


def test_ground_truth_pixels_labels_crowd_and_areas(root):
  ds = make(root)
  boxes, labels, difficult = ds.ground_truth(1)  # image 42, annotations in id order
  np.testing.assert_allclose(boxes, [[10, 12, 40, 50], [45, 5, 75, 30]])
  assert [ds.category_ids[c] for c in labels] == [1, 5]
  assert difficult.tolist() == [False, True]
  np.testing.assert_allclose(ds.ground_truth_areas(1), [1000.5, 500.0])
  boxes, labels, _ = ds.ground_truth(0)  # image 7
  np.testing.assert_allclose(boxes, [[5, 5, 25, 45], [30, 40, 50, 50]])
  assert [ds.category_ids[c] for c in labels] == [90, 1]


def test_eval_batch_and_corrupt_image(root):
  ds = make(root, max_boxes=2)
  out = ds.batch([1, 2, 3], image_size=40)
  assert out["image_id"].tolist() == [42, 300, 300]  # broken.jpg -> next readable image
  assert out["replaced"].tolist() == [False, True, False]
  assert ds.stats["skipped_images"] == 2
  np.testing.assert_allclose(out["boxes"][0], [[10 / 80, 12 / 60, 40 / 80, 50 / 60],
                                               [45 / 80, 5 / 60, 75 / 80, 30 / 60]], 1e-6)
  assert out["difficult"][0].tolist() == [False, True]
  assert out["mask"].tolist() == [[True, True], [False, False], [False, False]]
  assert out["orig_hw"].tolist() == [[60, 80], [32, 48], [32, 48]]


def test_truncation_counted(root):
  ds = make(root, max_boxes=1)
  out = ds.batch([1], image_size=16)
  assert ds.stats["truncated"] == 1 and out["mask"].sum() == 1
  assert not out["difficult"].any()  # the crowd box is the one cut


def test_boxes_wh(root):
  wh = make(root).boxes_wh(2, image_size=100)  # image 7 (two boxes), image 42 (crowd left out)
  np.testing.assert_allclose(wh, [[20 / 70 * 100, 40 / 50 * 100], [20 / 70 * 100, 10 / 50 * 100],
                                  [30 / 80 * 100, 38 / 60 * 100]], rtol=1e-6)


def test_explicit_json_path_with_images_beside_it(tmp_path):
  folder = tmp_path / "export"
  data_fixtures.write_image(str(folder / "x.png"), 20, 30, [(1, 2, 11, 12)])
  path = data_fixtures.write_json(str(folder / "_annotations.coco.json"), {
      "images": [{"id": 1, "file_name": "x.png"}],  # no size: read from the header
      "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 10]}],
      "categories": [{"id": 3, "name": "thing"}]})
  ds = make(path, split="ignored")
  assert ds.class_names == ["thing"] and ds.category_ids == [3]
  out = ds.batch([0], image_size=10)
  assert out["orig_hw"].tolist() == [[20, 30]]
  np.testing.assert_allclose(out["boxes"][0, 0], [1 / 30, 2 / 20, 11 / 30, 12 / 20], 1e-6)


def test_missing_and_broken_files_raise_clear_errors(tmp_path, root):
  with pytest.raises(detection.DataNotFoundError,
                     match=r"instances_val2017\.json not found(.|\n)*annotations/instances_"):
    make(root, split="val2017")
  with pytest.raises(detection.DataNotFoundError, match=r"Image folder .*nowhere not found"):
    make(root, image_dir=str(tmp_path / "nowhere"))
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(detection.DataFormatError, match="not a COCO instances file"):
    make(str(bad))
