"""Faster R-CNN training: one step on 1 vs 4 devices, where the anchors' gradient comes
from, and a short run whose anchors move only when optimised."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax import config_lib
from anchor_jax import workdir as workdir_lib
from anchor_jax.data import pipeline
from anchor_jax.training import parallel, rcnn_step, train
from tests import REPO, train_util

CONFIG = os.path.join(REPO, "configs/rcnn_synthetic.py:tiny")


def tiny_rcnn(*overrides):
  return config_lib.load(CONFIG, ["--config.train.burn_in_steps=0", *overrides])


def _setup(config):
  ds = pipeline.build_dataset(config, "train")
  anchors = train.initial_anchors(config, ds)
  model = train.build_model(config, num_classes=len(ds.class_names), anchors=anchors,
                            axis_name=parallel.AXIS)
  schedules = train.make_schedules(config)
  tx, state = train.create_state(config, model, schedules)
  batch = ds.batch(np.arange(config.train.batch_size))
  batch = {k: batch[k] for k in train.TRAIN_KEYS}
  return model, state, train.make_train_step(config, model, tx, schedules), batch


@pytest.fixture(scope="module")
def setup():
  assert jax.local_device_count() == 4, "conftest sets 4 fake CPU devices"
  return _setup(tiny_rcnn())


@pytest.mark.slow
def test_one_device_equals_four_devices(setup):
  """Sampling keys follow the image's global position and BN statistics the pmap axis, so
  the global-batch step is the same on any device count."""
  _, state, step_fn, batch = setup
  s1, m1 = train_util.run_pmapped(state, step_fn, batch, 1)
  s4, m4 = train_util.run_pmapped(state, step_fn, batch, 4)
  train_util.assert_trees_close(s1.params, s4.params, rtol=2e-4, atol=2e-5)
  train_util.assert_trees_close(s1.batch_stats, s4.batch_stats, rtol=2e-4, atol=2e-5)
  for k in ("loss", "rpn_obj", "rpn_box", "rcnn_cls", "rcnn_box", "cluster", "num_pos"):
    np.testing.assert_allclose(m1[k], m4[k], rtol=2e-4, atol=1e-6, err_msg=k)
  np.testing.assert_array_equal(m1["anchor_counts"], m4["anchor_counts"])
  assert m1["num_pos"] > 0 and m1["rpn_box"] > 0 and np.isfinite(m1["loss"])


def test_anchor_gradient_comes_only_from_the_rpn_wh_and_cluster_terms(setup):
  """The proposals, RoI sampling and box head are stop-gradient w.r.t. the anchors: the
  whole loss's anchor gradient equals that of its rpn_box + cluster terms alone, and the
  objectness term gives none."""
  model, state, _, batch = setup
  config = tiny_rcnn()
  keys = rcnn_step.image_keys(jax.random.key(0), first=0, count=config.train.batch_size)

  def parts(anchor_log_wh):
    """[3]: the loss, its rpn_box + cluster terms, its objectness + class terms."""
    params = {**state.params, "rpn": {**state.params["rpn"], "anchor_log_wh": anchor_log_wh}}
    loss, terms, _ = rcnn_step.rcnn_loss(
        model.clone(bn_axis_name=None), params, state.batch_stats, batch, keys=keys,
        cluster_weight=0.5, cfg=config.rcnn)
    return jnp.stack([loss, terms["rpn_box"] + terms["cluster"],
                      terms["rpn_obj"] + terms["rcnn_cls"]])

  a0 = jnp.asarray(state.params["rpn"]["anchor_log_wh"])
  g_total, g_parts, g_obj = jax.jit(jax.jacrev(parts))(a0)     # one compile, [3, L, A, 2]
  np.testing.assert_allclose(g_total, g_parts, rtol=1e-5, atol=1e-8)
  np.testing.assert_array_equal(np.asarray(g_obj), 0.0)
  assert np.abs(np.asarray(g_total)).max() > 0


@pytest.mark.slow
def test_tiny_run_anchors_move_only_when_optimised_and_recall_is_logged(tmp_path):
  """4 steps of the tiny config, Opt and Baseline: the Baseline's anchors stay
  bit-identical, Opt's move; eval.jsonl has AP50 and the RPN recall at 50/100/300."""
  moved = {}
  for name, overrides in (("opt", ()), ("baseline", ("--config.anchors.optimize=False",
                                                     "--config.anchors.cluster_weight=0"))):
    workdir, config = str(tmp_path / name), tiny_rcnn(*overrides)
    _, fresh, _, _ = _setup(config)
    train.train_and_evaluate(config, workdir)
    _, restored = train_util.restore_params(workdir, config)
    before = np.asarray(fresh.params["rpn"]["anchor_log_wh"])
    after = np.asarray(restored["params"]["rpn"]["anchor_log_wh"])
    moved[name] = (before.tobytes() != after.tobytes(), np.abs(after - before).max())
    last = workdir_lib.read_jsonl(workdir_lib.path(workdir, workdir_lib.EVAL))[-1]
    for key in ("AP50", "RPN_recall@50", "RPN_recall@100", "RPN_recall@300", "RPN_AR@100"):
      assert 0.0 <= last[key] <= 1.0, key
    assert last["RPN_recall@50"] <= last["RPN_recall@100"] <= last["RPN_recall@300"]
    lines = workdir_lib.read_jsonl(workdir_lib.path(workdir, workdir_lib.ANCHORS))
    assert np.asarray(lines[-1]["anchors_px"]).shape == (15, 2)      # 5 levels x 3 shapes
  assert moved["baseline"] == (False, 0.0)        # bit-identical: a zero update
  assert moved["opt"][0] and moved["opt"][1] > 1e-6
