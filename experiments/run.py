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

import argparse
import os
import shlex
import signal
import sys

from experiments import launcher, results, sweep_lib

DEFAULT_TRAINER = (sys.executable, "-m", "anchor_jax.main")


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m experiments.run",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("sweep", help="experiments/sweeps/<sweep>.py[:arg]")
  p.add_argument("--workdir_root", required=True, help="DIR holding one folder per run")
  p.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 of every run")
  p.add_argument("--parallel", type=int, default=1, help="trainers running at once")
  p.add_argument("--only", default="", help="only runs whose name contains this")
  p.add_argument("--dry_run", action="store_true", help="print the plan, launch nothing")
  p.add_argument("--table_only", action="store_true",
                 help="rebuild results.csv/md from the workdirs, launch nothing")
  p.add_argument("--override", action="append", default=[],
                 help="extra --config.key=value for every run (write --override=--config.k=v)")
  p.add_argument("--trainer", default=None,
                 help=f"training command (default: {shlex.join(DEFAULT_TRAINER)})")
  p.add_argument("--skip_config_check", action="store_true",
                 help="do not load every run's config before launching")
  p.add_argument("--jax_cache", default=None,
                 help="JAX compilation cache of the trainers (default DIR/jax_cache; '' = off)")
  p.add_argument("--grace_s", type=float, default=120.0,
                 help="on Ctrl-C: seconds a trainer gets to checkpoint before SIGKILL")
  args = p.parse_args(argv)
  if args.seeds < 1 or args.parallel < 1:
    p.error("--seeds and --parallel must be >= 1")
  return args


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


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse_args(argv)
  command = "python -m experiments.run " + shlex.join(argv)
  root = os.path.abspath(args.workdir_root)
  try:
    sweep = sweep_lib.load(args.sweep)
  except sweep_lib.SweepError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  seeds = range(args.seeds)
  jobs = sweep_lib.jobs(sweep, root=root, seeds=seeds, only=args.only, extra=args.override)

  def tables():
    results.write_all(sweep, root, seeds, command=command, spec=args.sweep)
    print(f"tables: {os.path.join(root, 'results.md')}, {os.path.join(root, 'results.csv')}")

  if args.table_only:
    tables()
    return 0
  if not jobs:
    print(f"error: no run of {args.sweep} matches --only={args.only!r}", file=sys.stderr)
    return 2
  trainer = shlex.split(args.trainer) if args.trainer else list(DEFAULT_TRAINER)
  runner = launcher.Launcher(trainer, root=root, parallel=args.parallel,
                             env=trainer_env(root, args.jax_cache), grace_s=args.grace_s)
  if args.dry_run:
    for job in jobs:
      print(launcher.describe(job, runner.command(job)))
    return 0
  if args.trainer is None and not args.skip_config_check:
    try:
      sweep_lib.check_configs(jobs)
    except sweep_lib.SweepError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
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


if __name__ == "__main__":
  sys.exit(main())
