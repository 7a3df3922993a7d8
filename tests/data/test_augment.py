"""Tests of darknet-style augmentation: geometry, flip, HSV, determinism, multi-scale."""
import colorsys

import ml_collections
import numpy as np
import pytest
from PIL import Image

from anchor_jax.data import augment as aug
from anchor_jax.data import image_io

NO_COLOUR = aug.AugmentConfig(hue=0.0, saturation=1.0, exposure=1.0)
BACKGROUND, FILL = (0, 0, 255), (128, 128, 128)
OBJECT_COLOURS = ((255, 0, 0), (0, 255, 0))


def _scene(rng, width=120, height=90):
  """Two disjoint filled rectangles on a blue background; one often touches an edge."""
  image = np.empty((height, width, 3), np.uint8)
  image[...] = BACKGROUND
  x_split = int(rng.integers(width // 3, 2 * width // 3))
  boxes = []
  for colour, (lo, hi) in zip(OBJECT_COLOURS, ((0, x_split - 1), (x_split + 1, width))):
    x0 = int(rng.integers(lo, hi - 4))
    x1 = int(rng.integers(x0 + 3, min(hi, x0 + 60) + 1))
    y0 = int(rng.integers(0, height - 4))
    y1 = int(rng.integers(y0 + 3, min(height, y0 + 60) + 1))
    image[y0:y1, x0:x1] = colour
    boxes.append([x0, y0, x1, y1])
  return image, np.asarray(boxes, np.float64)


def _colour_bbox(image, colour_index):
  """Pixel-edge bounding box of pixels nearest to OBJECT_COLOURS[colour_index] (else None)."""
  palette = np.asarray(OBJECT_COLOURS + (BACKGROUND, FILL))          # [4, 3]
  nearest = np.argmin(((image[:, :, None, :].astype(int) - palette) ** 2).sum(-1), -1)
  ys, xs = np.nonzero(nearest == colour_index)
  if not len(xs):
    return None
  return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


@pytest.mark.parametrize("out_size", [48, 160])             # shrinking and enlarging
def test_boxes_stay_on_their_objects(out_size):
  rng = np.random.default_rng(0)
  kept = dropped = 0
  for seed in range(60):
    image, boxes = _scene(rng)
    out, out_boxes, labels, keep = aug.augment(image, boxes, [0, 1], out_size=out_size,
                                               seed=seed, cfg=NO_COLOUR)
    np.testing.assert_array_equal(labels, keep)
    for i in range(2):
      seen = _colour_bbox(out, i)
      if i in keep:
        kept += 1
        assert seen is not None, (seed, i)
        np.testing.assert_allclose(seen, out_boxes[list(keep).index(i)], atol=1.0,
                                   err_msg=f"seed {seed} object {i}")
      else:                         # dropped only when (almost) nothing is left
        dropped += 1
        assert seen is None or min(seen[2:] - seen[:2]) <= NO_COLOUR.min_box_px + 1, seed
  assert kept > 60 and dropped > 0   # the check did look at many boxes, and at drops


def test_flip_twice_is_identity():
  boxes = np.array([[0.0, 1.0, 3.5, 7.25], [10.125, 2.0, 416.0, 9.0]], np.float32)
  np.testing.assert_array_equal(aug.flip_boxes(aug.flip_boxes(boxes, 416), 416), boxes)
  np.testing.assert_array_equal(aug.flip_boxes(boxes, 416)[0], [412.5, 1.0, 416.0, 7.25])
  image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
  np.testing.assert_array_equal(image[:, ::-1][:, ::-1], image)


def test_flip_mirrors_image_and_boxes():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (50, 80, 3), dtype=np.uint8)
  boxes, labels = np.array([[5.0, 6.0, 30.0, 40.0]]), np.array([4])
  params = aug.AugmentParams(window=(-6.0, 3.0, 70.0, 55.0), flip=False, hue=0.05,
                             saturation=1.2, exposure=0.9)
  plain = aug.apply_params(image, boxes, labels, params, out_size=64, cfg=aug.AugmentConfig())
  flipped = aug.apply_params(image, boxes, labels, aug.AugmentParams(
      **{**params.__dict__, "flip": True}), out_size=64, cfg=aug.AugmentConfig())
  np.testing.assert_array_equal(flipped[0], plain[0][:, ::-1])
  np.testing.assert_array_equal(flipped[1], aug.flip_boxes(plain[1], 64))


@pytest.mark.parametrize("height,width,out_size", [(75, 100, 64), (90, 60, 160), (1, 3, 32)])
def test_identity_equals_the_eval_resize(height, width, out_size):
  rng = np.random.default_rng(2)
  image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  boxes = np.array([[0.0, 0.0, width, height], [0.5, 0.25, width / 2, height / 3]])
  out, out_boxes, _, keep = aug.augment(image, boxes, [1, 2], out_size=out_size, seed=3,
                                        cfg=aug.AugmentConfig.identity(min_box_px=0.0))
  np.testing.assert_array_equal(out, image_io.resize_square(image, out_size))
  np.testing.assert_array_equal(keep, [0, 1])
  scale = np.array([out_size / width, out_size / height] * 2)
  np.testing.assert_allclose(out_boxes, (boxes * scale).astype(np.float32), rtol=1e-6)


def _hsv_reference(rgb, hue, saturation, exposure):
  """colorsys on one pixel, S and V scaled without clipping, RGB clipped (darknet)."""
  h, s, v = colorsys.rgb_to_hsv(*(np.asarray(rgb) / 255.0))
  out = colorsys.hsv_to_rgb((h + hue) % 1.0, s * saturation, v * exposure)
  return np.rint(np.clip(out, 0, 1) * 255)


@pytest.mark.parametrize("exposure", [1 / 1.5, 0.8, 1.3, 1.5])
def test_exposure_scales_grey_value(exposure):
  grey = np.repeat(np.arange(0, 256, 5, dtype=np.uint8), 3).reshape(1, -1, 3)
  out = aug.distort_hsv(grey, hue=0.08, saturation=1.4, exposure=exposure)  # no hue/sat on grey
  expected = np.clip(np.rint(grey.astype(np.float64) * exposure), 0, 255)
  np.testing.assert_allclose(out, expected, atol=1)
  assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


@pytest.mark.parametrize("hue", [0.1, -0.1, 1 / 6, 0.5, -0.37])
def test_hue_shift_on_pure_colour(hue):
  for colour in ((255, 0, 0), (0, 200, 0), (40, 40, 220)):
    image = np.empty((2, 3, 3), np.uint8)
    image[...] = colour
    out = aug.distort_hsv(image, hue=hue, saturation=1.0, exposure=1.0)
    h_in = colorsys.rgb_to_hsv(*(np.asarray(colour) / 255))[0]
    h_out = colorsys.rgb_to_hsv(*(out[0, 0] / 255))[0]
    assert abs(((h_out - h_in - hue) + 0.5) % 1.0 - 0.5) < 0.01, (colour, out[0, 0])
    np.testing.assert_allclose(out[0, 0], _hsv_reference(colour, hue, 1, 1), atol=1)
  red = np.full((1, 1, 3), (255, 0, 0), np.uint8)                  # hand-computed: 1/6 = yellow
  np.testing.assert_array_equal(aug.distort_hsv(red, hue=1 / 6, saturation=1, exposure=1),
                                [[[255, 255, 0]]])


def test_hsv_matches_colorsys_on_random_pixels():
  rng = np.random.default_rng(4)
  image = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
  for hue, sat, exp in [(0.07, 1.3, 0.8), (-0.1, 1 / 1.5, 1.5), (0.0, 1.4, 0.7), (0.3, 1, 1)]:
    out = aug.distort_hsv(image, hue=hue, saturation=sat, exposure=exp)
    expected = np.array([[_hsv_reference(p, hue, sat, exp) for p in row] for row in image])
    np.testing.assert_allclose(out, expected, atol=1, err_msg=str((hue, sat, exp)))


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (64, 64)])
def test_fast_hsv_equals_the_exact_reference(shape):
  """distort_hsv (float32 hexcone identity) against distort_hsv_exact (darknet's formulas
  in float64) on random pixels plus greys, pure colours and ties, for draws across the
  knob ranges: at most 1 uint8 level (float32 rounding at a .5), on under 0.1 % of values
  for random draws; round draws (f*k = 1 exactly) put many values on .5 ties, so only the
  1-level bound holds for them."""
  rng = np.random.default_rng(7)
  image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
  special = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                      [255, 255, 0], [7, 7, 200], [200, 7, 7], [128, 128, 127]], np.uint8)
  flat = image.reshape(-1, 3)
  flat[:len(special)] = special[:len(flat)]
  draws = [(0.0, 1.0, 1.0), (0.0, 1.5, 1 / 1.5), (0.0, 1 / 1.5, 1.5), (0.5, 1.0, 1.0),
           (-0.5, 1.5, 1.5), (1 / 6, 1.0, 1.0)]
  random = [tuple(rng.uniform([-0.5, 1 / 1.5, 1 / 1.5], [0.5, 1.5, 1.5])) for _ in range(12)]
  random += [(0.0, *rng.uniform([1 / 1.5, 1 / 1.5], [1.5, 1.5])) for _ in range(4)]
  for hue, sat, exp in draws + random:
    fast = aug.distort_hsv(image, hue=hue, saturation=sat, exposure=exp)
    exact = aug.distort_hsv_exact(image, hue=hue, saturation=sat, exposure=exp)
    diff = np.abs(fast.astype(int) - exact)
    assert diff.max() <= 1, (hue, sat, exp)
    if (hue, sat, exp) in random:
      assert (diff > 0).mean() < 1e-3, (hue, sat, exp)
    np.testing.assert_array_equal(fast.reshape(-1, 3)[:len(special)],
                                  exact.reshape(-1, 3)[:len(special)])
    assert fast.flags.c_contiguous and fast.flags.writeable


