"""The training stream: disjoint per-process shards, exact epochs, real-data wiring,
and a short end-to-end training run on a VOC-layout folder."""
import json

import numpy as np
import pytest

from anchor_jax import config_lib
from anchor_jax import workdir as workdir_lib
from anchor_jax.data import pipeline as input_pipeline
from anchor_jax.data.detection import DatasetError
from anchor_jax.training import train
from tests import data_fixtures, train_util


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_process_shards_are_disjoint_and_cover_each_epoch(process_count):
  num_examples, global_batch, seed = 48, 8, 3
  steps_per_epoch = num_examples // global_batch
  for epoch in range(2):
    per_process = []
    for p in range(process_count):
      idx = []
      for step in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
        positions = input_pipeline.local_positions(
            step, global_batch=global_batch, process_index=p, process_count=process_count)
        idx += [input_pipeline.position_to_index(int(q), num_examples=num_examples, seed=seed)
                for q in positions]
      per_process.append(set(idx))
      assert len(idx) == len(set(idx)), "no example twice within an epoch"
    union = set().union(*per_process)
    assert union == set(range(num_examples))
    assert sum(len(s) for s in per_process) == num_examples    # pairwise disjoint
  # Different epochs visit the examples in different orders.
  order = lambda e: [input_pipeline.position_to_index(e * num_examples + i,
                                                      num_examples=num_examples, seed=seed)
                     for i in range(num_examples)]
  assert order(0) != order(1)


def test_augment_seeds_differ_by_position_and_seed():
  seeds = {input_pipeline.augment_seed(0, p) for p in range(1000)}
  assert len(seeds) == 1000
  assert input_pipeline.augment_seed(0, 5) != input_pipeline.augment_seed(1, 5)


def _voc_fixture(root):
  rng = np.random.default_rng(0)
  images, ids = {}, []
  for i in range(12):
    objects = []
    for _ in range(int(rng.integers(1, 4))):
      w, h = rng.integers(20, 90, 2)
      x0, y0 = rng.integers(1, 160 - w), rng.integers(1, 120 - h)
      objects.append((["cat", "dog"][int(rng.integers(0, 2))], 0,
                      (int(x0), int(y0), int(x0 + w), int(y0 + h))))
    image_id = f"{i:06d}"
    images[image_id] = dict(height=120, width=160, objects=objects)
    ids.append(image_id)
  images["000003"]["corrupt"] = True
  data_fixtures.write_voc(root, images, {"trainval": ids[:8], "test": ids[8:]})
  return images


def test_short_training_run_on_a_voc_folder(tmp_path):
  root = str(tmp_path / "voc")
  images = _voc_fixture(root)
  config = train_util.tiny_config(**{
      "dataset.name": "voc_folder", "dataset.path": root, "dataset.max_boxes": 6,
      "input.image_size": 64, "input.multiscale_sizes": (64, 96),
      "input.multiscale_every": 2, "anchors.init": "kmeans", "train.steps": 4,
      "eval.every_steps": 0, "eval.metric": "voc07"})
  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(config, workdir)
  ev = summary["eval"]
  # 4 test images, every GT counted (none truncated for evaluation).
  test_gt = sum(len(images[i]["objects"]) for i in sorted(images)[8:])
  assert ev["num_images"] == 4 and ev["num_gt"] == test_gt
  assert set(ev["per_class"]) == {"cat", "dog"}
  metrics = workdir_lib.read_metrics(workdir)
  assert metrics[-1]["data/skipped_images"] == 1      # the corrupt JPEG, counted once
  assert ev["AP50"] == pytest.approx(np.mean(list(ev["per_class"].values())))
  assert all(np.isfinite(m["loss"]) for m in metrics)
  config_json = workdir_lib.read_config(workdir).to_dict()
  assert config_json["dataset"]["name"] == "voc_folder"


