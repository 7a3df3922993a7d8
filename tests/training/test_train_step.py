"""One training step: anchors move only when optimised; 1 device == 4 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import losses
from anchor_jax.data import pipeline
from anchor_jax.model import yolov2
from anchor_jax.training import parallel, train
from tests import train_util


def _setup(config):
  ds = pipeline.build_dataset(config, "train")
  anchors = train.initial_anchors(config, ds)
  model = yolov2.from_config(config, num_classes=len(ds.class_names), anchors=anchors,
                             axis_name=parallel.AXIS)
  schedules = train.make_schedules(config)
  tx, state = train.create_state(config, model, schedules)
  batch = ds.batch(np.arange(config.train.batch_size))
  return state, train.make_train_step(config, model, tx, schedules), batch


@pytest.fixture(scope="module")
def runs():
  """Two steps of the tiny config from the same state on 1 and on 4 devices."""
  assert jax.local_device_count() == 4, "conftest sets 4 fake CPU devices"
  state, step_fn, batch = _setup(train_util.tiny_config(**{"train.burn_in_steps": 0}))
  return (state, train_util.run_pmapped(state, step_fn, batch, 1),
          train_util.run_pmapped(state, step_fn, batch, 4))


def test_one_device_equals_four_devices(runs):
  _, (s1, m1), (s4, m4) = runs
  # BatchNorm statistics are averaged over the pmap axis (bn_axis_name='batch'),
  # gradients and loss shares are summed: the global-batch step on any device count.
  train_util.assert_trees_close(s1.params, s4.params, rtol=2e-4, atol=2e-5)
  train_util.assert_trees_close(s1.batch_stats, s4.batch_stats, rtol=2e-4, atol=2e-5)
  for k in ("loss", "wh", "cluster", "noobj", "num_gt"):
    np.testing.assert_allclose(m1[k], m4[k], rtol=2e-4, err_msg=k)
  np.testing.assert_allclose(m1["anchor_counts"], m4["anchor_counts"], rtol=1e-5)


def test_step_changes_params_and_anchors(runs):
  state, _, (new, metrics) = runs
  old_anchors = state.params["head"]["anchor_log_wh"]
  assert not np.allclose(new.params["head"]["anchor_log_wh"], old_anchors)
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), new.params, state.params)
  assert all(jax.tree.leaves(changed)), "every parameter should get an update"
  assert int(new.step) == 2 and np.isfinite(metrics["loss"])


def test_frozen_anchors_bit_identical_other_params_change():
  state, step_fn, batch = _setup(train_util.tiny_config(**{"anchors.optimize": False,
                                                           "train.burn_in_steps": 0}))
  new, metrics = train_util.run_pmapped(state, step_fn, batch, 4, steps=3)
  before = np.asarray(state.params["head"]["anchor_log_wh"])
  after = np.asarray(new.params["head"]["anchor_log_wh"])
  assert before.tobytes() == after.tobytes()
  assert not np.allclose(new.params["head"]["pred"]["kernel"], state.params["head"]["pred"]["kernel"])
  assert metrics["wh"] > 0


def test_schedules_at_given_steps():
  config = train_util.tiny_config(**{"anchors.soft_assign_steps": 1500,
                                     "anchors.cluster_steps": 1000,
                                     "anchors.temperature": 2.0, "anchors.cluster_weight": 1.0})
  s = train.make_schedules(config)
  np.testing.assert_allclose([float(s.temperature(k)) for k in (0, 375, 750, 1500, 2000)],
                             [2.0, 1.5, 1.0, 0.0, 0.0], atol=1e-6)
  np.testing.assert_allclose([float(s.cluster_weight(k)) for k in (0, 250, 999, 1000, 5000)],
                             [1.0, 0.75, 0.001, 0.0, 0.0], atol=1e-6)


def test_pmapped_step_terms_equal_yolo_loss_called_directly():
  """The wiring of train_step: the config's scales, the schedules, the non-difficult mask and
  the prior term (on for exactly prior_images // batch_size steps) reach ``yolo_loss``."""
  scales = {"loss.coord_scale": 1.7, "loss.object_scale": 3.0, "loss.noobject_scale": 0.7,
            "loss.class_scale": 1.3, "loss.prior_scale": 0.05, "loss.ignore_thresh": 0.5,
            "loss.prior_images": 16, "train.batch_size": 8, "train.burn_in_steps": 0,
            "anchors.soft_assign_steps": 4, "anchors.cluster_steps": 4}
  config = train_util.tiny_config(**scales)
  prior_steps = config.loss.prior_images // config.train.batch_size        # 2
  state, step_fn, batch = _setup(config)
  batch = {k: np.array(v) for k, v in batch.items()}
  assert batch["mask"][0, :2].all() and batch["mask"][1, :1].all()
  batch["difficult"][0, 1] = True                            # a difficult GT: not trained on
  batch["boxes"][1, 0] = [0.6, 0.6, 0.4, 0.4]                # reversed corners: invalid
  batch = {k: batch[k] for k in train.TRAIN_KEYS}
  num_classes = len(pipeline.build_dataset(config, "train").class_names)
  model = yolov2.from_config(config, num_classes=num_classes,
                             anchors=np.ones((config.anchors.num, 2)))
  schedules = train.make_schedules(config)
  devices = jax.local_devices()[:4]
  p_step = jax.pmap(step_fn, axis_name="batch", devices=devices)
  rep = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 4), state)
  sharded = jax.tree.map(lambda x: x.reshape((4, -1) + x.shape[1:]), batch)
  images = batch["image"].astype(np.float32) / 255.0

  @jax.jit
  def direct(params, batch_stats, step):
    out, _ = model.apply({"params": params, "batch_stats": batch_stats}, images, train=True,
                         mutable=["batch_stats"])
    return losses.yolo_loss(
        out, params["head"]["anchor_log_wh"], batch["boxes"], batch["labels"],
        batch["mask"] & ~batch["difficult"], temperature=schedules.temperature(step),
        cluster_weight=schedules.cluster_weight(step),
        prior_scale=jnp.where(step < prior_steps, 0.05, 0.0), coord_scale=1.7,
        object_scale=3.0, noobject_scale=0.7, class_scale=1.3, ignore_thresh=0.5,
        rescore=True, assign_metric="iou")

  for step in range(prior_steps + 2):
    host = jax.tree.map(lambda x: np.asarray(x)[0], rep)
    rep, metrics = p_step(rep, sharded)
    got = jax.tree.map(lambda x: np.asarray(x)[0], metrics)
    total, want = direct(host.params, host.batch_stats, step)
    for key in losses.LOSS_TERMS:
      np.testing.assert_allclose(got[key], want[key], rtol=2e-4, atol=1e-6, err_msg=(step, key))
    np.testing.assert_allclose(got["loss"], total, rtol=2e-4)
    assert (got["prior"] > 0) == (step < prior_steps), (step, got["prior"])
    assert got["num_invalid_gt"] == 1
    assert got["num_gt"] == int((batch["mask"] & ~batch["difficult"]).sum()) - 1


