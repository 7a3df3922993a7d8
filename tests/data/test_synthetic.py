"""Tests of the synthetic shapes dataset (data/synthetic.py, data/shapes.py): determinism,
valid and tight boxes under occlusion, presets, boxes_wh."""
import dataclasses

import numpy as np
import pytest

from anchor_jax.data import shapes
from anchor_jax.data.synthetic import PRESETS, SHAPES, SyntheticDataset


def _dataset(preset="mixed", *, image_size=96, max_boxes=24, seed=0, split="train", **kw):
  num_examples = kw.pop("num_examples", 50 if split == "eval" else None)
  return SyntheticDataset(preset=preset, image_size=image_size, max_boxes=max_boxes, seed=seed,
                          split=split, num_examples=num_examples, **kw)


def _boxes_px(example, image_size):
  """[m, 4] integer pixel boxes of the valid slots."""
  return np.rint(example["boxes"][example["mask"]] * image_size).astype(int)


def _background_colour(image):
  """Colour of >= 3 of the 4 corners: objects never span the whole side, so at most one
  corner can be covered."""
  corners = [tuple(image[y, x]) for y in (0, -1) for x in (0, -1)]
  return np.array(max(set(corners), key=corners.count), np.uint8)


def _colour_boxes(image):
  """Tight pixel box of every non-background colour of a clutter-free image (one colour
  per object), sorted."""
  background = _background_colour(image)
  flat = image.reshape(-1, 3)
  colours = np.unique(flat[np.any(flat != background, -1)], axis=0)
  boxes = []
  for colour in colours:
    ys, xs = np.nonzero(np.all(image == colour, -1))
    boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
  return sorted(boxes)


def test_determinism():
  a, b = _dataset(), _dataset()
  ea, eb = a.example(3), b.example(3)
  for key in ("image", "boxes", "labels", "mask"):
    np.testing.assert_array_equal(ea[key], eb[key])
  assert ea["image_id"] == 3
  others = [a.example(4), _dataset(split="eval").example(3), _dataset(seed=1).example(3)]
  for other in others:
    assert not np.array_equal(ea["image"], other["image"])
    assert not np.array_equal(ea["boxes"], other["boxes"])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_boxes_valid(preset):
  ds = _dataset(preset, image_size=128, max_boxes=24)
  lo, hi = PRESETS[preset].num_objects
  for i in range(20):
    e = ds.example(i)
    assert e["image"].shape == (128, 128, 3) and e["image"].dtype == np.uint8
    assert e["boxes"].shape == (24, 4) and e["boxes"].dtype == np.float32
    assert e["labels"].dtype == np.int32 and e["mask"].dtype == bool
    m = int(e["mask"].sum())
    assert lo <= m <= hi
    assert e["mask"][:m].all()  # valid slots first
    np.testing.assert_array_equal(e["boxes"][m:], 0)
    np.testing.assert_array_equal(e["labels"][m:], 0)
    x0, y0, x1, y1 = e["boxes"][:m].T
    assert np.all((0 <= x0) & (x0 < x1) & (x1 <= 1) & (0 <= y0) & (y0 < y1) & (y1 <= 1))
    px = _boxes_px(e, 128)
    np.testing.assert_allclose(px / 128, e["boxes"][:m], atol=1e-6)  # integer pixel edges
    assert np.all(px[:, 2:] - px[:, :2] >= 2)
    assert np.all((0 <= e["labels"][:m]) & (e["labels"][:m] < len(SHAPES)))


def test_max_boxes_caps_the_count():
  ds = _dataset("tiny", max_boxes=3)
  counts = [ds.example(i)["mask"].sum() for i in range(10)]
  assert max(counts) == 3 and all(c <= 3 for c in counts)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_single_object_box_is_tight(preset):
  one = dataclasses.replace(PRESETS[preset], num_objects=(1, 1))
  ds = _dataset(one, image_size=80, clutter=0.0)
  for i in range(15):
    e = ds.example(i)
    assert e["mask"].sum() == 1
    diff = np.any(e["image"] != _background_colour(e["image"]), -1)  # [S, S]
    ys, xs = np.nonzero(diff)
    pixel_box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    np.testing.assert_array_equal(_boxes_px(e, 80)[0], pixel_box)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_boxes_are_tight_on_visible_pixels_with_occlusion(preset):
  """Without clutter each object is one flat colour, so the box of each colour's pixels is
  the box of that object's visible pixels, however others cover it."""
  ds = _dataset(preset, image_size=96, clutter=0.0)
  overlapping_pairs = 0
  for i in range(10):
    e = ds.example(i)
    boxes = _boxes_px(e, 96)
    assert _colour_boxes(e["image"]) == sorted(map(tuple, boxes.tolist()))
    lo, hi = np.maximum(boxes[:, None, :2], boxes[None, :, :2]), np.minimum(
      boxes[:, None, 2:], boxes[None, :, 2:])
    overlapping_pairs += (np.all(hi > lo, -1).sum() - len(boxes)) // 2
  if preset != "tiny":  # tiny objects rarely meet; the others must exercise occlusion
    assert overlapping_pairs > 0


