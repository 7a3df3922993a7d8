"""model.init_from: darknet files and our own workdirs into a fresh run (training/pretrained.py),
config validation, and fine-tuning end to end (a fresh run takes it, a resumed one does not)."""
import os

import jax
import numpy as np
import pytest
from flax import traverse_util

from anchor_jax import config_lib
from anchor_jax import workdir as workdir_lib
from anchor_jax.data import pipeline
from anchor_jax.model import darknet_cfg, darknet_weights, yolov2
from anchor_jax.tools import train as train_tool
from anchor_jax.training import checkpoint as ckpt_lib
from anchor_jax.training import pretrained, train
from tests import REPO, train_util
from tests import darknet_reference as dn

TINY_NET = dn.tiny_net(5, 5)   # configs/synthetic.py:tiny: 5 classes, 5 anchors
CFG_ANCHORS = ((0.5, 0.7), (1.0, 2.5), (2.0, 1.0), (2.5, 3.0), (3.5, 1.5))


_FRESH = {}


def _fresh(config, num_classes=None):
  """(model, params, batch_stats) of a fresh run of ``config`` (anchors.init's anchors);
  cached per config, as nothing here changes the trees it is given."""
  num_classes = num_classes or config.dataset.num_classes or 5
  key = (config.to_json(), num_classes)
  if key not in _FRESH:
    anchors = train.initial_anchors(config, None)
    model = yolov2.from_config(config, num_classes=num_classes, anchors=anchors)
    _FRESH[key] = (model, *train.init_params(model, image_size=config.input.image_size,
                                             seed=config.seed))
  return _FRESH[key]


def _flat(tree):
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


@pytest.fixture(scope="module")
def darknet_files(tmp_path_factory):
  folder = tmp_path_factory.mktemp("darknet")
  weights = dn.random_weights(TINY_NET, seed=11)
  dn.write_weights(str(folder / "tiny.weights"), TINY_NET, weights)
  (folder / "tiny.cfg").write_text(dn.cfg_text(TINY_NET, CFG_ANCHORS))
  (folder / "alone.weights").write_bytes((folder / "tiny.weights").read_bytes())
  return folder, weights


def _darknet_config(path, **overrides):
  return train_util.tiny_config(**{"model.init_from": str(path), "model.init_parts": "all",
                                   "model.reorg": "darknet", **overrides})


# ------------------------------------------------------------------ darknet files


def test_darknet_detector_takes_the_anchors_of_its_cfg(darknet_files):
  folder, weights = darknet_files
  config = _darknet_config(folder / "tiny.weights")
  model, params, stats = _fresh(config)
  start = pretrained.initialise(config, model, params, stats, class_names=["a"] * 5)
  np.testing.assert_allclose(start.anchors, CFG_ANCHORS, rtol=1e-6)
  np.testing.assert_array_equal(start.params["head"]["pred"]["bias"], weights[18]["biases"])
  # t_w/t_h BatchNorm (bn_no_shift, not in darknet) is the identity at inference.
  np.testing.assert_array_equal(start.params["head"]["wh_bn"]["scale"], np.ones((5, 2)))
  np.testing.assert_allclose(start.batch_stats["head"]["wh_bn"]["var"] + 1e-5, 1.0)
  assert "anchors from tiny.cfg" in start.report


def test_darknet_without_cfg_or_with_keep_false_uses_anchors_init(darknet_files):
  folder, _ = darknet_files
  uniform = [[3, 3], [3, 9], [9, 9], [9, 3], [6, 6]]
  for config in (_darknet_config(folder / "alone.weights", **{"anchors.init": "uniform"}),
                 _darknet_config(folder / "tiny.weights", **{"anchors.init": "uniform",
                                                             "model.keep_source_anchors": False})):
    model, params, stats = _fresh(config)
    start = pretrained.initialise(config, model, params, stats, class_names=["a"] * 5)
    assert sorted(map(tuple, np.round(start.anchors, 5))) == sorted(map(tuple, uniform))
  # An explicit init_cfg is read for a file without a cfg beside it.
  config = _darknet_config(folder / "alone.weights", **{"model.init_cfg": str(folder / "tiny.cfg")})
  model, params, stats = _fresh(config)
  start = pretrained.initialise(config, model, params, stats, class_names=["a"] * 5)
  np.testing.assert_allclose(start.anchors, CFG_ANCHORS, rtol=1e-6)


