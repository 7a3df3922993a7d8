"""TFDS voc/2007 + voc/2012 and coco/2017 built from on-disk fixtures, read by random access.

The TFDS builders are run for real (``anchor_jax.tools.prepare``) with only the download
manager's ``download_and_extract`` replaced by a function returning the fixture folders,
as tfds's own builder tests do. Nothing is downloaded.
"""
import os
from unittest import mock

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from anchor_jax.data import coco_categories, detection, tfds_datasets, tfds_prepare, voc_folder  # noqa: E402
from anchor_jax.tools import prepare  # noqa: E402
from tests import data_fixtures  # noqa: E402


def voc_images(year, ids, seed):
  """id -> spec with 1-3 objects of random VOC classes, some difficult; integer corners."""
  rng = np.random.default_rng(seed)
  names = ["dog", "person", "car", "tvmonitor"]
  images = {}
  for image_id in ids:
    h, w = int(rng.integers(40, 70)), int(rng.integers(40, 70))
    objects = []
    for _ in range(int(rng.integers(1, 4))):
      x0, y0 = int(rng.integers(1, w // 2)), int(rng.integers(1, h // 2))
      x1, y1 = int(rng.integers(x0 + 3, w + 1)), int(rng.integers(y0 + 3, h + 1))
      objects.append((str(rng.choice(names)), bool(rng.random() < 0.3), (x0, y0, x1, y1)))
    images[f"{year}_{image_id}"] = dict(height=h, width=w, objects=objects)
  return images


VOC07 = voc_images("2007", ["000001", "000002", "000003", "000004", "000005", "000006"], 0)
VOC12 = voc_images("2012", ["000101", "000102", "000103"], 1)
VOC_SPLITS = {
    "2007": {"train": ["2007_000001", "2007_000002"], "val": ["2007_000003"],
             "test": ["2007_000004", "2007_000005", "2007_000006"]},
    "2012": {"train": ["2012_000101"], "val": ["2012_000102", "2012_000103"],
             "test": ["2012_000103"]},
}


def _run_prepare(dataset, data_dir, extract):
  """``prepare`` with ``download_and_extract`` answering from the fixture folders."""
  def download_and_extract(self, url_or_urls):
    del self
    return {k: extract(v) for k, v in url_or_urls.items()}
  with mock.patch.object(tfds.download.DownloadManager, "download_and_extract",
                         download_and_extract):
    return tfds_prepare.prepare(dataset, data_dir)


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
  """(data_dir, fixture root): VOC 2007 and 2012 in VOCdevkit layout, prepared by TFDS."""
  tfds.disable_progress_bar()
  root = str(tmp_path_factory.mktemp("voc_download"))
  for year, images in (("2007", VOC07), ("2012", VOC12)):
    data_fixtures.write_voc(os.path.join(root, "VOCdevkit", f"VOC{year}"), images,
                            VOC_SPLITS[year])
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  folders = _run_prepare("voc", data_dir, lambda url: root)
  assert [os.path.basename(os.path.dirname(f)) for f in folders] == ["2007", "2012"]
  return data_dir, root


def _expected(images, name):
  """(pixel boxes, class names, difficult) of a fixture image from its file name."""
  objects = images[os.path.splitext(os.path.basename(name))[0]]["objects"]
  return (np.array([o[2] for o in objects], np.float64).reshape(-1, 4), [o[0] for o in objects],
          [o[1] for o in objects])


def test_voc_07_12_trainval_concatenated_with_exact_boxes(voc):
  data_dir, _ = voc
  ds = tfds_datasets.VocDataset(path=data_dir, split="train", max_boxes=4)
  assert len(ds) == 3 + 3 and len(ds.class_names) == 20 and ds.category_ids == list(range(20))
  names = [ds.image_name(i) for i in range(len(ds))]
  assert sorted(os.path.basename(n)[:-4] for n in names) == sorted(
      VOC_SPLITS["2007"]["train"] + VOC_SPLITS["2007"]["val"]
      + VOC_SPLITS["2012"]["train"] + VOC_SPLITS["2012"]["val"])
  assert all(n.startswith("voc/2007/") for n in names[:3])
  assert all(n.startswith("voc/2012/") for n in names[3:])
  for index, name in enumerate(names):
    boxes, labels, difficult = ds.ground_truth(index)
    want_boxes, want_names, want_difficult = _expected({**VOC07, **VOC12}, name)
    np.testing.assert_array_equal(boxes, want_boxes)  # the XML's numbers, exactly
    assert [ds.class_names[c] for c in labels] == want_names
    assert difficult.tolist() == want_difficult
  assert ds.stats == dict(skipped_images=0, dropped_boxes=0, fixed_boxes=0, truncated=0)


def test_voc07_trains_on_2007_trainval_alone(voc):
  """dataset.name=voc07 (the paper's "VOC 07" rows): the 2007 examples of voc, same boxes."""
  data_dir, _ = voc
  ds = tfds_datasets.Voc07Dataset(path=data_dir, split="train", max_boxes=4)
  both = tfds_datasets.VocDataset(path=data_dir, split="train", max_boxes=4)
  names = [ds.image_name(i) for i in range(len(ds))]
  assert names == [both.image_name(i) for i in range(3)]      # 07 train + val, in that order
  assert sorted(os.path.basename(n)[:-4] for n in names) == sorted(
      VOC_SPLITS["2007"]["train"] + VOC_SPLITS["2007"]["val"])
  for index in range(len(ds)):
    for a, b in zip(ds.ground_truth(index), both.ground_truth(index)):
      np.testing.assert_array_equal(a, b)                     # difficult flags included
  evals = tfds_datasets.Voc07Dataset(path=data_dir, split="eval", max_boxes=4)
  assert len(evals) == 3


def test_voc_eval_is_07_test_and_matches_the_folder_reader(voc):
  data_dir, root = voc
  ds = tfds_datasets.VocDataset(path=data_dir, split="eval", max_boxes=4)
  folder = voc_folder.VocFolderDataset(path=os.path.join(root, "VOCdevkit", "VOC2007"),
                                       split="test", max_boxes=4, class_names=ds.class_names)
  assert len(ds) == len(folder) == 3
  by_name = {folder.image_name(i): i for i in range(len(folder))}
  for index in range(len(ds)):
    other = by_name[os.path.basename(ds.image_name(index))]
    for a, b in zip(ds.ground_truth(index), folder.ground_truth(other)):
      np.testing.assert_array_equal(a, b)
    batch, ref = ds.batch([index], image_size=32), folder.batch([other], image_size=32)
    for key in ("boxes", "labels", "mask", "difficult", "orig_hw"):
      np.testing.assert_allclose(batch[key], ref[key], atol=1e-6, err_msg=key)
    np.testing.assert_array_equal(batch["image"], ref["image"])  # same bytes, same decode
    assert batch["image_id"].tolist() == [index]


def test_voc_boxes_wh_reads_annotations(voc):
  data_dir, _ = voc
  ds = tfds_datasets.VocDataset(path=data_dir, split="train", max_boxes=4)
  expected = []
  for index in range(len(ds)):
    boxes, _, difficult = ds.ground_truth(index)
    h, w = ds.batch([index], image_size=8)["orig_hw"][0]
    expected.append((boxes[~difficult, 2:] - boxes[~difficult, :2]) * [64 / w, 64 / h])
  np.testing.assert_allclose(ds.boxes_wh(100, image_size=64), np.concatenate(expected), 1e-5)


COCO_IMAGES = {  # image id -> (file, h, w, [(category id, xywh, iscrowd)])
    397: ("000000000397.jpg", 48, 64, [(1, [4.5, 6.25, 20, 30], 0), (90, [30, 10, 12.75, 8], 0)]),
    12: ("000000000012.jpg", 40, 40, [(5, [0, 0, 40, 40], 1)]),
    5000: ("000000005000.jpg", 30, 50, []),
}


def _coco_json(images, with_annotations=True):
  anns = [{"id": len(images) * 10 + i * 3 + j, "image_id": image_id, "category_id": cid,
           "bbox": xywh, "iscrowd": crowd, "area": float(xywh[2] * xywh[3]) - 1.0}
          for i, (image_id, (_, _, _, objs)) in enumerate(images.items())
          for j, (cid, xywh, crowd) in enumerate(objs)]
  data = {"images": [{"id": k, "file_name": f, "height": h, "width": w}
                     for k, (f, h, w, _) in images.items()],
          "categories": [{"id": i, "name": n, "supercategory": "x"}
                         for i, n in coco_categories.COCO_CATEGORIES]}
  if with_annotations:
    data["annotations"] = anns
  return data


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
  """data_dir of coco/2017 prepared by TFDS from a fixture in the official zip layouts."""
  tfds.disable_progress_bar()
  root = str(tmp_path_factory.mktemp("coco_download"))
  folders = {}
  for split, images_dir in (("train", "train2017"), ("validation", "val2017")):
    folders[f"{split}_images"] = os.path.join(root, f"{split}_images")
    for _, (name, h, w, objs) in COCO_IMAGES.items():
      boxes = [(x, y, x + bw, y + bh) for _, (x, y, bw, bh), _ in objs]
      data_fixtures.write_image(os.path.join(root, f"{split}_images", images_dir, name), h, w,
                                boxes)
    folders[f"{split}_annotations"] = os.path.join(root, "trainval_annotations")
    data_fixtures.write_json(os.path.join(root, "trainval_annotations", "annotations",
                                          f"instances_{images_dir}.json"), _coco_json(COCO_IMAGES))
  folders["test_images"] = os.path.join(root, "test_images")
  folders["test_annotations"] = os.path.join(root, "test_annotations")
  test_images = {1: ("000000000001.jpg", 20, 20, [])}
  data_fixtures.write_image(os.path.join(root, "test_images", "test2017", "000000000001.jpg"),
                            20, 20)
  data_fixtures.write_json(os.path.join(root, "test_annotations", "annotations",
                                        "image_info_test2017.json"),
                           _coco_json(test_images, with_annotations=False))
  by_url = {}

  def extract(url):
    # URLs end in zips/<images>.zip or annotations/<name>.zip; map them back to the keys.
    stem = os.path.basename(url)[:-4]
    key = by_url.get(stem)
    return folders[key]
  by_url.update({"train2017": "train_images", "val2017": "validation_images",
                 "test2017": "test_images", "annotations_trainval2017": "train_annotations",
                 "image_info_test2017": "test_annotations"})
  data_dir = str(tmp_path_factory.mktemp("tfds_coco"))
  _run_prepare("coco", data_dir, extract)
  return data_dir


def test_coco_category_ids_round_trip(coco):
  ds = tfds_datasets.CocoDataset(path=coco, split="train", max_boxes=4)
  assert ds.category_ids == [i for i, _ in coco_categories.COCO_CATEGORIES]
  assert ds.class_names == [n for _, n in coco_categories.COCO_CATEGORIES]
  by_id = {int(ds.batch([i], image_size=8)["image_id"][0]): i for i in range(len(ds))}
  assert sorted(by_id) == [12, 397, 5000]
  for image_id, (name, h, w, objs) in COCO_IMAGES.items():
    index = by_id[image_id]
    boxes, labels, difficult = ds.ground_truth(index)
    assert ds.image_name(index) == f"coco/2017/{name}"
    assert [ds.category_ids[c] for c in labels] == [cid for cid, _, _ in objs]  # 1, 90 / 5
    want = [[x, y, x + bw, y + bh] for _, (x, y, bw, bh), _ in objs]
    np.testing.assert_allclose(boxes.reshape(-1, 4), np.reshape(want, (-1, 4)), atol=1e-9)
    assert difficult.tolist() == [bool(c) for _, _, c in objs]  # iscrowd -> difficult
    np.testing.assert_allclose(ds.ground_truth_areas(index), [bw * bh - 1.0 for _, (_, _, bw, bh), _ in objs])
    out = ds.batch([index], image_size=16)
    assert out["orig_hw"].tolist() == [[h, w]] and out["mask"].sum() == len(objs)
  assert len(tfds_datasets.CocoDataset(path=coco, split="eval", max_boxes=4)) == 3


def test_coco_names_not_in_the_official_list_are_refused():
  with pytest.raises(ValueError, match="not COCO category names"):
    coco_categories.category_ids_for(["person", "unicorn"])
  assert coco_categories.category_ids_for(["person", "airplane", "toothbrush"]) == [1, 5, 90]
  assert len(coco_categories.COCO_CATEGORIES) == 80


def test_unprepared_dataset_says_what_to_run(tmp_path):
  empty = str(tmp_path / "empty")
  with pytest.raises(detection.DataNotFoundError,
                     match=r"voc/2007 for dataset.name=voc is not prepared(.|\n)*"
                           r"python -m anchor_jax.prepare --dataset=voc --data_dir="):
    tfds_datasets.VocDataset(path=empty, split="train", max_boxes=4)
  with pytest.raises(detection.DataNotFoundError, match=r"internet(.|\n)*--dataset=coco"):
    tfds_datasets.CocoDataset(path=empty, split="eval", max_boxes=4)


def test_prepare_cli_reports_errors_without_traceback(tmp_path, capsys):
  code = prepare.run(["--dataset=brainwash", f"--data_dir={tmp_path}"])
  assert code == 2
  assert "purl.stanford.edu" in capsys.readouterr().err


def test_tfrecord_preparation_is_refused_with_the_fix(tmp_path):
  """Random access needs array_record; a tfrecord copy (TFDS's default) gets a clear error."""
  from anchor_jax.data import brainwash_builder
  from tests.data.test_brainwash import write_manual
  manual = str(tmp_path / "manual")
  write_manual(manual)
  brainwash_builder.Brainwash(data_dir=str(tmp_path)).download_and_prepare(
      file_format="tfrecord", download_config=tfds.download.DownloadConfig(manual_dir=manual))
  with pytest.raises(detection.DataNotFoundError,
                     match=r"prepared as tfrecord, not array_record(.|\n)*delete .*brainwash/1\.0\.0"):
    tfds_datasets.BrainwashDataset(path=str(tmp_path), split="train", max_boxes=4)