def test_multiscale_sizes_in_the_stream(tmp_path):
  root = str(tmp_path / "voc")
  _voc_fixture(root)
  config = train_util.tiny_config(**{
      "dataset.name": "voc_folder", "dataset.path": root, "dataset.prefetch": 0,
      "input.multiscale_sizes": (64, 96, 128), "input.multiscale_every": 3})
  ds = input_pipeline.build_dataset(config, "train")
  stream = input_pipeline.train_stream(ds, config, start_step=0, process_index=0,
                                       process_count=1)
  sizes = [next(stream)[1]["image"].shape[1] for _ in range(12)]
  # One size per block of 3 steps, drawn from default_rng([seed, block]); seed 0 draws
  # 128, 96, 128, 96 (never the config's own 64 px).
  assert sizes == [128] * 3 + [96] * 3 + [128] * 3 + [96] * 3


def test_examples_limits_cut_a_real_split_to_its_first_images(tmp_path):
  """dataset.train_examples / eval_examples keep the first N images of a real split (the
  runlocal configs); 0 keeps all, and a limit above the split's size changes nothing."""
  root = str(tmp_path / "voc")
  _voc_fixture(root)
  base = {"dataset.name": "voc_folder", "dataset.path": root, "dataset.max_boxes": 6,
          "dataset.eval_split": "trainval"}
  full = input_pipeline.build_dataset(train_util.tiny_config(**base), "eval")
  cut = input_pipeline.build_dataset(
      train_util.tiny_config(**base, **{"dataset.eval_examples": 5}), "eval")
  assert (len(full), len(cut)) == (8, 5)
  assert [cut.image_name(i) for i in range(5)] == [full.image_name(i) for i in range(5)]
  for i in range(5):
    np.testing.assert_array_equal(cut.ground_truth(i)[0], full.ground_truth(i)[0])
  with pytest.raises(IndexError):
    cut.batch([5], image_size=64)
  train = input_pipeline.build_dataset(
      train_util.tiny_config(**base, **{"dataset.train_examples": 7}), "train")
  big = input_pipeline.build_dataset(
      train_util.tiny_config(**base, **{"dataset.train_examples": 100}), "train")
  assert (len(train), len(big)) == (7, 8)


def test_missing_folder_is_a_clear_error(tmp_path):
  config = train_util.tiny_config(**{"dataset.name": "voc_folder",
                                     "dataset.path": str(tmp_path / "nowhere")})

  with pytest.raises(DatasetError, match="JPEGImages|Annotations|ImageSets"):
    input_pipeline.build_dataset(config, "train")


def test_anchors_cli_on_a_voc_folder_config(tmp_path):
  import subprocess
  import sys
  root = str(tmp_path / "voc")
  images = _voc_fixture(root)
  res = subprocess.run(
      [sys.executable, "-m", "anchor_jax.anchors", "--config=configs/voc_yolov2.py",
       "--config.dataset.name=voc_folder", f"--config.dataset.path={root}",
       "--config.input.image_size=320", "--k=3", "--json"],
      cwd=train_util.REPO, env=train_util.subprocess_env(1), capture_output=True, text=True,
      timeout=300)
  assert res.returncode == 0, res.stderr[-2000:]
  out = json.loads(res.stdout)
  # Train split = the first 8 images, one of them an unreadable JPEG whose XML is
  # still fine: its boxes count (annotations only), resized from 160x120 to 320.
  want = sum(len(images[i]["objects"]) for i in sorted(images)[:8])
  assert out["num_boxes"] == out["dataset"]["num_boxes"] == want
  assert len(out["anchors"]) == 3 and 0 < out["mean_best_iou"] <= 1
  # Box sizes at the training input size: 160x120 images resized to 320x320.
  boxes = np.asarray([o[2] for i in sorted(images)[:8] for o in images[i]["objects"]], float)
  w = (boxes[:, 2] - boxes[:, 0]) * 320 / 160
  h = (boxes[:, 3] - boxes[:, 1]) * 320 / 120
  np.testing.assert_allclose(out["dataset"]["w_percentiles_5_25_50_75_95"],
                             np.percentile(w, [5, 25, 50, 75, 95]), atol=0.01)
  np.testing.assert_allclose(out["dataset"]["h_percentiles_5_25_50_75_95"],
                             np.percentile(h, [5, 25, 50, 75, 95]), atol=0.01)


