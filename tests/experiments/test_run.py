"""The sweep runner (experiments/run.py) with a fake trainer (tests/fake_trainer.py):
skip, resume, failures, Ctrl-C, the tables' numbers; every sweep file's configs; and
one real two-run sweep of the tiny config (slow)."""
import csv
import glob
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from anchor_jax import config_lib
from experiments import launcher, run, sweep_lib
from experiments import workdir as wd
from tests import REPO

FAKE = os.path.join(REPO, "tests", "fake_trainer.py")
TRAINER = f"--trainer={sys.executable} {FAKE}"
SWEEP_FILES = sorted(glob.glob(os.path.join(REPO, "experiments", "sweeps", "[!_]*.py")))


def write_sweep(path, runs, *, rows=("r",), cols=("c",), diff=None, config="fake.py",
                base=()):
  table = {"row_header": "Row", "rows": list(rows), "cols": list(cols)}
  if diff:
    table["diff"] = diff
  sweep = {"title": "Test sweep", "config": config, "base": list(base), "runs": runs,
           "table": table}
  path.write_text(f"VARIANTS = ('x',)\n\n\ndef get_sweep(arg='x'):\n  return {sweep!r}\n")
  return str(path)


def run_main(sweep, root, *args, trainer=TRAINER):
  argv = [sweep, f"--workdir_root={root}", *args] + ([trainer] if trainer else [])
  return run.run(argv)


def launches(root, name, seed):
  path = pathlib.Path(root, name, f"seed{seed}", "launches.txt")
  return path.read_text().split() if path.exists() else []


def read_csv(root):
  with open(os.path.join(root, "results.csv")) as f:
    return list(csv.DictReader(f))


def test_finished_runs_are_skipped(tmp_path):
  sweep = write_sweep(tmp_path / "s.py", [
      {"name": "a", "overrides": ["--config.fake.ap50=0.3"], "row": "r", "col": "c"},
      {"name": "b", "overrides": ["--config.fake.ap50=0.4"]}])
  root = tmp_path / "out"
  assert run_main(sweep, root, "--seeds=2") == 0
  for name in ("a", "b"):
    for seed in (0, 1):
      assert launches(root, name, seed) == ["start=0"]
      done = json.loads((root / name / f"seed{seed}" / wd.DONE).read_text())
      assert done["step"] == 4 and "AP50" in done
  first = read_csv(root)
  assert run_main(sweep, root, "--seeds=2") == 0
  for name in ("a", "b"):
    for seed in (0, 1):
      assert launches(root, name, seed) == ["start=0"]     # not relaunched
  assert [r["AP50"] for r in read_csv(root)] == [r["AP50"] for r in first]
  assert all(r["status"] == "done" for r in first) and len(first) == 4


def test_unfinished_run_resumes_and_finishes(tmp_path):
  sweep = write_sweep(tmp_path / "s.py", [
      {"name": "crash", "overrides": ["--config.fake.kill_at=2"], "row": "r", "col": "c"},
      {"name": "ok", "overrides": []}])
  root = tmp_path / "out"
  assert run_main(sweep, root) == 1                      # killed halfway: recorded
  assert not (root / "crash" / "seed0" / wd.DONE).exists()
  failures = wd.read_jsonl(str(root / "failures.jsonl"))
  assert [(f["name"], f["rc"]) for f in failures] == [("crash", -signal.SIGKILL)]
  assert {r["name"]: r["status"] for r in read_csv(root)} == {"crash": "failed", "ok": "done"}
  assert run_main(sweep, root) == 0                      # relaunched, resumes, finishes
  assert launches(root, "crash", 0) == ["start=0", "start=2"]
  assert launches(root, "ok", 0) == ["start=0"]
  assert (root / "crash" / "seed0" / wd.DONE).exists()
  assert {r["name"]: r["status"] for r in read_csv(root)} == {"crash": "done", "ok": "done"}
  attempts = wd.attempts(str(root / "crash" / "seed0"))
  assert [a["rc"] for a in attempts] == [-signal.SIGKILL, 0]
  assert float(read_csv(root)[0]["wall_s"]) == pytest.approx(
      sum(a["wall_s"] for a in attempts), abs=0.1)