def test_darknet_cfg_of_other_classes_is_refused(darknet_files):
  folder, _ = darknet_files
  config = _darknet_config(folder / "tiny.weights", **{"dataset.num_classes": 3})
  model, params, stats = _fresh(config)
  with pytest.raises(darknet_cfg.DarknetCfgError, match="classes=5, the model has classes=3"):
    pretrained.initialise(config, model, params, stats, class_names=["a"] * 3)
  # Without the cfg, the file's size says the same.
  config = _darknet_config(folder / "alone.weights", **{"dataset.num_classes": 3})
  with pytest.raises(darknet_weights.DarknetFileError,
                     match=r"50 outputs per cell = 5 anchors x \(5 \+ 5 classes\), the model "
                           r"has 5 x \(5 \+ 3\) = 40"):
    pretrained.initialise(config, model, params, stats, class_names=["a"] * 3)


# ------------------------------------------------------------------ config validation


@pytest.mark.parametrize("overrides,message", [
    ({"model.init_parts": "head"}, "model.init_parts='head': choose one of ('backbone', 'all')"),
    ({"model.reorg": "caffe"}, "model.reorg='caffe': choose one of ('tf', 'darknet')"),
    ({"model.init_from": "/nonexistent/x.weights"}, "no such file or workdir"),
    ({"model.init_cfg": "/nonexistent/x.cfg"}, "init_cfg='/nonexistent/x.cfg': no such file"),
])
def test_validation_names_the_key(overrides, message):
  with pytest.raises(config_lib.ConfigError, match="invalid config") as info:
    config_lib.validate(train_util.tiny_config(**overrides))
  assert message in str(info.value)


def test_validation_of_init_from_kinds(tmp_path, darknet_files):
  folder, _ = darknet_files
  with pytest.raises(config_lib.ConfigError, match="needs --config.model.reorg=darknet"):
    config_lib.validate(_darknet_config(folder / "tiny.weights", **{"model.reorg": "tf"}))
  config_lib.validate(_darknet_config(folder / "tiny.weights", **{"model.reorg": "tf",
                                                                 "model.init_parts": "backbone"}))
  with pytest.raises(config_lib.ConfigError, match="a folder without checkpoints/"):
    config_lib.validate(train_util.tiny_config(**{"model.init_from": str(tmp_path)}))
  with pytest.raises(config_lib.ConfigError, match="read only with --config.model.init_from"):
    config_lib.validate(train_util.tiny_config(**{"model.init_cfg": str(folder / "tiny.cfg")}))


# ------------------------------------------------------------------ our workdirs

SOURCE_NAMES = ["rectangle", "ellipse", "triangle"]   # the synthetic data's first 3 classes
SOURCE_RUN = {"dataset.num_classes": 3, "train.steps": 4, "eval.every_steps": 0,
              "anchors.init": "uniform"}
