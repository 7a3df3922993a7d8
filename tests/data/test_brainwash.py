"""Brainwash: the IDL parser, our manual-download TFDS builder and the dataset reading it."""
import os

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from anchor_jax.data import brainwash, detection, tfds_datasets, tfds_prepare  # noqa: E402
from anchor_jax.tools import prepare  # noqa: E402
from tests import data_fixtures  # noqa: E402

H, W = 48, 64  # fixture frames (the real ones are 480 x 640)
FOLDER = "brainwash_10_27_2014_images"
# split -> [(image file, [(x1, y1, x2, y2) as written in the IDL])]
SPLITS = {
    "train": [("00000000_640x480.png", [(1.0, 2.0, 11.0, 12.5), (20.0, 5.0, 30.0, 15.0)]),
              ("00000001_640x480.png", []),
              ("00000002_640x480.png", [(40.0, 30.0, 50.0, 40.0)]),
              ("00000003_640x480.png", [(30.0, 20.0, 22.0, 10.0),   # corners reversed
                                        (58.0, 40.0, 70.0, 52.0)])],  # past the corner: clipped
    "val": [("00000010_640x480.png", [(3.0, 3.0, 9.0, 9.0)])],
    "test": [("00000020_640x480.png", [(5.0, 6.0, 15.0, 16.0), (16.0, 6.0, 26.0, 16.0),
                                        (27.0, 6.0, 37.0, 16.0)]),
             ("00000021_640x480.png", [])],
}
# What the builder stores for the two fixed boxes above.
CLEANED = {(30.0, 20.0, 22.0, 10.0): (22.0, 10.0, 30.0, 20.0),
           (58.0, 40.0, 70.0, 52.0): (58.0, 40.0, 64.0, 48.0)}


def idl_text(entries) -> str:
  lines = []
  for name, boxes in entries:
    rects = ", ".join(f"({x1}, {y1}, {x2}, {y2})" for x1, y1, x2, y2 in boxes)
    lines.append(f'"{FOLDER}/{name}"' + (f": {rects}" if rects else "") + ";")
  lines[-1] = lines[-1][:-1] + "."  # IDL ends its last line with a full stop
  return "\n".join(lines) + "\n"


def write_manual(manual_dir):
  root = os.path.join(manual_dir, brainwash.MANUAL_SUBDIR)
  for split, entries in SPLITS.items():
    for name, boxes in entries:
      data_fixtures.write_image(os.path.join(root, FOLDER, name), H, W, boxes, fmt="PNG")
    with open(os.path.join(root, f"brainwash_{split}.idl"), "w") as f:
      f.write(idl_text(entries))
  return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  tfds.disable_progress_bar()
  data_dir = str(tmp_path_factory.mktemp("tfds_bw"))
  write_manual(os.path.join(data_dir, "downloads", "manual"))  # the default manual_dir
  folders = tfds_prepare.prepare("brainwash", data_dir)
  assert folders == [os.path.join(data_dir, "brainwash", "1.0.0")]
  return data_dir


def test_parse_idl_lines():
  parse = brainwash.parse_idl_line
  path, boxes = parse('"a/b.png": (1.0, 2.0, 3.0, 4.0), (5, 6, 7, 8);\n')
  assert path == "a/b.png"
  np.testing.assert_array_equal(boxes, [[1, 2, 3, 4], [5, 6, 7, 8]])
  path, boxes = parse('"a/c.png";')
  assert path == "a/c.png" and boxes.shape == (0, 4)
  _, boxes = parse('"a/d.png": (1, 2, 3, 4):0.9/7, (-1.5, 2, 3e1, 4).')  # score/id suffixes
  np.testing.assert_array_equal(boxes, [[1, 2, 3, 4], [-1.5, 2, 30, 4]])
  assert parse("   \n") is None
  with pytest.raises(ValueError):
    parse("no quotes here")
  with pytest.raises(ValueError):
    parse('"a.png": (1, 2, 3)')


def test_builder_keeps_split_sizes_and_idl_boxes(data_dir):
  for split, tfds_split in (("train", "train"), ("val", "validation"), ("test", "test")):
    ds = tfds_datasets.BrainwashDataset(path=data_dir, split=tfds_split, max_boxes=8)
    assert len(ds) == len(SPLITS[split]) and ds.class_names == ["head"]
    expected = {f"{FOLDER}/{name}": boxes for name, boxes in SPLITS[split]}
    total = 0
    for index in range(len(ds)):
      name = ds.image_name(index)
      assert name.startswith("brainwash/")
      boxes, labels, difficult = ds.ground_truth(index)
      want = [CLEANED.get(b, b) for b in expected[name[len("brainwash/"):]]]
      np.testing.assert_array_equal(boxes, np.reshape(want, (-1, 4)))
      assert not labels.any() and not difficult.any()
      total += len(boxes)
    assert total == sum(len(b) for _, b in SPLITS[split])


def test_batches_eval_and_truncation(data_dir):
  ds = tfds_datasets.BrainwashDataset(path=data_dir, split="eval", max_boxes=2)  # eval = test
  by_name = {ds.image_name(i): i for i in range(len(ds))}
  index = by_name[f"brainwash/{FOLDER}/00000020_640x480.png"]
  out = ds.batch([index, index], image_size=32)
  assert ds.stats["truncated"] == 2 and out["mask"].all()
  assert out["orig_hw"].tolist() == [[H, W]] * 2
  np.testing.assert_allclose(out["boxes"][0], [[5 / W, 6 / H, 15 / W, 16 / H],
                                               [16 / W, 6 / H, 26 / W, 16 / H]], atol=1e-6)
  wh = ds.boxes_wh(10, image_size=100)
  np.testing.assert_allclose(wh, [[10 / W * 100, 10 / H * 100]] * 3, rtol=1e-5)


def test_missing_manual_download_gives_the_instructions(tmp_path):
  with pytest.raises(detection.DataNotFoundError,
                     match=r"(?s)Brainwash files not found.*purl\.stanford\.edu.*"
                           r"brainwash_train\.idl"):
    tfds_prepare.prepare("brainwash", str(tmp_path))
  with pytest.raises(detection.DataNotFoundError,
                     match=r"(?s)brainwash is not prepared.*brainwash_test\.idl.*"
                           r"python -m anchor_jax\.prepare --dataset=brainwash"):
    tfds_datasets.BrainwashDataset(path=str(tmp_path), split="train", max_boxes=4)


def test_prepare_cli_reuses_a_prepared_dataset(data_dir, capsys):
  assert prepare.run(["--dataset=brainwash", f"--data_dir={data_dir}"]) == 0
  assert capsys.readouterr().out.strip() == f"prepared {data_dir}/brainwash/1.0.0"