def test_clutter_changes_pixels_not_boxes():
  plain, busy = _dataset(clutter=0.0), _dataset(clutter=1.0)
  for i in range(5):
    a, b = plain.example(i), busy.example(i)
    for key in ("boxes", "labels", "mask"):
      np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], b["image"])
    assert len(np.unique(b["image"].reshape(-1, 3), axis=0)) > 1000  # noise, gradient


@pytest.mark.parametrize("label", range(len(SHAPES)))
def test_every_shape_touches_its_crop(label):
  """A shape's tight box is its crop, for every size and variant (incl. 2 px sides)."""
  for h in (2, 3, 4, 5, 8, 13, 40):
    for w in (2, 3, 4, 7, 16, 41):
      for param in np.linspace(0, 0.999, 8):
        mask = shapes.shape_mask(label, h, w, param)
        assert mask.shape == (h, w)
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()


def test_presets_differ_as_specified():
  """Shape statistics of the visible boxes (occlusion and pixel rounding bend a few, hence
  quantiles rather than hard bounds on aspect)."""
  size = 256
  stats = {}
  for name in PRESETS:
    wh = _dataset(name, image_size=size, max_boxes=64).boxes_wh(80) / size  # [M, 2]
    stats[name] = (wh, np.sqrt(wh.prod(-1)), np.log(wh[:, 0] / wh[:, 1]))
  wh, _, log_aspect = stats["tiny"]
  assert wh.max() < 0.1 and wh.min() > 0.02
  assert np.median(np.abs(log_aspect)) < np.log(1.2)
  assert np.quantile(np.abs(log_aspect), 0.9) < np.log(1.35)
  _, _, log_aspect = stats["wide"]
  assert np.median(log_aspect) > np.log(2.0)  # mostly wide
  assert 0.05 < np.mean(log_aspect < 0) < 0.35  # some tall
  assert np.mean(np.abs(log_aspect) > np.log(1.3)) > 0.95  # (almost) never near-square
  assert np.quantile(np.abs(log_aspect), 0.98) < np.log(6.5)
  assert np.mean(np.abs(log_aspect) > np.log(4)) > 0.1  # extreme ones present
  _, side, log_aspect = stats["mixed"]
  assert np.quantile(side, 0.1) < 0.15 and np.quantile(side, 0.9) > 0.45
  assert np.mean(log_aspect > np.log(1.5)) > 0.1 and np.mean(log_aspect < -np.log(1.5)) > 0.1
  assert np.quantile(np.abs(log_aspect), 0.98) < np.log(3.3)
  counts = {n: len(stats[n][0]) / 80 for n in PRESETS}  # objects per image
  assert counts["tiny"] > 2 * counts["mixed"]


def test_boxes_wh_equals_example_shapes():
  for name in PRESETS:
    train = _dataset(name, image_size=112)
    expected = np.concatenate(
      [(e["boxes"][e["mask"]][:, 2:] - e["boxes"][e["mask"]][:, :2]) * 112
       for e in map(train.example, range(12))])
    np.testing.assert_allclose(train.boxes_wh(12), expected, atol=1e-3)
    # Anchors are fit on the train split whatever split the object was built for.
    np.testing.assert_array_equal(_dataset(name, image_size=112, split="eval").boxes_wh(12),
                                  train.boxes_wh(12))


def test_batch_stacks_examples():
  ds = _dataset()
  batch = ds.batch([2, 5, 7])
  assert batch["image"].shape == (3, 96, 96, 3) and batch["boxes"].shape == (3, 24, 4)
  np.testing.assert_array_equal(batch["image_id"], [2, 5, 7])
  for row, i in enumerate([2, 5, 7]):
    e = ds.example(i)
    for key in ("image", "boxes", "labels", "mask"):
      np.testing.assert_array_equal(batch[key][row], e[key])


def test_num_classes_and_arguments():
  ds = _dataset(num_classes=3)
  assert ds.class_names == list(SHAPES[:3])
  assert max(ds.example(i)["labels"].max() for i in range(10)) <= 2
  assert _dataset().class_names == list(SHAPES)
  assert len(_dataset(split="eval", num_examples=7)) == 7
  with pytest.raises(IndexError):
    _dataset(split="eval", num_examples=7).example(7)
  with pytest.raises(ValueError):
    SyntheticDataset(preset="mixed", image_size=64, max_boxes=4, seed=0, split="eval")
  with pytest.raises(ValueError):
    _dataset("huge")
  with pytest.raises(ValueError):
    _dataset(num_classes=len(SHAPES) + 1)
  unbounded = SyntheticDataset(preset="mixed", image_size=64, max_boxes=4, seed=0, split="train")
  assert unbounded.example(10**9)["mask"].any()