def test_failure_is_recorded_and_the_sweep_goes_on(tmp_path):
  sweep = write_sweep(tmp_path / "s.py", [
      {"name": "bad", "overrides": ["--config.fake.fail=3"], "row": "r", "col": "c"},
      {"name": "good", "overrides": ["--config.fake.ap50=0.25"], "row": "r", "col": "d"}],
      cols=("c", "d"))
  root = tmp_path / "out"
  assert run_main(sweep, root) == 1
  (failure,) = wd.read_jsonl(str(root / "failures.jsonl"))
  assert failure["name"] == "bad" and failure["seed"] == 0 and failure["rc"] == 3
  assert len(failure["log_tail"]) == 30
  assert failure["log_tail"][0] == "fake log line 11"
  assert failure["log_tail"][-1] == "error: asked to fail"
  assert (root / "good" / "seed0" / wd.DONE).exists()
  md = (root / "results.md").read_text()
  assert "| r | failed | 25.00 |" in md
  assert "## Failures" in md and "`bad` seed 0: exit code 3" in md


def test_trainer_that_cannot_start_is_a_failure(tmp_path):
  sweep = write_sweep(tmp_path / "s.py", [{"name": "a", "overrides": []}])
  root = tmp_path / "out"
  assert run_main(sweep, root, trainer=f"--trainer={tmp_path}/no_such_trainer") == 1
  (failure,) = wd.read_jsonl(str(root / "failures.jsonl"))
  assert failure["rc"] == 127 and "cannot start" in failure["reason"]


TABLE_RUNS = [
    {"name": "r1_base", "overrides": ["--config.fake.ap50=0.40,0.41,0.44",
                                      "--config.fake.ap=0.20,0.21,0.22"],
     "row": "r1", "col": "Baseline"},
    {"name": "r1_opt", "overrides": ["--config.fake.ap50=0.45,0.47,0.49",
                                     "--config.fake.ap=0.2,0.2,0.2"],
     "row": "r1", "col": "Opt"},
    {"name": "r2_base", "overrides": ["--config.fake.ap50=0.30", "--config.fake.fail=1",
                                      "--config.fake.fail_seeds=2"],
     "row": "r2", "col": "Baseline"},
]


def _table(md, metric):
  """The lines of the results.md table under '## <metric> (%)'."""
  lines = md.split(f"## {metric} (%)\n\n")[1].split("\n\n")[0].splitlines()
  return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_table_numbers_are_mean_and_std_over_seeds(tmp_path):
  sweep = write_sweep(tmp_path / "s.py", TABLE_RUNS, rows=("r1", "r2"),
                      cols=("Baseline", "Opt"), diff={"along": "cols", "base": "Baseline"})
  root = tmp_path / "out"
  assert run_main(sweep, root, "--seeds=3") == 1        # r2_base seed 2 fails
  md = (root / "results.md").read_text()
  assert md.splitlines()[2] == (
      f"Produced by: `python -m experiments.run {sweep} --seeds=3 '{TRAINER}' "
      f"--workdir_root={root}`")
  # By hand: r1 Baseline 40, 41, 44 -> 41.667, s = sqrt((1.667^2 + .667^2 + 2.333^2) / 2)
  # = 2.082; r1 Opt 45, 47, 49 -> 47 +- 2; Opt - Baseline per seed 5, 6, 5 -> 5.333 +- .577,
  # 95 % CI 5.333 -+ t(.975, 2) .577 / sqrt(3) = 5.333 -+ 4.303 x .333 = [3.90, 6.77].
  assert _table(md, "AP50") == [
      ["Row", "Baseline", "Opt", "Opt − Baseline"],
      ["---"] * 4,
      ["r1", "41.67 ± 2.08", "47.00 ± 2.00", "+5.33 ± 0.58 [+3.90, +6.77]"],
      ["r2", "30.00 ± 0.00 (n=2, 1 failed)", "n/a", "n/a"]]
  # AP (COCO) is reported since runs have it: 20, 21, 22 -> 21 +- 1; Opt 20 -> diffs 0, -1, -2
  # -> -1 +- 1, CI -1 -+ 4.303 / sqrt(3) = [-3.48, +1.48].
  assert _table(md, "AP")[2:] == [["r1", "21.00 ± 1.00", "20.00 ± 0.00",
                                   "-1.00 ± 1.00 [-3.48, +1.48]"],
                                  ["r2", "n/a", "n/a", "n/a"]]   # r2 reports no AP
  rows = read_csv(root)
  assert len(rows) == 9
  r1 = [r for r in rows if r["name"] == "r1_base"]
  assert [float(r["AP50"]) for r in r1] == [0.40, 0.41, 0.44]
  assert [json.loads(r["anchors_px"]) for r in r1] == [
      [[32.0 * (1 + s), 64.0], [96.0, 132.0]] for s in range(3)]
  assert [r["status"] for r in rows if r["name"] == "r2_base"] == ["done", "done", "failed"]
  # --table_only rebuilds the same tables without launching anything.
  os.remove(root / "results.md")
  assert run_main(sweep, root, "--table_only", trainer=None) == 0
  assert _table((root / "results.md").read_text(), "AP50") == _table(md, "AP50")
  assert launches(root, "r1_base", 0) == ["start=0"]


