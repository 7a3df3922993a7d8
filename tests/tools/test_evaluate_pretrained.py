"""`python -m anchor_jax.evaluate --config=... --config.model.init_from=...`: pretrained
weights scored without training, equal to the evaluator on the same weights loaded by hand."""
import json
import os

import numpy as np
import pytest

import tests
from anchor_jax.data import pipeline
from anchor_jax.evaluation import runner
from anchor_jax.model import darknet_weights, yolov2
from anchor_jax.tools import evaluate
from anchor_jax.training import train
from tests import darknet_reference as dn
from tests import train_util

TINY = os.path.join(tests.REPO, "configs/synthetic.py") + ":tiny"
NET = dn.tiny_net(5, 5)
CFG_ANCHORS = ((0.5, 0.7), (1.0, 2.5), (2.0, 1.0), (2.5, 3.0), (3.5, 1.5))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
  folder = tmp_path_factory.mktemp("weights")
  dn.write_weights(str(folder / "tiny.weights"), NET, dn.random_weights(NET, seed=4))
  (folder / "tiny.cfg").write_text(dn.cfg_text(NET, CFG_ANCHORS))
  return str(folder / "tiny.weights")


def _run(capsys, *flags):
  code = evaluate.run([f"--config={TINY}", *flags])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def test_darknet_detector_is_scored_as_the_evaluator_scores_it(tmp_path, capsys, weights_file):
  export = str(tmp_path / "dets.json")
  code, out, err = _run(capsys, f"--config.model.init_from={weights_file}",
                        "--config.model.init_parts=all", "--config.model.reorg=darknet",
                        f"--export={export}", "--json")
  assert code == 0, err
  result = json.loads(out)

  # The same weights by hand: the model-layer loader, the cfg's anchors, the evaluator.
  config = train_util.tiny_config(**{"model.reorg": "darknet"})
  eval_ds = pipeline.build_dataset(config, "eval")
  model = yolov2.from_config(config, num_classes=5, anchors=CFG_ANCHORS)
  params, stats = train.init_params(model, image_size=64, seed=0)
  params, stats, _ = darknet_weights.load(weights_file, params, stats, parts="all",
                                          network="tiny")
  params["head"]["anchor_log_wh"] = np.log(np.asarray(CFG_ANCHORS, np.float32))
  expected = runner.Evaluator(config, eval_ds, model=model).run(params, stats)
  assert result["AP50"] == pytest.approx(expected["AP50"], abs=1e-12)
  assert result["per_class"] == pytest.approx(expected["per_class"], abs=1e-12)
  assert result["init_from"] == weights_file and "anchors from tiny.cfg" in result["loaded"]
  with open(export) as f:
    assert isinstance(json.load(f), list)


def test_a_truncated_file_is_one_line_and_exit_2(tmp_path, capsys, weights_file):
  short = tmp_path / "short.weights"
  with open(weights_file, "rb") as f:
    short.write_bytes(f.read()[:-8])
  code, out, err = _run(capsys, f"--config.model.init_from={short}",
                        "--config.model.init_parts=all", "--config.model.reorg=darknet")
  floats = (os.path.getsize(weights_file) - 20) // 4
  assert code == 2 and out == ""
  assert err.startswith(f"error: short.weights: expected {floats:,} floats for tiny (width "
                        f"0.125) + 5-class head (5 anchors), file has {floats - 2:,}")
  assert err.count("\n") == 1


@pytest.mark.parametrize("flags,message", [
    ([], "evaluates the weights of --config.model.init_from"),
    (["--config.model.init_parts=backbone"], "evaluating needs the whole detector"),
    (["--config.model.init_parts=all"], "needs --config.model.reorg=darknet"),
])
def test_usage_errors(capsys, weights_file, flags, message):
  init = [f"--config.model.init_from={weights_file}"] if flags else []
  code, _, err = _run(capsys, *init, *flags)
  assert code == 2 and message in err and err.count("\n") == 1