def test_augment_takes_pil_images_and_writes_into_out():
  """A PIL image (image_io.decode_image) gives the array's result; ``out`` receives it (a
  flipped draw included), the input is left as it was."""
  rng = np.random.default_rng(8)
  image = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
  original = image.copy()
  boxes, cfg = np.array([[5.0, 6.0, 50.0, 40.0]]), aug.AugmentConfig()
  flips = set()
  for seed in range(8):
    flips.add(aug.sample_params(np.random.default_rng(seed), 70, 45, cfg).flip)
    from_array = aug.augment(image, boxes, [3], out_size=48, seed=seed, cfg=cfg)
    out = np.zeros((48, 48, 3), np.uint8)
    from_pil = aug.augment(Image.fromarray(image), boxes, [3], out_size=48, seed=seed,
                           cfg=cfg, out=out)
    assert from_pil[0] is out
    for a, b in zip(from_array, from_pil):
      np.testing.assert_array_equal(a, b)
  assert flips == {True, False}
  np.testing.assert_array_equal(image, original)
  with pytest.raises(ValueError, match="out must be"):
    aug.augment(image, boxes, [3], out_size=48, seed=0, cfg=cfg, out=np.zeros((48, 47, 3), np.uint8))
  with pytest.raises(ValueError, match="RGB image"):
    aug.augment(Image.new("L", (8, 8)), boxes, [3], out_size=48, seed=0, cfg=cfg)