@pytest.mark.parametrize("diff,expected", [
    ({"along": "rows", "base": "Baseline"},
     [["Opt", "47.00 ± 2.00 (+5.33 ± 0.58 [+3.90, +6.77])"], ["Baseline", "41.67 ± 2.08"]]),
    ({"run": "ref"}, [["Opt", "47.00 ± 2.00 (+5.33 ± 0.58 [+3.90, +6.77])"],
                      ["Baseline", "41.67 ± 2.08 (+0.00 ± 0.00 [+0.00, +0.00])"]]),
])
def test_row_and_reference_differences(tmp_path, diff, expected):
  runs = [dict(TABLE_RUNS[1], row="Opt", col="AP50"),
          dict(TABLE_RUNS[0], row="Baseline", col="AP50"),
          {"name": "ref", "overrides": TABLE_RUNS[0]["overrides"]}]    # outside the grid
  sweep = write_sweep(tmp_path / "s.py", runs, rows=("Opt", "Baseline"), cols=("AP50",),
                      diff=diff)
  root = tmp_path / "out"
  assert run_main(sweep, root, "--seeds=3") == 0
  md = (root / "results.md").read_text()
  assert _table(md, "AP50")[2:] == expected
  if "run" in diff:
    assert "difference to `ref`: 41.67 ± 2.08." in md


def test_one_seed_has_no_std(tmp_path):
  sweep = write_sweep(tmp_path / "s.py", TABLE_RUNS[:2], rows=("r1",),
                      cols=("Baseline", "Opt"), diff={"along": "cols", "base": "Baseline"})
  root = tmp_path / "out"
  assert run_main(sweep, root) == 0
  assert _table((root / "results.md").read_text(), "AP50")[2] == [
      "r1", "40.00", "45.00", "+5.00"]


def test_dry_run_launches_nothing(tmp_path, capsys):
  sweep = write_sweep(tmp_path / "s.py", [{"name": "a", "overrides": ["--config.x=1"]},
                                          {"name": "b", "overrides": []}],
                      base=["--config.y=2"])
  root = tmp_path / "out"
  os.makedirs(root / "b" / "seed0")
  (root / "b" / "seed0" / "config.json").write_text("{}")   # started, never finished
  assert run_main(sweep, root, "--dry_run", "--only=a") == 0
  out = capsys.readouterr().out.splitlines()
  assert len(out) == 1 and out[0].startswith("start ")
  assert out[0].endswith(f"--config=fake.py --workdir={root}/a/seed0 --config.seed=0 "
                         "--config.y=2 --config.x=1")
  assert run_main(sweep, root, "--dry_run") == 0
  assert capsys.readouterr().out.splitlines()[1].startswith("resume ")
  assert not (root / "a").exists()


def test_ctrl_c_stops_the_trainers_and_a_rerun_resumes(tmp_path):
  sweep = write_sweep(tmp_path / "s.py", [
      {"name": n, "overrides": ["--config.train.steps=200", "--config.fake.sleep=0.05"]}
      for n in ("a", "b")])
  root = tmp_path / "out"
  cmd = [sys.executable, "-m", "experiments.run", sweep, f"--workdir_root={root}",
         "--parallel=2", TRAINER]
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  ckpts = [root / n / "seed0" / "ckpt.json" for n in ("a", "b")]
  deadline = time.time() + 60
  while not all(p.exists() for p in ckpts):
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  out, _ = proc.communicate(timeout=60)
  assert proc.returncode == 130, out
  for name in ("a", "b"):
    workdir = str(root / name / "seed0")
    assert wd.status(workdir) == wd.STATUS_INCOMPLETE
    assert wd.attempts(workdir)[-1]["interrupted"] is True
    assert "SIGTERM: saved step" in pathlib.Path(workdir, wd.LOG).read_text()
  assert not (root / "failures.jsonl").exists()
  assert (root / "results.md").exists()
  assert run_main(sweep, root, "--parallel=2", "--override=--config.fake.sleep=0") == 0
  for name in ("a", "b"):
    starts = launches(root, name, 0)
    assert len(starts) == 2 and starts[1] != "start=0"
    assert wd.status(str(root / name / "seed0")) == wd.STATUS_DONE


