"""Faster R-CNN training step: learnable (Opt) vs frozen (Baseline) RPN anchors.

  python experiments/benchmarks/bench_rcnn.py                  # configs/rcnn_synthetic.py:cpu
  python experiments/benchmarks/bench_rcnn.py --config=configs/rcnn_synthetic.py:tiny --repeats=5

Both steps are built from one config and one batch and timed alternately in one process
(machine noise hits both alike). Prints the median s/step of each, their ratio (the paper:
0.8154 s vs 0.8027 s on 4 GPUs, 1.016) and the compile time of each.
"""
import os
import statistics
import sys
import time

import jax
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # run as a script from anywhere: the repository's packages
from anchor_jax import config_lib  # noqa: E402
from experiments.benchmarks import _steps  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/rcnn_synthetic.py:cpu", "Faster R-CNN config.")
flags.DEFINE_integer("repeats", 10, "Alternated timed steps per method (median).")
flags.DEFINE_integer("batch", 0, "Global batch (0: the config's).")

METHODS = {"Opt": ("--config.anchors.optimize=True",),
           "Baseline": ("--config.anchors.optimize=False", "--config.anchors.cluster_weight=0")}


def build(overrides):
  """[pmapped step, replicated state, sharded batch, compile s] of one method."""
  extra = (f"--config.train.batch_size={FLAGS.batch}",) if FLAGS.batch else ()
  config = config_lib.load(os.path.join(REPO, FLAGS.config), [*overrides, *extra])
  step, state, batch, _ = _steps.pmapped_train_step(config)
  start = time.perf_counter()
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return [step, state, batch, time.perf_counter() - start]


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runs = {name: build(overrides) for name, overrides in METHODS.items()}
  times = {name: [] for name in runs}
  for _ in range(FLAGS.repeats):
    for name, run in runs.items():
      step, state, batch, _ = run
      start = time.perf_counter()
      state, metrics = step(state, batch)
      jax.block_until_ready(metrics)
      times[name].append(time.perf_counter() - start)
      run[1] = state
  med = {name: statistics.median(t) for name, t in times.items()}
  print(f"{FLAGS.config}, {jax.device_count()} device(s), {FLAGS.repeats} alternated steps each")
  for name in runs:
    print(f"  {name:9s} {med[name]:.4f} s/step (median), compile {runs[name][3]:.1f} s")
  print(f"  Opt / Baseline step time: {med['Opt'] / med['Baseline']:.3f} (paper: 1.016)")


if __name__ == "__main__":
  app.run(main)