def test_augment_applies_drawn_colour():
  colour = (200, 80, 30)
  image = np.empty((40, 50, 3), np.uint8)
  image[...] = colour
  cfg = aug.AugmentConfig(jitter=0.0)
  for seed in range(5):
    params = aug.sample_params(np.random.default_rng(seed), 50, 40, cfg)
    out = aug.augment(image, np.zeros((0, 4)), [], out_size=32, seed=seed, cfg=cfg)[0]
    expected = _hsv_reference(colour, params.hue, params.saturation, params.exposure)
    np.testing.assert_allclose(out.reshape(-1, 3), np.broadcast_to(expected, (32 * 32, 3)),
                               atol=1)


def test_sampled_ranges_follow_darknet():
  cfg = aug.AugmentConfig()
  draws = [aug.sample_params(np.random.default_rng(s), 100, 50, cfg) for s in range(400)]
  hues = np.array([p.hue for p in draws])
  assert np.abs(hues).max() <= cfg.hue and hues.min() < -0.08 and hues.max() > 0.08
  for name, s in (("saturation", cfg.saturation), ("exposure", cfg.exposure)):
    f = np.array([getattr(p, name) for p in draws])
    assert f.min() >= 1 / s and f.max() <= s and (f < 1).mean() == pytest.approx(0.5, abs=0.1)
  windows = np.array([p.window for p in draws])                   # [400, 4]
  jitter = np.abs(windows - [0, 0, 100, 50]) / [100, 50, 100, 50]
  assert jitter.max() <= cfg.jitter and jitter.max() > 0.19
  assert np.mean([p.flip for p in draws]) == pytest.approx(0.5, abs=0.1)


