"""End-to-end training runs of the tiny config: workdir files and CLI overrides,
kill-and-resume, SIGTERM, two processes == one process, and overfitting."""
import os
import re
import signal
import socket
import subprocess
import time

import jax
import numpy as np
import pytest

from anchor_jax import workdir as workdir_lib
from anchor_jax.data import pipeline
from anchor_jax.evaluation import runner
from anchor_jax.model import yolov2
from anchor_jax.training import train
from tests import train_util

pytestmark = pytest.mark.slow

RUN = {"train.steps": 12, "train.checkpoint_every": 4, "train.log_every": 2,
       "eval.every_steps": 0}
FLAGS = [f"--config.{k}={v}" for k, v in RUN.items()]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  """An uninterrupted in-process run on the 4 fake devices."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  summary, step, state = train_util.train_tiny(workdir, **RUN)
  assert step == 12
  return workdir, summary, state


def test_workdir_files_and_cli_overrides(tmp_path):
  workdir = str(tmp_path / "cli")
  res = train_util.run_main(workdir, "--config.train.steps=3", "--config.anchors.init=uniform",
                            "--config.anchors.temperature=1.5", "--config.train.log_every=1")
  assert res.returncode == 0, res.stderr[-3000:]
  config = workdir_lib.read_config(workdir).to_dict()
  assert config["anchors"]["init"] == "uniform" and config["anchors"]["temperature"] == 1.5
  assert config["train"]["steps"] == 3
  metrics = workdir_lib.read_metrics(workdir)
  assert [m["step"] for m in metrics] == [1, 2, 3]
  for key in ("loss", "xy", "wh", "obj", "noobj", "cls", "cluster", "prior", "lr",
              "temperature", "cluster_weight", "steps_per_sec", "images_per_sec"):
    assert key in metrics[0], key
  # T anneals 1.5 -> 0 over soft_assign_steps=2: values at steps 0, 1, 2.
  np.testing.assert_allclose([m["temperature"] for m in metrics], [1.5, 0.75, 0.0], atol=1e-6)
  loss = sum(metrics[0][k] for k in ("xy", "wh", "obj", "noobj", "cls", "prior", "cluster"))
  np.testing.assert_allclose(metrics[0]["loss"], loss, rtol=1e-5)
  anchors = workdir_lib.read_anchors(workdir)
  assert anchors[0]["step"] == 0
  assert sorted(map(tuple, anchors[0]["anchors"])) == [(3, 3), (3, 9), (6, 6), (9, 3), (9, 9)]
  np.testing.assert_allclose(np.asarray(anchors[-1]["anchors_px"]),
                             32 * np.asarray(anchors[-1]["anchors"]), rtol=1e-4)
  assert len(anchors[-1]["counts"]) == 5
  evals = workdir_lib.read_evals(workdir)
  assert evals[-1]["step"] == 3 and 0 <= evals[-1]["AP50"] <= 1 and "per_class" in evals[-1]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir))
  assert "learned anchors (px)" in res.stdout and "AP50" in res.stdout
  # The run summary after the parsed lines: the same anchors per slot, AP50 in percent.
  out = res.stdout.splitlines()
  legacy = {line.split(": ")[0]: re.findall(r"\(([\d.]+), ([\d.]+)\)", line) for line in out
            if line.startswith(("initial anchors (px)", "learned anchors (px)"))}
  start = next(i for i, line in enumerate(out) if line.startswith("  ------  ---")) + 1
  rows = [line.split() for line in out[start:start + 5]]
  assert [[r[1], r[3]] for r in rows] == [list(p) for p in legacy["initial anchors (px)"]]
  assert [[r[5], r[7]] for r in rows] == [list(p) for p in legacy["learned anchors (px)"]]
  assert rows[0][1:4] == ["96.0", "x", "96.0"]    # uniform, sorted by area
  assert "  steps      3 of 3 (3 this run)" in out
  wall, loop = map(float, re.search(r"wall time  ([\d.]+) s \(training loop ([\d.]+) s",
                                     res.stdout).groups())
  assert 0 < loop <= wall
  rate = re.search(r"images/s   ([\d.]+) over the loop, ([\d.]+) median", res.stdout)
  assert float(rate.group(1)) == pytest.approx(3 * 8 / loop, abs=0.1)   # 3 steps of 8, 1 decimal
  assert f'  AP50 at step 3 (%)       {100 * evals[-1]["AP50"]:.2f}' in out
  assert f'  class-agnostic AP50 (%)  {100 * evals[-1]["AP50_agnostic"]:.2f}' in out
  assert f"  checkpoint    {workdir}/checkpoints/3" in out


def test_bad_override_fails_fast_with_message(tmp_path):
  res = train_util.run_main(str(tmp_path / "bad"), "--config.anchors.assign_metric=cosine",
                            "--config.input.image_size=100", timeout=120)
  assert res.returncode == 2
  assert "anchors.assign_metric" in res.stderr and "multiple of 32" in res.stderr


def _wait_for(predicate, proc, timeout=300):
  t0 = time.time()
  while not predicate():
    if proc.poll() is not None:
      raise AssertionError(f"process ended early: {proc.communicate()[1][-3000:]}")
    if time.time() - t0 > timeout:
      proc.kill()
      proc.communicate()
      raise AssertionError("timed out")
    time.sleep(0.05)


def _ckpt_steps(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(x) for x in os.listdir(d) if x.isdigit()) if os.path.isdir(d) else []


def test_kill_resume_equals_uninterrupted(tmp_path, reference_run):
  _, _, ref_state = reference_run
  workdir = str(tmp_path / "killed")
  # Slow each step down a little so that the run is caught mid-way.
  env = train_util.subprocess_env(4)
  proc = subprocess.Popen(train_util.main_cmd(workdir, *FLAGS), cwd=train_util.REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for(lambda: _ckpt_steps(workdir), proc)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()                                      # reaps it and closes the pipes
  killed_at = _ckpt_steps(workdir)[-1]
  assert killed_at < 12, "the run should have been killed before the end"
  # SIGTERM on the resumed run: it saves where it is and exits cleanly.
  proc = subprocess.Popen(train_util.main_cmd(workdir, *FLAGS), cwd=train_util.REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  logged = lambda: [r["step"] for r in workdir_lib.read_jsonl(metrics_path)]
  _wait_for(lambda: any(s > killed_at for s in logged()), proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  termed_at = _ckpt_steps(workdir)[-1]
  assert termed_at > killed_at
  # Finish in-process and compare with the uninterrupted run.
  train.train_and_evaluate(train_util.tiny_config(**RUN), workdir)
  step, state = train_util.restore_params(workdir, train_util.tiny_config(**RUN))
  assert step == 12
  train_util.assert_trees_close(state["params"], ref_state["params"], rtol=1e-5, atol=1e-6)
  train_util.assert_trees_close(state["batch_stats"], ref_state["batch_stats"], rtol=1e-5,
                                atol=1e-6)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


ONE_STEP = {"train.steps": 1, "train.checkpoint_every": 1, "train.log_every": 1,
            "eval.every_steps": 0}


def test_two_processes_equal_one_process(tmp_path):
  """One step of the same global batch (8) over 2 processes x 2 devices and over 1 x 4.

  Compared after one step, where only float32 round-off separates them: the update
  lr * g sums the per-device gradient shares in another order, so each leaf's update may
  differ by a round-off of the gradient sum (~1e-7 x the number of summed terms relative),
  far below 1e-3 of its largest entry. Many steps would amplify it (CPU kernels differ
  between machines), so a longer comparison would hold only on some machines.
  """
  config = train_util.tiny_config(**ONE_STEP)
  ref_dir = str(tmp_path / "one_proc")
  train.train_and_evaluate(config, ref_dir)
  _, ref = train_util.restore_params(ref_dir, config)
  ds = pipeline.build_dataset(config, "train")
  model = yolov2.from_config(config, num_classes=len(ds.class_names),
                             anchors=train.initial_anchors(config, ds))
  _, initial = train.create_state(config, model, train.make_schedules(config))

  workdir = str(tmp_path / "two_proc")
  port = _free_port()
  flags = [f"--config.{k}={v}" for k, v in ONE_STEP.items()]
  procs = []
  for pid in range(2):
    env = train_util.subprocess_env(2, ANCHOR_JAX_COORDINATOR=f"127.0.0.1:{port}",
                                    ANCHOR_JAX_NUM_PROCESSES=2, ANCHOR_JAX_PROCESS_ID=pid)
    procs.append(subprocess.Popen(train_util.main_cmd(workdir, *flags), cwd=train_util.REPO,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True))
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  step, state = train_util.restore_params(workdir, config)
  assert step == 1
  for (path, got), want, start in zip(jax.tree_util.tree_leaves_with_path(state["params"]),
                                      jax.tree.leaves(ref["params"]),
                                      jax.tree.leaves(initial.params)):
    update = np.asarray(want) - np.asarray(start)
    tol = 1e-3 * np.abs(update).max() + 1e-7 * np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=jax.tree_util.keystr(path))
  train_util.assert_trees_close(state["batch_stats"], ref["batch_stats"], rtol=1e-5, atol=1e-7)
  (two,) = workdir_lib.read_metrics(workdir)
  (one,) = workdir_lib.read_metrics(ref_dir)
  for key in ("loss", "xy", "wh", "obj", "noobj", "cls", "cluster"):
    np.testing.assert_allclose(two[key], one[key], rtol=1e-5, err_msg=key)   # forward only


def test_tiny_model_overfits_a_handful_of_images(tmp_path):
  config = train_util.tiny_config(**{
      "dataset.train_examples": 8, "dataset.preset": "mixed", "dataset.num_classes": 2,
      # BN running averages must converge within the short run for eval mode to be
      # meaningful: momentum 0.9 instead of darknet's 0.99.
      "model.width": 0.25, "model.bn_momentum": 0.9, "input.image_size": 64, "train.steps": 150,
      "train.batch_size": 8, "train.lr_shape": "piecewise", "train.lr_schedule": ((0, 1e-3),),
      "train.burn_in_steps": 10,
      "train.log_every": 25, "train.checkpoint_every": 1000, "eval.every_steps": 0,
      "anchors.init": "kmeans", "anchors.soft_assign_steps": 20, "anchors.cluster_steps": 20})
  workdir = str(tmp_path / "overfit")
  train.train_and_evaluate(config, workdir)
  metrics = workdir_lib.read_metrics(workdir)
  assert metrics[-1]["loss"] < 0.3 * metrics[0]["loss"]
  # AP50 on the 8 training images themselves.
  train_ds = pipeline.build_dataset(config, "train")
  step, state = train_util.restore_params(workdir, config)
  ev = runner.Evaluator(config, train_ds, model=yolov2.from_config(
      config, num_classes=2, anchors=[[1.0, 1.0]] * config.anchors.num))
  result = ev.run(state["params"], state["batch_stats"])
  assert result["AP50"] > 0.5, result


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = train_util.tiny_config(**{**RUN, "train.lr_shape": "piecewise",
                                     "train.lr_schedule": ((0, 1e-3), (5, 1e12)),
                                     "train.burn_in_steps": 0})
  workdir = str(tmp_path / "nan")
  with pytest.raises(train.NonFiniteLossError, match=r"at step (\d+).*last good checkpoint is step 4"):
    train.train_and_evaluate(config, workdir)
  assert _ckpt_steps(workdir) == [4]