def test_bfloat16_loss_and_anchor_gradient_stay_close_to_float32():
  """model.dtype=bfloat16 (convolutions in bf16; params, head, BN statistics and loss in
  float32): on the same params and batch, the loss within 2 % and the anchors' gradient
  within 5 % (relative L2) of float32, pointing the same way (cosine > 0.99)."""
  results = {}
  for dtype in ("float32", "bfloat16"):
    config = train_util.tiny_config(**{"model.dtype": dtype, "train.burn_in_steps": 0,
                                       "anchors.temperature": 0.0})
    ds = pipeline.build_dataset(config, "train")
    model = yolov2.from_config(config, num_classes=len(ds.class_names),
                               anchors=train.initial_anchors(config, ds))
    _, state = train.create_state(config, model, train.make_schedules(config))
    batch = ds.batch(np.arange(config.train.batch_size))
    images = batch["image"].astype(np.float32) / 255.0

    def loss(params, state=state, model=model, batch=batch, images=images):
      out, _ = model.apply({"params": params, "batch_stats": state.batch_stats}, images,
                           train=True, mutable=["batch_stats"])
      return losses.yolo_loss(out, params["head"]["anchor_log_wh"], batch["boxes"],
                              batch["labels"], batch["mask"], cluster_weight=0.0)[0]
    value, grads = jax.jit(jax.value_and_grad(loss))(state.params)
    results[dtype] = float(value), np.asarray(grads["head"]["anchor_log_wh"]).ravel()
  (l32, g32), (l16, g16) = results["float32"], results["bfloat16"]
  assert abs(l16 - l32) <= 0.02 * abs(l32), (l16, l32)
  assert np.linalg.norm(g16 - g32) <= 0.05 * np.linalg.norm(g32)
  assert g16 @ g32 / (np.linalg.norm(g16) * np.linalg.norm(g32)) > 0.99