def _stream_batches(config, start_step, count):
  ds = input_pipeline.build_dataset(config, "train")
  stream = input_pipeline.train_stream(ds, config, start_step=start_step, process_index=0,
                                       process_count=1)
  out = [next(stream) for _ in range(count)]
  stream.close()
  return out


@pytest.mark.parametrize("workers", [2, 5])
def test_worker_threads_give_the_same_batches_in_order(tmp_path, workers):
  root = str(tmp_path / "voc")
  _voc_fixture(root)                    # includes a corrupt JPEG: skipped and counted
  base = {"dataset.name": "voc_folder", "dataset.path": root, "dataset.max_boxes": 2,
          "input.multiscale_sizes": (64, 96), "input.multiscale_every": 2}
  serial = _stream_batches(train_util.tiny_config(**base, **{"dataset.workers": 0}),
                           start_step=3, count=9)
  threaded = _stream_batches(train_util.tiny_config(**base, **{"dataset.workers": workers}),
                             start_step=3, count=9)
  assert [s for s, _ in threaded] == list(range(3, 12))
  for (_, a), (_, b) in zip(serial, threaded):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_grain_worker_processes_give_the_same_batches_and_counters(tmp_path):
  """dataset.loader=grain: worker processes prepare the same batches in the same order as
  the serial stream (resumed at step 3, multi-scale, a corrupt JPEG), and the main
  process's counters follow from each batch's deltas."""
  root = str(tmp_path / "voc")
  _voc_fixture(root)
  base = {"dataset.name": "voc_folder", "dataset.path": root, "dataset.max_boxes": 2,
          "input.multiscale_sizes": (64, 96), "input.multiscale_every": 2}
  serial_config = train_util.tiny_config(**base, **{"dataset.workers": 0})
  serial_ds = input_pipeline.build_dataset(serial_config, "train")
  stream = input_pipeline.train_stream(serial_ds, serial_config, start_step=3,
                                       process_index=0, process_count=1)
  serial = [next(stream) for _ in range(6)]
  stream.close()
  grain_config = train_util.tiny_config(**base, **{"dataset.workers": 2, "dataset.prefetch": 0,
                                                   "dataset.loader": "grain"})
  grain_ds = input_pipeline.build_dataset(grain_config, "train")
  stream = input_pipeline.train_stream(grain_ds, grain_config, start_step=3, process_index=0,
                                       process_count=1)
  pooled = [next(stream) for _ in range(6)]
  stream.close()
  assert [s for s, _ in pooled] == list(range(3, 9))
  for (_, a), (_, b) in zip(serial, pooled):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  # The counters of the six consumed batches (prefetch 0: none ahead): truncation exactly as one process counts it batch by batch; the corrupt
  # image once per worker process that met it.
  one = input_pipeline.build_dataset(serial_config, "train")
  maker = input_pipeline._BatchMaker(one, serial_config, process_index=0, process_count=1)
  truncated = sum(maker(step)[2]["truncated"] for step in range(3, 9))
  assert truncated > 0 and grain_ds.stats["truncated"] == truncated
  assert one.stats["skipped_images"] == 1 <= grain_ds.stats["skipped_images"] <= 2


def test_dataset_counters_are_exact_when_threads_share_a_dataset(tmp_path):
  root = str(tmp_path / "voc")
  _voc_fixture(root)
  config = train_util.tiny_config(**{"dataset.name": "voc_folder", "dataset.path": root,
                                     "dataset.max_boxes": 1})
  batches = [list(range(8))] * 40              # every image 40 times, the corrupt one too

  def run(workers):
    ds = input_pipeline.build_dataset(config, "train")
    def make(idx):
      return ds.batch(idx, image_size=64)
    mapped = (input_pipeline._ordered_map(make, iter(batches), workers) if workers > 1
              else map(make, batches))
    list(mapped)
    return ds.stats
  serial, threaded = run(0), run(8)
  # Objects per image 3 2 1 3 2 3 1 1, image 3 corrupt and replaced by image 4 (2), so with
  # max_boxes=1 one pass truncates 2+1+0+1+1+2+0+0 = 7 boxes; 40 passes 280; one skip.
  assert serial["truncated"] == 280 and serial["skipped_images"] == 1
  assert threaded == serial


