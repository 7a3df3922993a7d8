"""Fault injection: what a hostile but realistic user does, and the one line each gets.

Each test provokes one failure of the reliability issue (two runs on one workdir, a refused
resume, a structural change, damaged checkpoints, errors that can be found at start,
Ctrl-C / SIGTERM, user errors that used to be tracebacks) and asserts the exit status, the
message and what is (not) written. Training runs in-process where it can (one tiny run is
trained once and copied), in a subprocess where a signal is needed.
"""
import errno
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from anchor_jax import workdir as workdir_lib
from anchor_jax.tools import anchors as anchors_tool
from anchor_jax.tools import evaluate as evaluate_tool
from anchor_jax.tools import inspect as inspect_tool
from anchor_jax.tools import train as train_tool
from anchor_jax.training import checkpoint as ckpt_lib
from tests import REPO, data_fixtures, train_util

TINY = "--config=configs/synthetic.py:tiny"


def _train(capsys, workdir, *overrides):
  """The training CLI in-process: (exit status, stderr)."""
  code = train_tool.run([TINY, f"--workdir={workdir}", *overrides])
  return code, capsys.readouterr().err


def _error_line(err: str) -> str:
  """The one ``error:`` line (absl's log lines aside); fails if there is not exactly one."""
  lines = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(lines) == 1, err[-2000:]
  assert "Traceback" not in err, err[-2000:]
  return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished 4-step tiny run (checkpoints at steps 2 and 4)."""
  workdir = str(tmp_path_factory.mktemp("finished") / "run")
  monkey = pytest.MonkeyPatch()
  monkey.chdir(REPO)
  assert train_tool.run([TINY, f"--workdir={workdir}"]) == 0
  monkey.undo()
  return workdir


@pytest.fixture
def run_copy(finished, tmp_path, monkeypatch):
  monkeypatch.chdir(REPO)
  copy = str(tmp_path / "run")
  shutil.copytree(finished, copy)
  return copy


# ------------------------------------------------------------------ 1. one run per workdir


def test_second_run_on_a_held_workdir_exits_2_naming_the_holder(run_copy, capsys, caplog):
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    lock = {"pid": holder.pid, "host": socket.gethostname(), "started": "2026-12-01T00:00:00"}
    with open(os.path.join(run_copy, workdir_lib.LOCK), "w") as f:
      json.dump(lock, f)
    before = pathlib.Path(run_copy, workdir_lib.CONFIG).read_text()
    code, err = _train(capsys, run_copy, "--config.train.steps=6")
    line = _error_line(err)
    assert code == 2 and f"in use by process {holder.pid}" in line
    assert socket.gethostname() in line
    assert pathlib.Path(run_copy, workdir_lib.CONFIG).read_text() == before   # untouched
    assert [r["step"] for r in workdir_lib.read_metrics(run_copy)][-1] == 4
    # Reading tools take no lock: evaluate and inspect work while the run holds it.
    assert evaluate_tool.run([f"--workdir={run_copy}"]) == 0
    assert inspect_tool.run([f"--workdir={run_copy}", f"--out={run_copy}/fig"]) == 0
    capsys.readouterr()
  finally:
    holder.kill()
    holder.wait()
  # Its process is gone now: the lock is stale, taken over with a warning.
  code, err = _train(capsys, run_copy, "--config.train.steps=6")
  assert code == 0 and f"stale lock of process {holder.pid}" in caplog.text
  assert not os.path.exists(os.path.join(run_copy, workdir_lib.LOCK))    # released
  assert [r["step"] for r in workdir_lib.read_metrics(run_copy)][-1] == 6


def test_lock_from_another_host_is_not_taken(run_copy, capsys):
  with open(os.path.join(run_copy, workdir_lib.LOCK), "w") as f:
    json.dump({"pid": 1, "host": "elsewhere", "started": "then"}, f)
  code, err = _train(capsys, run_copy, "--config.train.steps=6")
  line = _error_line(err)
  assert code == 2 and "process 1 on host elsewhere" in line and "delete" in line


# ------------------------------------------------------------------ 2-3. refused resumes


def test_structural_change_is_refused_by_key_and_config_json_is_kept(run_copy, capsys):
  before = pathlib.Path(run_copy, workdir_lib.CONFIG).read_text()
  code, err = _train(capsys, run_copy, "--config.model.width=0.25")
  line = _error_line(err)
  assert code == 2 and "model.width: checkpoint 0.125, now 0.25" in line
  assert "corrupt" not in line and "delete" not in line.lower()
  assert pathlib.Path(run_copy, workdir_lib.CONFIG).read_text() == before
  assert sorted(os.listdir(os.path.join(run_copy, "checkpoints"))) == ["2", "4"]


def test_evaluate_uses_the_checkpoints_own_config(run_copy, capsys):
  # Someone edits config.json (another eval split size): the checkpoint's config decides.
  path = os.path.join(run_copy, workdir_lib.CONFIG)
  config = json.loads(pathlib.Path(path).read_text())
  config["dataset"]["eval_examples"] = 3
  with open(path, "w") as f:
    json.dump(config, f)
  assert evaluate_tool.run([f"--workdir={run_copy}", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["num_images"] == 16 and out["step"] == 4    # the tiny config's 16, not 3


# ------------------------------------------------------------------ 4. damaged checkpoints


def _largest_file(directory):
  files = [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names]
  return max(files, key=os.path.getsize)


def test_unreadable_latest_checkpoint_falls_back_and_is_moved_aside(run_copy, capsys, caplog):
  state = os.path.join(run_copy, "checkpoints", "4", "state")
  os.remove(os.path.join(state, "manifest.ocdbt"))                  # a torn checkpoint
  assert evaluate_tool.run([f"--workdir={run_copy}", "--json"]) == 0
  captured = capsys.readouterr()
  assert json.loads(captured.out)["step"] == 2
  assert "Checkpoint 4" in caplog.text and "4.unreadable" in caplog.text
  assert sorted(os.listdir(os.path.join(run_copy, "checkpoints"))) == ["2", "4.unreadable"]
  # Training resumes from step 2 and finishes.
  code, err = _train(capsys, run_copy)
  assert code == 0, err[-2000:]
  assert "Resumed" in caplog.text and "at step 2" in caplog.text


def test_flipped_bytes_fail_the_checksum(run_copy, capsys, caplog):
  data = _largest_file(os.path.join(run_copy, "checkpoints", "4", "state"))
  with open(data, "r+b") as f:
    f.seek(os.path.getsize(data) // 2)
    chunk = f.read(64)
    f.seek(-len(chunk), os.SEEK_CUR)
    f.write(bytes(b ^ 0xFF for b in chunk))
  assert evaluate_tool.run([f"--workdir={run_copy}", "--json"]) == 0
  captured = capsys.readouterr()
  assert json.loads(captured.out)["step"] == 2
  assert "Checkpoint 4" in caplog.text and "moved to" in caplog.text


def test_checksum_is_of_the_arrays_whatever_the_tree_type():
  state = {"a": np.arange(4.0), "b": {"c": np.ones((2, 2), np.float32)}}
  same = {"b": {"c": np.ones((2, 2), np.float32)}, "a": np.arange(4.0)}
  assert ckpt_lib.state_checksum(state) == ckpt_lib.state_checksum(same)
  changed = {"a": np.arange(4.0), "b": {"c": np.full((2, 2), 1.0 + 1e-7, np.float32)}}
  assert ckpt_lib.state_checksum(state) != ckpt_lib.state_checksum(changed)


def test_full_disk_while_saving_names_the_intact_checkpoints(run_copy, capsys, monkeypatch):
  def no_space(self, *args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(ckpt_lib.ocp.CheckpointManager, "save", no_space)
  code, err = _train(capsys, run_copy, "--config.train.steps=6")
  line = _error_line(err)
  assert code == 2 and "could not write checkpoint 6" in line
  assert "No space left on device" in line and "Intact checkpoints: [4, 2]" in line


# ------------------------------------------------------------------ 5. errors found at start


def test_errors_found_before_any_step(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  # dataset.path given with the synthetic data, which reads no path.
  code, err = _train(capsys, tmp_path / "a", f"--config.dataset.path={tmp_path}")
  assert code == 2 and "not read by dataset.name=synthetic" in _error_line(err)
  assert not os.path.exists(tmp_path / "a" / workdir_lib.CONFIG)
  # eval.metric=brainwash on five classes.
  code, err = _train(capsys, tmp_path / "b", "--config.eval.metric=brainwash")
  assert code == 2 and "brainwash scores one class" in _error_line(err)
  assert not os.path.exists(tmp_path / "b" / workdir_lib.METRICS)
  # A batch the devices cannot split: refused before config.json is written.
  code, err = _train(capsys, tmp_path / "c", "--config.train.batch_size=6")
  assert code == 2 and "divisible by the 4 devices" in _error_line(err)
  assert not os.path.exists(tmp_path / "c" / workdir_lib.CONFIG)
  # An unknown key: one line with the hint.
  code, err = _train(capsys, tmp_path / "d", "--config.train.stepz=3")
  assert code == 2 and 'unknown config key --config.train.stepz (Did you mean "steps"' in \
      _error_line(err)
  # A workdir under a file: cannot be created.
  blocker = tmp_path / "file"
  blocker.write_text("")
  code, err = _train(capsys, blocker / "run")
  assert code == 2 and "cannot create --workdir" in _error_line(err)


def test_coco_json_with_repeated_image_ids_is_refused_at_open(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  root = tmp_path / "coco"
  for name in ("a.jpg", "b.jpg"):
    data_fixtures.write_image(str(root / "train" / name), 40, 50, [(5, 5, 20, 20)])
  data_fixtures.write_json(str(root / "annotations" / "instances_train.json"), {
      "images": [{"id": 7, "file_name": "a.jpg", "height": 40, "width": 50},
                 {"id": 7, "file_name": "b.jpg", "height": 40, "width": 50}],
      "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [5, 5, 15, 15]}],
      "categories": [{"id": 1, "name": "cat"}]})
  code, err = _train(capsys, tmp_path / "run", "--config.dataset.name=coco_json",
                     f"--config.dataset.path={root}", "--config.dataset.train_split=train",
                     "--config.dataset.eval_split=train")
  line = _error_line(err)
  assert code == 2 and "image id(s) used by more than one image entry, e.g. [7]" in line


def test_anchors_cli_refuses_fewer_distinct_shapes_than_k(tmp_path, capsys):
  csv = tmp_path / "boxes.csv"
  csv.write_text("w,h\n10,10\n10,10\n20,30\n")
  assert anchors_tool.run([f"--boxes={csv}", "--k=5"]) == 2
  assert "need at least 5 distinct box shapes; the boxes have 2" in _error_line(
      capsys.readouterr().err)


# ------------------------------------------------------------------ 6. signals


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_ctrl_c_and_sigterm_checkpoint_and_say_how_to_resume(tmp_path, sig, status, capsys,
                                                             monkeypatch):
  monkeypatch.chdir(REPO)
  workdir = str(tmp_path / "run")
  proc = subprocess.Popen(
      train_util.main_cmd(workdir, "--config.train.steps=100000", "--config.train.log_every=1",
                          "--config.train.checkpoint_every=100000"),
      cwd=REPO, env=train_util.subprocess_env(4), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while not workdir_lib.read_metrics(workdir):           # wait for the first steps
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
    time.sleep(0.1)
  # A second run on the same workdir while the first trains: refused, naming it.
  code, second = _train(capsys, workdir)
  assert code == 2 and f"in use by process {proc.pid}" in _error_line(second)
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=240)
  assert proc.returncode == status, err[-2000:]
  (line,) = [x for x in out.splitlines() if x.startswith("stopped by")]
  step = int(line.split(" at step ")[1].split()[0])
  assert f"stopped by {signal.Signals(sig).name} at step {step} of 100000" in line
  assert "run the same command again to resume" in line
  assert os.path.isdir(os.path.join(workdir, "checkpoints", str(step)))    # nothing lost
  assert not os.path.exists(os.path.join(workdir, workdir_lib.LOCK))
