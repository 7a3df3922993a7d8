"""The recipe's targets (issue 12), measured: the demo and the study config on 2 CPU cores.

  python experiments/benchmarks/check_targets.py                      # reads the workdirs
  python experiments/benchmarks/check_targets.py --run_demo           # trains the demo first

Reads what ``make demo`` (``--demo_workdir``) and ``make study`` (``--study_root``, one
folder per synthetic preset) left on disk, and prints each target with its measured value:

* demo: AP50 (VOC07) on the ``mixed`` eval split >= --demo_ap50 (60 %) within
  --demo_minutes (5) of training, from the identical init. Training time is the loop's
  wall time (``elapsed_s`` of the last metrics.jsonl line: compile and evals included);
* study: per preset, the Table 1 runs' AP50 >= --study_ap50 (50 %), each run's wall time
  <= --study_minutes (5; the runner's ``attempts.jsonl``, start-up included), and the std
  over seeds of the paired Opt - Baseline difference <= --max_paired_std (0.5 points).
"""
import os
import statistics
import subprocess
import sys

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # run as a script from anywhere: the repository's packages
from anchor_jax import workdir as workdir_lib  # noqa: E402
from experiments import results, sweep_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("demo_workdir", "runs/demo", "The demo's workdir (make demo).")
flags.DEFINE_string("study_root", "runs/study", "make study's root: one folder per preset.")
flags.DEFINE_bool("run_demo", False, "Train the demo into --demo_workdir first.")
flags.DEFINE_float("demo_ap50", 60.0, "Demo target, AP50 %.")
flags.DEFINE_float("demo_minutes", 5.0, "Demo target, minutes of training.")
flags.DEFINE_float("study_ap50", 50.0, "Study target, AP50 % of every Table 1 run.")
flags.DEFINE_float("study_minutes", 5.0, "Study target, minutes per run.")
flags.DEFINE_float("max_paired_std", 0.5, "Study target, std of Opt - Baseline (points).")
PRESETS = ("mixed", "tiny", "wide")


def _mark(ok) -> str:
  return "n/a" if ok is None else ("met" if ok else "NOT met")


def demo_report(workdir: str) -> list[str]:
  """The demo's lines: AP50 and training time against the targets."""
  evals, metrics = workdir_lib.read_evals(workdir), workdir_lib.read_metrics(workdir)
  if not evals or not metrics:
    return [f"demo: no finished run in {workdir} (make demo, or --run_demo)"]
  config = workdir_lib.read_config(workdir)
  ap = 100 * evals[-1]["AP50"]
  minutes = metrics[-1].get("elapsed_s", float("nan")) / 60
  agnostic = evals[-1].get("AP50_agnostic")
  return [f"demo ({config.dataset.preset}, init {config.anchors.init}, "
          f"{config.train.steps} steps): AP50 {ap:.2f} % (target >= {FLAGS.demo_ap50:g}: "
          f"{_mark(ap >= FLAGS.demo_ap50)}), class-agnostic AP50 "
          f"{'n/a' if agnostic is None else f'{100 * agnostic:.2f} %'}, training "
          f"{minutes:.2f} min (target <= {FLAGS.demo_minutes:g}: "
          f"{_mark(minutes <= FLAGS.demo_minutes)})"]


def study_report(root: str) -> list[str]:
  """Per preset: AP50 of the Table 1 runs, their wall time, the paired-difference std."""
  lines = []
  for preset in PRESETS:
    folder = os.path.join(root, preset)
    sweep = sweep_lib.load(os.path.join(REPO, f"experiments/sweeps/table1.py:cpu_{preset}"))
    seeds = results.seeds_on_disk(sweep, folder)
    if not seeds:
      lines.append(f"study {preset}: no runs in {folder} (make study)")
      continue
    records = [r for r in results.collect(sweep, folder, seeds) if r.metrics]
    aps = [100 * r.metrics["AP50"] for r in records]
    walls = [r.wall_s / 60 for r in records if r.wall_s]
    by_cell = {}
    for r in records:
      by_cell.setdefault((r.row, r.col), {})[r.seed] = 100 * r.metrics["AP50"]
    stds = {}
    for init in ("identical", "uniform", "k-means"):
      base, opt = by_cell.get((init, "Baseline"), {}), by_cell.get((init, "Opt"), {})
      diffs = [opt[s] - base[s] for s in sorted(opt) if s in base]
      if len(diffs) >= 2:
        stds[init] = statistics.stdev(diffs)
    worst_std = max(stds.values()) if stds else None
    lines.append(
        f"study {preset} ({len(records)} finished runs, seeds {sorted(seeds)}): AP50 "
        f"{min(aps):.2f}..{max(aps):.2f} % (target >= {FLAGS.study_ap50:g}: "
        f"{_mark(min(aps) >= FLAGS.study_ap50)}); wall per run {min(walls):.2f}.."
        f"{max(walls):.2f} min (target <= {FLAGS.study_minutes:g}: "
        f"{_mark(max(walls) <= FLAGS.study_minutes)}); std of Opt - Baseline "
        + ", ".join(f"{k} {v:.2f}" for k, v in stds.items())
        + f" (target <= {FLAGS.max_paired_std:g}: "
        f"{_mark(None if worst_std is None else worst_std <= FLAGS.max_paired_std)})")
  return lines


def main(argv):
  del argv
  if FLAGS.run_demo:
    subprocess.run([sys.executable, "-m", "anchor_jax.main", "--config=configs/synthetic.py",
                    f"--workdir={FLAGS.demo_workdir}"], cwd=REPO, check=True)
  for line in demo_report(FLAGS.demo_workdir) + study_report(FLAGS.study_root):
    print(line)


if __name__ == "__main__":
  app.run(main)