def test_deterministic_by_seed():
  rng = np.random.default_rng(5)
  image = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
  boxes = np.array([[10.0, 10.0, 50.0, 40.0]])
  cfg = aug.AugmentConfig()

  def run(seed):
    return aug.augment(image, boxes, [7], out_size=64, seed=seed, cfg=cfg)
  for a, b in zip(run(11), run(11)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(run([3, 0, 11]), run([3, 0, 11])):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(run(11)[0], run(12)[0])
  assert not np.array_equal(run([3, 0, 11])[0], run([3, 1, 11])[0])


def test_degenerate_boxes_dropped_and_keep_index():
  image = np.zeros((100, 100, 3), np.uint8)
  boxes = np.array([
      [10, 10, 40, 40],             # 0 kept
      [20, 20, 20, 50],             # 1 zero width
      [50, 50, 30, 70],             # 2 inverted
      [np.nan, 0, 10, 10],          # 3 not finite
      [120, 10, 150, 40],           # 4 outside the image
      [60, 60, 61, 80],             # 5 narrower than min_box_px (2)
      [-30, 70, 20, 130],           # 6 partly outside: kept, clipped to the image
      [0, 0, 100, 100],             # 7 kept
  ], np.float64)
  labels = np.arange(8) * 10
  out, out_boxes, out_labels, keep = aug.augment(
      image, boxes, labels, out_size=100, seed=0, cfg=aug.AugmentConfig.identity())
  np.testing.assert_array_equal(keep, [0, 6, 7])
  np.testing.assert_array_equal(out_labels, [0, 60, 70])
  np.testing.assert_allclose(out_boxes, [[10, 10, 40, 40], [0, 70, 20, 100], [0, 0, 100, 100]])
  assert out_boxes.dtype == np.float32 and out.shape == (100, 100, 3)


def test_min_visible_and_padding():
  image = np.full((100, 200, 3), 90, np.uint8)
  boxes = np.array([[50.0, 0.0, 150.0, 100.0]])                   # half inside the window
  params = aug.AugmentParams(window=(100.0, -50.0, 200.0, 100.0), flip=False, hue=0.0,
                             saturation=1.0, exposure=1.0)        # top 50 rows padded
  for min_visible, expect_kept in ((0.6, False), (0.4, True)):
    cfg = aug.AugmentConfig(min_visible=min_visible)
    out, out_boxes, _, keep = aug.apply_params(image, boxes, [1], params, out_size=100, cfg=cfg)
    assert (len(keep) == 1) == expect_kept
  np.testing.assert_allclose(out_boxes, [[0, 33 + 1 / 3, 50, 100]], atol=1e-4)
  assert (out[:32] == 128).all() and (out[35:] == 90).all()       # fill 0.5 -> 128
  edge = aug.apply_params(image, boxes, [1], params, out_size=100,
                          cfg=aug.AugmentConfig(pad_mode="edge"))[0]
  assert (edge == 90).all()                                        # border pixels repeated


def test_no_boxes_and_bad_inputs():
  rng = np.random.default_rng(6)
  rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
  cfg = aug.AugmentConfig()
  for image in (rgb, np.zeros((1, 1, 3), np.uint8)):
    for seed in range(4):
      for boxes, labels in ((np.zeros((0, 4)), np.zeros(0, np.int32)), ([], []),
                            (np.array([[-5.0, -5.0, 2.0, 1.0]]), np.array([1]))):
        out, out_boxes, out_labels, keep = aug.augment(image, boxes, labels, out_size=32,
                                                       seed=seed, cfg=cfg)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and out.flags.writeable
        assert out_boxes.shape == (len(keep), 4) and out_labels.shape == keep.shape
        if image is rgb and len(labels):
          # (-5, -5, 2, 1) clipped to the 40 x 30 image is (0, 0, 2, 1): at most
          # 1 / (0.6 * 30) * 32 < 2 output px high (min_box_px) at any crop, so dropped.
          assert len(keep) == 0
  with pytest.raises(ValueError, match="labels"):
    aug.augment(rgb, [[0, 0, 5, 5]], [1, 2], out_size=32, seed=0, cfg=cfg)
  for bad in (rgb.astype(np.float32), rgb[..., 0], np.concatenate([rgb, rgb[..., :1]], -1)):
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
      aug.augment(bad, [], [], out_size=32, seed=0, cfg=cfg)


def test_config_from_configdict():
  config = ml_collections.ConfigDict({"jitter": 0.3, "flip": False, "hue": 0.05})
  cfg = aug.AugmentConfig.from_config(config)
  assert (cfg.jitter, cfg.flip, cfg.hue, cfg.saturation) == (0.3, False, 0.05, 1.5)
  assert aug.AugmentConfig.from_config(None) == aug.AugmentConfig()
  with pytest.raises(ValueError, match="jiter"):
    aug.AugmentConfig.from_config(ml_collections.ConfigDict({"jiter": 0.3}))
  for bad in ({"jitter": 0.5}, {"saturation": 0.9}, {"pad_mode": "wrap"}, {"resample": "x"}):
    with pytest.raises(ValueError):
      aug.AugmentConfig(**bad)


SIZES = tuple(range(320, 609, 32))


def test_multiscale_size():
  sizes = [aug.multiscale_size(s, sizes=SIZES, every=10, seed=0) for s in range(2000)]
  blocks = np.array(sizes).reshape(200, 10)
  assert (blocks == blocks[:, :1]).all()                            # constant within a block
  assert set(sizes) == set(SIZES)                                   # all occur, nothing else
  assert sizes == [aug.multiscale_size(s, sizes=SIZES, every=10, seed=0) for s in range(2000)]
  other = [aug.multiscale_size(s, sizes=SIZES, every=10, seed=1) for s in range(0, 2000, 10)]
  assert other != list(blocks[:, 0])
  assert aug.multiscale_size(7, sizes=(416,), every=1, seed=3) == 416
  for bad in ((), (320, 330), (0,)):
    with pytest.raises(ValueError):
      aug.multiscale_size(0, sizes=bad, every=10, seed=0)
  with pytest.raises(ValueError):
    aug.multiscale_size(0, sizes=SIZES, every=0, seed=0)


def test_native_scale_crops_keep_pixel_sizes():
  """crop_px (the paper's Brainwash recipe): a whole-pixel 32 x 32 window of the source,
  at 32 px out: pixels and box sizes as they are, boxes shifted by the window."""
  rng = np.random.default_rng(11)
  image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)       # H 48, W 64
  boxes = np.array([[20.0, 10.0, 30.0, 22.0]])
  cfg = aug.AugmentConfig(jitter=0.0, crop_px=32, flip=False, hue=0.0, saturation=1.0,
                          exposure=1.0, min_box_px=0.0)
  corners = set()
  for seed in range(40):
    params = aug.sample_params(np.random.default_rng(seed), 64, 48, cfg)
    x0, y0, x1, y1 = params.window
    assert (x1 - x0, y1 - y0) == (32, 32) and x0 == int(x0) and y0 == int(y0)
    assert 0 <= x0 <= 32 and 0 <= y0 <= 16
    corners.add((x0, y0))
    out, out_boxes, _, keep = aug.apply_params(image, boxes, [0], params, out_size=32, cfg=cfg)
    np.testing.assert_array_equal(out, image[int(y0):int(y0) + 32, int(x0):int(x0) + 32])
    if len(keep):
      clipped = np.clip(boxes[0] - [x0, y0, x0, y0], 0, 32)
      np.testing.assert_allclose(out_boxes[0], clipped, atol=1e-5)
  assert len(corners) > 20                       # positions spread over the frame
  with pytest.raises(ValueError, match="jitter=0"):
    aug.AugmentConfig(crop_px=32, jitter=0.2)
  small = aug.sample_params(np.random.default_rng(0), 20, 10, cfg).window   # image < crop
  assert -12 <= small[0] <= 0 and -22 <= small[1] <= 0 and small[2] - small[0] == 32