def test_cpu_slices_are_disjoint_and_cover_the_cpus():
  assert launcher.cpu_slices([0, 1], 2) == [[0], [1]]
  assert launcher.cpu_slices([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3, 4]]
  assert launcher.cpu_slices([4, 5, 6, 7], 1) == [[4, 5, 6, 7]]
  assert launcher.cpu_slices([0, 1], 3) == [[0], [1], [0]]   # fewer CPUs: shared


def test_pinned_runs_get_their_own_cpu_slice(tmp_path):
  """--pin: the first two runs start together on the two slices; every run is on one."""
  runs = [{"name": f"r{i}", "overrides": ["--config.fake.sleep=0.3"], "row": "r",
           "col": f"c{i}"} for i in range(3)]
  sweep = write_sweep(tmp_path / "s.py", runs, cols=("c0", "c1", "c2"))
  root = tmp_path / "out"
  assert run.run([sweep, f"--workdir_root={root}", "--parallel=2", "--pin", TRAINER]) == 0
  slices = launcher.cpu_slices(sorted(os.sched_getaffinity(0)), 2)
  got = [(root / f"r{i}" / "seed0" / "cpus.txt").read_text().split() for i in range(3)]
  assert all(len(g) == 1 and list(map(int, g[0].split(","))) in slices for g in got)
  if len(os.sched_getaffinity(0)) >= 2:
    assert got[0] != got[1]          # started together: different slices
  unpinned = tmp_path / "free"
  assert run.run([sweep, f"--workdir_root={unpinned}", "--parallel=2", TRAINER]) == 0
  all_cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
  assert (unpinned / "r0" / "seed0" / "cpus.txt").read_text().split() == [all_cpus]


def test_bad_sweeps_are_rejected(tmp_path):
  cases = [
      ([{"name": "a", "overrides": []}, {"name": "a", "overrides": []}], "used twice"),
      ([{"name": "a", "overrides": ["--config.seed=3"]}], "runner sets --config.seed"),
      ([{"name": "a b", "overrides": []}], "must match"),
      ([{"name": "a", "overrides": [], "row": "r", "col": "zz"}], "not in the table"),
  ]
  for i, (runs, message) in enumerate(cases):
    path = write_sweep(tmp_path / f"s{i}.py", runs)
    with pytest.raises(sweep_lib.SweepError, match=message):
      sweep_lib.load(path)
  assert run_main(write_sweep(tmp_path / "t.py", cases[0][0]), tmp_path / "o") == 2


@pytest.mark.parametrize("spec", [
    f"experiments/sweeps/{os.path.basename(path)}:{variant}"
    for path in SWEEP_FILES for variant in sweep_lib.variants(path)])
def test_sweep_files_load_with_valid_configs(spec, monkeypatch):
  monkeypatch.chdir(REPO)
  sweep = sweep_lib.load(spec)
  names = [r["name"] for r in sweep["runs"]]
  assert len(names) == len(set(names))
  cells = {(r["row"], r["col"]) for r in sweep["runs"] if "row" in r}
  full = len(sweep["table"]["rows"]) * len(sweep["table"]["cols"])
  if "table1.py" in spec:   # the other tools' anchors are Baseline rows only
    assert len(cells) == full - 2 and all(c == "Baseline" for r, c in cells if "(" in r)
  else:
    assert len(cells) == full
  sweep_lib.check_configs(sweep_lib.jobs(sweep, root="/unused", seeds=[0]))


@pytest.mark.parametrize("sweep_file", ["table1.py", "table6.py", "fig4.py", "warmup_grid.py"])
def test_cpu_tiny_runs_detect_one_class_as_brainwash(sweep_file, monkeypatch):
  """The Brainwash stand-in: every cpu_tiny run of every sweep is one class on `tiny`;
  the other presets keep all shape classes."""
  monkeypatch.chdir(REPO)
  for variant, want in (("cpu_tiny", 1), ("cpu_mixed", 0)):
    sweep = sweep_lib.load(f"experiments/sweeps/{sweep_file}:{variant}")
    for job in sweep_lib.jobs(sweep, root="/unused", seeds=[0]):
      config = config_lib.load(job.config, list(job.overrides))
      assert config.dataset.preset == variant[4:] and config.dataset.num_classes == want


