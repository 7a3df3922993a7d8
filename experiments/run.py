r"""Runs a sweep of training runs and tabulates it like the paper.

  python -m experiments.run experiments/sweeps/table1.py:cpu --workdir_root=runs/table1 \
      [--seeds=3] [--parallel=1] [--only=kmeans] [--dry_run] [--table_only]

Each (run, seed) trains in ``DIR/<run name>/seed<k>`` as a subprocess of the training
CLI (``python -m anchor_jax.main --config=... --workdir=... --config.seed=k <base>
<overrides>``), ``--parallel`` at a time, its output in ``<workdir>/train.log``.
Run it again to continue a sweep: finished runs (``DONE``) are skipped, unfinished ones
resume from their checkpoints. A failing run is recorded in ``DIR/failures.jsonl``
(exit code, last log lines) and the sweep goes on. Ctrl-C stops the trainers cleanly
(they checkpoint) and still writes the tables. Outputs: ``DIR/results.csv``,
``DIR/results.md`` (see ``experiments/results.py``); ``--table_only`` only rebuilds them.
Run it from the repository root (config paths are relative to it).

By default the trainers share a JAX compilation cache in ``DIR/jax_cache`` (seeds of a
run then compile once: about 25 s less per run on a 2-core CPU).

Exit status: 0 all done, 1 some run failed, 2 bad sweep or config, 130 interrupted.
"""
from __future__ import annotations

import os
import shlex
import signal
import sys

from absl import flags

from anchor_jax.tools import cli
from experiments import launcher, results, sweep_lib

DEFAULT_TRAINER = (sys.executable, "-m", "anchor_jax.main")


def define_flags(fv: flags.FlagValues, argv) -> None:
  del argv
  flags.DEFINE_string("workdir_root", None, "DIR holding one folder per run.", flag_values=fv)
  flags.DEFINE_integer("seeds", 1, "Seeds 0..K-1 of every run.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("parallel", 1, "Trainers running at once.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_bool("pin", False, "Pin each trainer to its own slice of the CPUs (see "
                    "launcher.py).", flag_values=fv)
  flags.DEFINE_string("only", "", "Only runs whose name contains this.", flag_values=fv)
  flags.DEFINE_bool("dry_run", False, "Print the plan, launch nothing.", flag_values=fv)
  flags.DEFINE_bool("table_only", False, "Rebuild results.csv/md from the workdirs, launch "
                    "nothing.", flag_values=fv)
  flags.DEFINE_multi_string("override", [], "Extra --config.key=value for every run (write "
                            "--override=--config.k=v).", flag_values=fv)
  flags.DEFINE_string("trainer", None, f"Training command (default: "
                      f"{shlex.join(DEFAULT_TRAINER)}).", flag_values=fv)
  flags.DEFINE_bool("skip_config_check", False, "Do not load every run's config before "
                    "launching.", flag_values=fv)
  flags.DEFINE_string("jax_cache", None, "JAX compilation cache of the trainers (default "
                      "DIR/jax_cache; '' = off).", flag_values=fv)
  flags.DEFINE_float("grace_s", 120.0, "On Ctrl-C: seconds a trainer gets to checkpoint "
                     "before SIGKILL.", flag_values=fv)
  flags.mark_flag_as_required("workdir_root", flag_values=fv)


def trainer_env(root: str, jax_cache: str | None) -> dict:
  """The trainers' environment: unbuffered output, a shared compilation cache."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  cache = os.path.join(root, "jax_cache") if jax_cache is None else jax_cache
  if cache:
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(cache))
  return env


def _raise_interrupt(signum, frame):
  raise KeyboardInterrupt


def main(fv: flags.FlagValues, args) -> int:
  if len(args) != 1:
    raise cli.UsageError("give one sweep, e.g. experiments/sweeps/table1.py:cpu")
  spec = args[0]
  command = "python -m experiments.run " + shlex.join([spec] + cli.given_flags(fv))
  root = os.path.abspath(fv.workdir_root)
  sweep = sweep_lib.load(spec)
  seeds = range(fv.seeds)
  jobs = sweep_lib.jobs(sweep, root=root, seeds=seeds, only=fv.only, extra=fv.override)

  def tables():
    results.write_all(sweep, root, seeds, command=command, spec=spec)
    print(f"tables: {os.path.join(root, 'results.md')}, {os.path.join(root, 'results.csv')}")

  if fv.table_only:
    tables()
    return 0
  if not jobs:
    raise sweep_lib.SweepError(f"no run of {spec} matches --only={fv.only!r}")
  trainer = shlex.split(fv.trainer) if fv.trainer else list(DEFAULT_TRAINER)
  runner = launcher.Launcher(trainer, root=root, parallel=fv.parallel,
                             env=trainer_env(root, fv.jax_cache), grace_s=fv.grace_s,
                             pin=fv.pin)
  if fv.dry_run:
    for job in jobs:
      print(launcher.describe(job, runner.command(job)))
    return 0
  if fv.trainer is None and not fv.skip_config_check:
    sweep_lib.check_configs(jobs)
  os.makedirs(root, exist_ok=True)
  # SIGINT explicitly too: a runner started in the background of a script inherits
  # SIGINT as ignored, and `kill -INT` must still stop it cleanly.
  previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
  interrupted = False
  try:
    counts = runner.run(jobs)
  except KeyboardInterrupt:
    interrupted, counts = True, runner.counts
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
    tables()
  print(f"{len(jobs)} jobs: {counts['done']} done, {counts['skipped']} already finished, "
        f"{counts['failed']} failed" + (" (interrupted)" if interrupted else ""))
  if interrupted:
    return 130
  return 1 if counts["failed"] else 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)


if __name__ == "__main__":
  sys.exit(run())