# Fine-tuning runs: lr 0 on step 0 (so checkpoint 1 holds the state init_from made),
# 1e-3 on step 1, 0 again from step 2 (so a resumed step 2 keeps what it resumed).
FINE_TUNE = {"train.lr_shape": "piecewise", "train.lr_schedule": ((0, 0.0), (1, 1e-3), (2, 0.0)),
             "train.checkpoint_every": 1, "train.keep_checkpoints": 5, "eval.every_steps": 0, "anchors.init": "identical"}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
  """A workdir holding one checkpoint (step 7) of the tiny config with 3 classes, as the
  trainer writes it, with params and statistics unlike a fresh init's; its state."""
  workdir = str(tmp_path_factory.mktemp("source"))
  config = train_util.tiny_config(**SOURCE_RUN)
  model, params, stats = _fresh(config, num_classes=3)
  rng = np.random.default_rng(9)
  perturb = lambda tree, low: {k: (rng.uniform(low, 1, np.shape(v)).astype(np.float32)
                                   if not isinstance(v, dict) else perturb(v, low))
                               for k, v in tree.items()}
  params, stats = perturb(params, -1.0), perturb(stats, 0.1)
  tx, fresh_state = train.create_state(config, model, train.make_schedules(config))
  state = fresh_state.replace(step=np.int32(7), params=params, batch_stats=stats,
                              opt_state=tx.init(params))
  ckpt = ckpt_lib.Checkpointer(workdir, keep=3)
  ckpt.save(7, jax.device_get(state), {"data_position": 7, "config": config_lib.to_dict(config),
                                       "config_hash": config_lib.fingerprint(config),
                                       "class_names": SOURCE_NAMES})
  ckpt.close()
  return workdir, {"params": params, "batch_stats": stats}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A finished 4-step run of the tiny config with 3 classes; its final state."""
  workdir = str(tmp_path_factory.mktemp("trained"))
  summary, step, state = train_util.train_tiny(workdir, **SOURCE_RUN)
  assert step == 4
  learned = np.exp(np.asarray(state["params"]["head"]["anchor_log_wh"]))
  assert not np.allclose(learned, summary["initial_anchors"])   # the anchors moved
  return workdir, state


def _is_head(key):
  return key.startswith("head/")


def test_same_classes_takes_every_layer_and_the_learned_anchors(source_run):
  workdir, source = source_run
  config = train_util.tiny_config(**{"dataset.num_classes": 3, "model.init_from": workdir})
  model, params, stats = _fresh(config)
  names = pipeline.build_dataset(config, "train").class_names
  assert names == SOURCE_NAMES
  start = pretrained.initialise(config, model, params, stats, class_names=names)
  for new, old in ((start.params, source["params"]), (start.batch_stats, source["batch_stats"])):
    new, old = _flat(new), _flat(old)
    assert new.keys() == old.keys()
    for key in new:
      np.testing.assert_array_equal(new[key], old[key], err_msg=key)


def test_other_class_count_reinitialises_the_head_only(source_run):
  workdir, source = source_run
  config = train_util.tiny_config(**{"model.init_from": workdir})   # 5 classes
  model, params, stats = _fresh(config)
  start = pretrained.initialise(config, model, params, stats, class_names=["x"] * 5)
  new, old, fresh = _flat(start.params), _flat(source["params"]), _flat(params)
  for key in new:
    if key == "head/anchor_log_wh":
      np.testing.assert_array_equal(new[key], old[key])
    elif _is_head(key):
      np.testing.assert_array_equal(new[key], fresh[key], err_msg=key)
    else:
      np.testing.assert_array_equal(new[key], old[key], err_msg=key)
  assert new["head/pred/bias"].shape == (5 * (5 + 5),)
  assert "head re-initialised (3 classes there, 5 here)" in start.report
  assert "from checkpoint 7 of" in start.report
  stats_new, stats_old = _flat(start.batch_stats), _flat(source["batch_stats"])
  np.testing.assert_array_equal(stats_new["backbone_conv3/bn/var"],
                                stats_old["backbone_conv3/bn/var"])
  np.testing.assert_array_equal(stats_new["head/wh_bn/mean"], _flat(stats)["head/wh_bn/mean"])


def test_backbone_parts_and_keep_false(source_run):
  workdir, source = source_run
  config = train_util.tiny_config(**{"dataset.num_classes": 3, "model.init_from": workdir,
                                     "model.init_parts": "backbone"})
  model, params, stats = _fresh(config)
  start = pretrained.initialise(config, model, params, stats, class_names=SOURCE_NAMES)
  new, old, fresh = _flat(start.params), _flat(source["params"]), _flat(params)
  for key in new:
    want = old if key.startswith("backbone_conv") else fresh
    np.testing.assert_array_equal(new[key], want[key], err_msg=key)
  config.model.init_parts = "all"
  config.model.keep_source_anchors = False
  start = pretrained.initialise(config, model, params, stats, class_names=SOURCE_NAMES)
  np.testing.assert_array_equal(start.params["head"]["anchor_log_wh"],
                                params["head"]["anchor_log_wh"])
  np.testing.assert_array_equal(start.params["head"]["pred"]["kernel"],
                                source["params"]["head"]["pred"]["kernel"])
  # Same count, other class names: the head is not taken.
  start = pretrained.initialise(config, model, params, stats, class_names=["a", "b", "c"])
  np.testing.assert_array_equal(start.params["head"]["pred"]["kernel"],
                                params["head"]["pred"]["kernel"])
  assert "head re-initialised (other class names)" in start.report


def test_workdir_of_another_network_or_anchor_count_is_refused(source_run):
  workdir, _ = source_run
  config = train_util.tiny_config(**{"model.init_from": workdir, "model.width": 0.25})
  model, params, stats = _fresh(config)
  with pytest.raises(pretrained.InitFromError,
                     match=r"another network \(model.width: checkpoint 0.125, now 0.25\)"):
    pretrained.initialise(config, model, params, stats, class_names=["x"] * 5)
  config = train_util.tiny_config(**{"model.init_from": workdir, "anchors.num": 3,
                                     "dataset.num_classes": 3})
  model, params, stats = _fresh(config)
  with pytest.raises(pretrained.InitFromError, match=r"has 5 anchors, anchors.num=3: set "
                                                     r"--config.anchors.num=5"):
    pretrained.initialise(config, model, params, stats, class_names=SOURCE_NAMES)
  config.model.keep_source_anchors = False   # then only the head is fresh
  start = pretrained.initialise(config, model, params, stats, class_names=SOURCE_NAMES)
  assert "head re-initialised (5 anchors there, 3 here)" in start.report


@pytest.mark.slow
def test_fine_tuning_with_another_class_count_trains_from_the_checkpoint(tmp_path, trained_run):
  source_dir, source = trained_run
  workdir = str(tmp_path / "fine")
  config = train_util.tiny_config(**{**FINE_TUNE, "train.steps": 2,
                                     "model.init_from": source_dir})
  train.train_and_evaluate(config, workdir)
  metrics = workdir_lib.read_metrics(workdir)
  assert [m["step"] for m in metrics] == [1, 2] and all(np.isfinite(m["loss"]) for m in metrics)
  anchors = workdir_lib.read_anchors(workdir)
  learned = np.exp(np.asarray(source["params"]["head"]["anchor_log_wh"]))
  np.testing.assert_allclose(anchors[0]["anchors"], learned, atol=6e-6)   # step 0, 5 decimals

  def params_at(step):
    ckpt = ckpt_lib.Checkpointer(workdir, keep=5, create=False)
    try:
      state, _ = ckpt.restore_raw(step)
    finally:
      ckpt.close()
    return _flat(state["params"])

  old = _flat(source["params"])
  at_1, at_2 = params_at(1), params_at(2)
  body = [k for k in old if not _is_head(k)]
  for key in body:   # lr 0 on step 0: the state init_from made
    np.testing.assert_array_equal(at_1[key], old[key], err_msg=key)
  assert at_1["head/pred/kernel"].shape[-1] == 5 * (5 + 5)
  assert any(not np.array_equal(at_2[k], old[k]) for k in body)   # step 1 trained

  # Resuming does not apply init_from again: step 2 (lr 0) continues from checkpoint 2.
  config.train.steps = 3
  train.train_and_evaluate(config, workdir)
  at_3 = params_at(3)
  for key in at_2:
    np.testing.assert_array_equal(at_3[key], at_2[key], err_msg=key)
  assert os.path.exists(workdir_lib.path(workdir, workdir_lib.CONFIG))


@pytest.mark.slow
def test_trainer_cli_refuses_a_truncated_backbone_in_one_line(tmp_path, capsys, darknet_files):
  folder, _ = darknet_files
  short = tmp_path / "tiny.conv.11"
  short.write_bytes((folder / "tiny.weights").read_bytes()[:20 + 4 * 1000])
  workdir = tmp_path / "run"
  code = train_tool.run([f"--config={os.path.join(REPO, 'configs/synthetic.py')}:tiny",
                         f"--workdir={workdir}", f"--config.model.init_from={short}",
                         "--config.model.init_parts=backbone"])
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert code == 2
  assert err.startswith("error: tiny.conv.11: expected 26,104 floats for the tiny (width "
                        "0.125) backbone, file has 1,000 (after its 20-byte header): the file "
                        "is truncated")
  assert not os.path.exists(workdir_lib.path(str(workdir), workdir_lib.CONFIG))