def test_sweep_typo_is_caught(monkeypatch):
  monkeypatch.chdir(REPO)
  job = sweep_lib.Job(name="x", seed=0, config="configs/synthetic.py:study",
                      overrides=("--config.anchors.temprature=1",), workdir="/unused")
  with pytest.raises(sweep_lib.SweepError, match="temprature"):
    sweep_lib.check_configs([job])


def test_study_variant_is_the_cpu_scale_config():
  """The study run is the demo's recipe and model, shorter, with one eval at the end; its
  shares of the run follow train.steps (the sweeps may override it)."""
  c = config_lib.load(os.path.join(REPO, "configs/synthetic.py:study"))
  config_lib.validate(c)
  steps = c.train.steps
  assert (c.model.name, c.model.width, c.input.image_size, c.train.batch_size) == (
      "tiny_s2d", 0.25, 160, 16)
  assert (c.train.lr_shape, c.train.peak_lr, tuple(c.train.lr_decay_at)) == (
      "step", 1e-2, (0.75, 0.95))
  assert (c.anchors.soft_assign_steps, c.anchors.cluster_steps) == (steps // 4, steps // 4)
  assert c.eval.every_steps == 0 and not c.eval.plot and c.anchors.lr_mult == 10.0
  longer = config_lib.load(os.path.join(REPO, "configs/synthetic.py:study"),
                           [f"--config.train.steps={2 * steps}"])
  assert longer.anchors.soft_assign_steps == steps // 2 and longer.eval.every_steps == 0


@pytest.mark.slow
def test_real_two_run_sweep_of_the_tiny_config(tmp_path, monkeypatch):
  monkeypatch.chdir(REPO)
  sweep = write_sweep(
      tmp_path / "s.py",
      [{"name": "baseline", "overrides": ["--config.anchors.optimize=False"],
        "row": "tiny", "col": "Baseline"},
       {"name": "opt", "overrides": [], "row": "tiny", "col": "Opt"}],
      rows=("tiny",), cols=("Baseline", "Opt"), diff={"along": "cols", "base": "Baseline"},
      config="configs/synthetic.py:tiny", base=["--config.train.steps=2"])
  root = tmp_path / "out"
  assert run_main(sweep, root, "--parallel=2", trainer=None) == 0, (
      (root / "baseline/seed0/train.log").read_text()[-3000:])
  rows = read_csv(root)
  assert [r["status"] for r in rows] == ["done", "done"]
  for r in rows:
    assert 0 <= float(r["AP50"]) <= 1 and len(json.loads(r["anchors_px"])) == 5
    assert json.loads(pathlib.Path(r["workdir"], wd.DONE).read_text())["step"] == 2
  table = _table((root / "results.md").read_text(), "AP50")
  assert table[0] == ["Row", "Baseline", "Opt", "Opt − Baseline"]
  assert "n/a" not in table[2]


def test_append_after_a_torn_line_keeps_the_new_record(tmp_path):
  path = str(tmp_path / "attempts.jsonl")
  wd.append_jsonl(path, {"a": 1})
  with open(path, "a") as f:
    f.write('{"torn": ')                 # a write cut short by a kill
  wd.append_jsonl(path, {"b": 2})
  wd.append_jsonl(path, {"c": 3})
  assert wd.read_jsonl(path) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_an_error_in_the_runner_stops_its_trainers(tmp_path):
  """Not only Ctrl-C: any exception in the loop stops the trainers before it propagates."""
  import unittest.mock

  from experiments import launcher
  sweep = sweep_lib.load(write_sweep(tmp_path / "s.py", [
      {"name": "a", "overrides": ["--config.train.steps=400", "--config.fake.sleep=0.05"]}]))
  jobs = sweep_lib.jobs(sweep, root=str(tmp_path / "out"), seeds=[0])
  runner = launcher.Launcher([sys.executable, FAKE], root=str(tmp_path / "out"),
                             grace_s=10, poll_s=0.05, echo=lambda text: None)
  ckpt = tmp_path / "out" / "a" / "seed0" / "ckpt.json"
  procs, real_sleep = [], time.sleep

  def sleep(seconds):          # the loop's poll fails once the trainer has saved a step
    real_sleep(seconds)
    if ckpt.exists() and not procs:
      procs.extend(proc for _, proc, _, _ in runner.running.values())
      raise OSError("disk full")
  with unittest.mock.patch.object(launcher.time, "sleep", sleep):
    with pytest.raises(OSError, match="disk full"):
      runner.run(jobs)
  assert len(procs) == 1 and procs[0].poll() is not None      # the trainer was stopped
  assert json.loads(ckpt.read_text())["step"] < 400
