"""Step time of the CPU recipe's candidates: model x width x input size x batch.

  python experiments/benchmarks/bench_recipe.py --models=tiny,tiny_s2d --widths=0.25,0.5 \
      --sizes=128,160

Times the pmapped train step alone (one fixed batch, after compile) of
``configs/synthetic.py:demo`` with the setting's overrides, and prints one line per
setting: median ms per step, steps/s, images/s, compile time, and the wall time of a run
of ``--steps`` steps at that speed (stepping only: add ~25 s of start-up, compile and eval).
All settings are built first and then timed round-robin, one step each per round, so the
load of a shared machine hits every setting alike; ratios between lines are the figures
to trust, absolute times move with the load.
"""
import itertools
import os
import sys
import time

import jax
import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # run as a script from anywhere: the repository's packages
from anchor_jax import config_lib  # noqa: E402
from experiments.benchmarks import _steps  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["tiny", "tiny_s2d"], "model.name values.")
flags.DEFINE_list("widths", ["0.25", "0.5"], "model.width values.")
flags.DEFINE_list("sizes", ["128", "160"], "input.image_size values.")
flags.DEFINE_list("batches", ["16"], "train.batch_size values.")
flags.DEFINE_list("max_pools", ["reshape"], "model.max_pool values (window, reshape).")
flags.DEFINE_integer("repeats", 20, "Timed rounds (one step of every setting each).")
flags.DEFINE_integer("steps", 3000, "Run length for the 'run s' column.")
flags.DEFINE_string("config", "configs/synthetic.py:demo", "Base config.")


def build(model_name, width, size, batch_size, max_pool):
  """(train step, replicated state, sharded batch) of the base config with a setting."""
  config = config_lib.load(os.path.join(REPO, FLAGS.config))
  config.model.name, config.model.width = model_name, width
  config.input.image_size, config.model.max_pool = size, max_pool
  return _steps.pmapped_train_step(config, batch_size)[:3]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  grid = list(itertools.product(FLAGS.models, map(float, FLAGS.widths), map(int, FLAGS.sizes),
                                map(int, FLAGS.batches), FLAGS.max_pools))
  settings = []
  for setting in grid:
    fn, state, batch = build(*setting)
    t0 = time.perf_counter()
    state, m = fn(state, batch)
    jax.block_until_ready(m)
    settings.append({"setting": setting, "fn": fn, "state": state, "batch": batch,
                     "compile_s": time.perf_counter() - t0, "times": []})
  for _ in range(FLAGS.repeats):
    for s in settings:
      t0 = time.perf_counter()
      s["state"], m = s["fn"](s["state"], s["batch"])
      jax.block_until_ready(m)
      s["times"].append(time.perf_counter() - t0)
  print(f"{jax.device_count()} {jax.devices()[0].platform} device(s), median of "
        f"{FLAGS.repeats} round-robin steps, base {FLAGS.config}")
  print(f"{'model':>9} {'width':>5} {'px':>4} {'batch':>5} {'pool':>7} | {'ms/step':>7} "
        f"{'steps/s':>7} {'img/s':>6} {'compile s':>9} {f'{FLAGS.steps} steps s':>13}")
  for s in settings:
    med = float(np.median(s["times"]))
    name, width, size, bs, pool = s["setting"]
    print(f"{name:>9} {width:>5g} {size:>4} {bs:>5} {pool:>7} | {1e3 * med:7.1f} "
          f"{1 / med:7.2f} {bs / med:6.1f} {s['compile_s']:9.1f} {FLAGS.steps * med:13.0f}")


if __name__ == "__main__":
  app.run(main)