def test_worker_errors_reach_the_consumer():
  def make(step):
    if step == 4:
      raise RuntimeError("bad batch 4")
    return step
  out = input_pipeline._ordered_map(make, iter(range(10)), 3)
  assert [next(out) for _ in range(4)] == [0, 1, 2, 3]
  with pytest.raises(RuntimeError, match="bad batch 4"):
    next(out)


def test_resume_with_another_class_order_is_refused(tmp_path):
  root = str(tmp_path / "voc")
  _voc_fixture(root)
  base = {"dataset.name": "voc_folder", "dataset.path": root, "dataset.max_boxes": 6,
          "input.image_size": 64, "anchors.init": "kmeans", "train.steps": 2,
          "train.checkpoint_every": 2, "eval.every_steps": 0, "eval.metric": "voc07"}
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(
      train_util.tiny_config(**base, **{"dataset.class_names": ("cat", "dog")}), workdir)
  # Same number of classes, so every array still fits: only the saved names can tell.
  swapped = train_util.tiny_config(**{**base, "dataset.class_names": ("dog", "cat"),
                                      "train.steps": 4})
  with pytest.raises(config_lib.ConfigError, match=r"\['cat', 'dog'\].*\['dog', 'cat'\]"):
    train.train_and_evaluate(swapped, workdir)


def _colliding_batch(rows):
  """[rows] images, each with two GTs in the same cell that pick the same anchor, then
  padding: slot 0 a 0.30-wide box, slot 1 a 0.32-wide one, same centre."""
  boxes = np.zeros((rows, 4, 4), np.float32)
  boxes[:, 0] = [0.35, 0.35, 0.65, 0.65]
  boxes[:, 1] = [0.34, 0.34, 0.66, 0.66]
  labels = np.tile(np.array([[1, 2, 0, 0]], np.int32), (rows, 1))
  mask = np.tile(np.array([[True, True, False, False]]), (rows, 1))
  difficult = np.zeros((rows, 4), bool)
  difficult[:, 1] = True
  return {"boxes": boxes, "labels": labels, "mask": mask, "difficult": difficult,
          "image": np.zeros((rows, 8, 8, 3), np.uint8)}


def test_shuffled_slots_make_either_colliding_gt_win_about_half_the_time():
  from anchor_jax.core import assign as assign_lib
  rows = 400
  batch = _colliding_batch(rows)
  anchors = np.log(np.array([[1.0, 1.0], [4.0, 4.0]], np.float32))   # both GTs pick anchor 1
  shuffled = input_pipeline.shuffle_gt_slots(batch, seed=5, positions=np.arange(rows))
  a = assign_lib.assign(shuffled["boxes"], shuffled["mask"], anchors, grid_hw=(4, 4))
  delta = np.asarray(a.delta)                                         # [rows, 4, 2]
  assert np.allclose(delta.sum((1, 2)), 1.0), "exactly one of the two keeps the anchor"
  winner_label = shuffled["labels"][np.arange(rows), delta.sum(-1).argmax(-1)]
  share = np.mean(winner_label == 1)
  assert 0.4 < share < 0.6, share                 # binomial(400, 1/2): sd 0.025
  # Each row is a permutation of its own slots: boxes keep their labels and flags,
  # padding stays padding.
  for key in ("boxes", "labels", "mask", "difficult"):
    np.testing.assert_array_equal(shuffled[key][:, 2:], batch[key][:, 2:])
  first = shuffled["labels"][:, 0] == 1
  np.testing.assert_array_equal(shuffled["difficult"][:, 0], ~first)
  np.testing.assert_array_equal(shuffled["boxes"][first, 0], batch["boxes"][first, 0])
  np.testing.assert_array_equal(shuffled["image"], batch["image"])
  # The same (seed, position) gives the same order; the input is not modified.
  again = input_pipeline.shuffle_gt_slots(batch, seed=5, positions=np.arange(rows))
  np.testing.assert_array_equal(again["labels"], shuffled["labels"])
  assert (batch["labels"][:, 0] == 1).all()
  other = input_pipeline.shuffle_gt_slots(batch, seed=6, positions=np.arange(rows))
  assert (other["labels"] != shuffled["labels"]).any()
